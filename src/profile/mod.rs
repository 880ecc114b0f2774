//! profile: skeleton, filled by its issue.
