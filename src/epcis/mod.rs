//! epcis: skeleton, filled by the events issue.
