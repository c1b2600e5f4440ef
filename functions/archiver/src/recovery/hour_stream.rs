//! One hour folder's Parquet files read in bounded chunks of rows, for restore and replay: the
//! memory they hold is one file's bytes and one chunk's rows, whatever the size of the hour,
//! and the position between chunks (`Resume`: file key and row) lets the next invocation go on
//! where the deadline stopped this one.
//!
//! A file listed but gone when it is read (compaction replaced it by its outputs) makes the
//! stream list the hour again and start over from its first file: restore and replay are
//! idempotent, so rows read twice are counted `present` / `already_stored`, and none is
//! skipped. A second vanished file in the same hour ends the stream with `Next::Vanished`,
//! and the caller reports the hour unfinished.
//!
//! `read_hours` walks a range of hours with one stream each, for restore and replay alike.

use std::time::Duration;

use arrow::array::RecordBatch;
use chrono::{DateTime, Utc};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::archive::bucket::ArchiveBucket;
use crate::archive::event_parquet::FormatError;
use crate::archive::partition::HourPartition;
use crate::error::ArchiveError;

/// Where an invocation stopped inside the hour `unfinished_from`: the next row to read is
/// row `row` (0-based) of the file `key`. The next invocation passes it back as `resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    pub key: String,
    pub row: u64,
}

/// What the stream yields next.
pub enum Next {
    /// At most the chunk size of rows of one file.
    Rows(RecordBatch),
    /// Every file of the hour is read.
    End,
    /// Files vanished twice while the hour was read: the hour is not complete.
    Vanished,
}

struct OpenFile {
    key: String,
    reader: ParquetRecordBatchReader,
    /// The next row of the file to be read.
    row: u64,
    /// The file's rows (from its footer).
    rows: u64,
}

pub struct HourStream<'a> {
    bucket: &'a ArchiveBucket,
    folder: String,
    /// Which names in the folder are input files (the name is the key without the folder).
    accept: fn(&str) -> bool,
    rows: usize,
    keys: Vec<String>,
    next_key: usize,
    /// Rows of the next file to open to skip (a resumed position).
    skip: u64,
    open: Option<OpenFile>,
    relisted: bool,
    /// Files opened.
    pub files: usize,
}

/// A file's format error, naming the file.
pub fn in_file(key: &str, e: FormatError) -> ArchiveError {
    ArchiveError::Encode(FormatError::Parquet(
        parquet::errors::ParquetError::General(format!("{key}: {e}")),
    ))
}

impl<'a> HourStream<'a> {
    /// The files of `folder`, from `resume` when its file is still listed (from the first
    /// file otherwise: a file gone since means compaction rewrote the hour).
    pub async fn open(
        bucket: &'a ArchiveBucket,
        folder: String,
        accept: fn(&str) -> bool,
        rows: usize,
        resume: Option<Resume>,
    ) -> Result<HourStream<'a>, ArchiveError> {
        let mut stream = HourStream {
            bucket,
            folder,
            accept,
            rows: rows.max(1),
            keys: Vec::new(),
            next_key: 0,
            skip: 0,
            open: None,
            relisted: false,
            files: 0,
        };
        stream.list().await?;
        if let Some(resume) = resume {
            if let Some(i) = stream.keys.iter().position(|k| *k == resume.key) {
                (stream.next_key, stream.skip) = (i, resume.row);
            }
        }
        Ok(stream)
    }

    async fn list(&mut self) -> Result<(), ArchiveError> {
        let folder = &self.folder;
        self.keys = self
            .bucket
            .objects(folder)
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .filter(|key| (self.accept)(key.strip_prefix(folder.as_str()).unwrap_or(key)))
            .collect();
        (self.next_key, self.skip, self.open) = (0, 0, None);
        Ok(())
    }

    /// The position of the next row: None once every file is read.
    pub fn position(&self) -> Option<Resume> {
        match &self.open {
            Some(open) if open.row < open.rows => Some(Resume {
                key: open.key.clone(),
                row: open.row,
            }),
            _ => self.keys.get(self.next_key).map(|key| Resume {
                key: key.clone(),
                row: self.skip,
            }),
        }
    }

    /// The file the last rows came from.
    pub fn key(&self) -> &str {
        self.open.as_ref().map_or("", |o| o.key.as_str())
    }

    pub async fn next(&mut self) -> Result<Next, ArchiveError> {
        loop {
            if let Some(open) = &mut self.open {
                match open.reader.next() {
                    Some(Ok(batch)) => {
                        open.row += batch.num_rows() as u64;
                        return Ok(Next::Rows(batch));
                    }
                    Some(Err(e)) => return Err(in_file(&open.key, e.into())),
                    None => self.open = None,
                }
            }
            let Some(key) = self.keys.get(self.next_key).cloned() else {
                return Ok(Next::End);
            };
            let Some(body) = self.bucket.get(&key, None).await? else {
                if self.relisted {
                    return Ok(Next::Vanished);
                }
                tracing::warn!(%key, "input file vanished: the hour is listed again");
                self.relisted = true;
                self.list().await?;
                continue;
            };
            self.files += 1;
            let skip = std::mem::take(&mut self.skip);
            let builder = ParquetRecordBatchReaderBuilder::try_new(body)
                .map_err(|e| in_file(&key, e.into()))?;
            let rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
            let reader = builder
                .with_batch_size(self.rows)
                .with_offset(usize::try_from(skip).unwrap_or(usize::MAX))
                .build()
                .map_err(|e| in_file(&key, e.into()))?;
            self.next_key += 1;
            self.open = Some(OpenFile {
                key,
                reader,
                row: skip,
                rows,
            });
        }
    }
}

