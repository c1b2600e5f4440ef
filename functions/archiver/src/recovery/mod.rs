//! Operators' ranges of hours: the quarantined input judged again (`replay`), archived events
//! back into PostgreSQL (`restore`), both read in bounded chunks (`hour_stream`).

pub mod hour_stream;
pub mod replay;
pub mod restore;
