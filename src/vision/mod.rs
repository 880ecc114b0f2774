//! vision: skeleton, filled by its issue.