/// How far a walk over a range of hours got (part of restore's and replay's summaries).
#[derive(Debug, Default, Serialize)]
pub struct RangeProgress {
    /// Hours read completely.
    pub hours: usize,
    /// Files opened.
    pub files: usize,
    /// The first hour not read completely, when the deadline came first (or its files
    /// vanished twice while it was read): run again from there, with `resume`.
    pub unfinished_from: Option<DateTime<Utc>>,
    /// Where in `unfinished_from`'s hour to go on (null: from its start).
    pub resume: Option<Resume>,
}

/// Which files of an hour a walk reads, and how many rows at a time.
pub struct HourFiles<F: Fn(&HourPartition) -> String> {
    /// The hour's folder (key prefix).
    pub folder: F,
    /// Which names in the folder are input files.
    pub accept: fn(&str) -> bool,
    pub chunk: usize,
}

/// Reads the hours in chunks, from `resume` in the first hour, handing each chunk and its
/// file's key to `rows`. Stops between chunks once less than `margin` is left before
/// `deadline`, but only after at least one chunk: every invocation makes progress, however
/// close its deadline.
pub async fn read_hours<F: Fn(&HourPartition) -> String>(
    bucket: &ArchiveBucket,
    hours: &[HourPartition],
    files: &HourFiles<F>,
    resume: Option<Resume>,
    (deadline, margin): (Instant, Duration),
    mut rows: impl AsyncFnMut(&RecordBatch, &str) -> Result<(), ArchiveError>,
) -> Result<RangeProgress, ArchiveError> {
    let out_of_time = || deadline.saturating_duration_since(Instant::now()) < margin;
    let mut progress = RangeProgress::default();
    let (mut resume, mut worked) = (resume, false);
    for hour in hours {
        if worked && out_of_time() {
            progress.unfinished_from = Some(hour.start());
            break;
        }
        let folder = (files.folder)(hour);
        let mut stream =
            HourStream::open(bucket, folder, files.accept, files.chunk, resume.take()).await?;
        loop {
            let batch = match stream.next().await? {
                Next::Rows(batch) => batch,
                Next::End => break,
                Next::Vanished => {
                    progress.files += stream.files;
                    progress.unfinished_from = Some(hour.start());
                    return Ok(progress);
                }
            };
            rows(&batch, stream.key()).await?;
            worked = true;
            // Out of time with rows left in the hour: stop here. (None: the hour is read.)
            if let Some(position) = stream.position().filter(|_| out_of_time()) {
                progress.files += stream.files;
                progress.unfinished_from = Some(hour.start());
                progress.resume = Some(position);
                return Ok(progress);
            }
        }
        progress.files += stream.files;
        progress.hours += 1;
    }
    Ok(progress)
}
