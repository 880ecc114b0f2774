//! journal: skeleton, filled by the events issue.
