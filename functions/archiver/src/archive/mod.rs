//! What the archive is: the bucket and its hour partitions, the events' Parquet format and its
//! reader, the quarantine's Parquet format, typed access to columns from any writer, and the
//! id digest that compaction and the audit compare.

pub mod bucket;
pub mod columns;
pub mod digest;
pub mod event_parquet;
pub mod event_parquet_reader;
pub mod partition;
pub mod quarantine_parquet;
