//! pool: skeleton, filled by its issue.
