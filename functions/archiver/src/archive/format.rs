//! What every part of the archive's Parquet format shares: its error and the row group size
//! (the writer's, and the batch size its readers read in).

use arrow::error::ArrowError;
use parquet::errors::ParquetError;

/// Rows per row group: what analytics engines (Athena, DuckDB, Spark) read efficiently. A file
/// holds at most `EIS_MAX_FILE_EVENTS` rows, so with the defaults a file is one row group.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("cannot serialise a JSON column: {0}")]
    Json(#[from] serde_json::Error),
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] ParquetError),
    #[error("a list column outgrew 32-bit offsets")]
    Overflow,
}
