//! What the archive is: the bucket and its hour partitions, the events' Parquet format and its
//! reader (with the shredded keys of `context`, `payload` and `metrics`, and the older formats
//! they replaced), the quarantine's Parquet format, typed access to columns from any writer,
//! and the id digest that compaction and the audit compare.

pub mod bucket;
pub mod columns;
pub mod digest;
pub mod event_parquet;
pub mod event_parquet_reader;
pub mod format;
pub mod legacy;
pub mod partition;
pub mod quarantine_parquet;
pub mod shred;
pub mod shred_columns;
