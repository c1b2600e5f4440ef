//! The archive bucket: storing files (runs and compaction) and reading them back (compaction
//! and audit): listing an hour folder, telling raw files from compacted ones by name,
//! fetching objects and their Parquet footers, deleting.
//! Over 400 lines: every S3 call of the archiver is here, beside the one client they share
//! (listing, ranged reads, versions, Object Lock), so that no job holds a client of its own.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use bytes::Bytes;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use uuid::Uuid;

use crate::archive::event_parquet::FormatError;
use crate::archive::partition::HourPartition;
use crate::error::ArchiveError;

/// Bytes fetched from the end of a file in the hope that they hold the whole footer.
const FOOTER_GUESS: u64 = 64 * 1024;
/// DeleteObjects takes at most this many keys.
const MAX_DELETE: usize = 1000;
/// The media type registered for Parquet.
const CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// The bucket, the prefix of every key in it, and the client that reaches it. Cheap to
/// clone (the client is shared), so each upload task takes its own.
#[derive(Clone, Debug)]
pub struct ArchiveBucket {
    client: aws_sdk_s3::Client,
    name: String,
    /// Empty or ending with `/`.
    prefix: String,
}

/// What produced a file, read from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `events_{uuid}.parquet`: written by a run from the queue or the sweep.
    Raw,
    /// `events_c{generation}_{shard}-{shards}.parquet`: one shard of a compaction.
    Compacted {
        generation: String,
        shard: u32,
        shards: u32,
    },
}

/// A file's footer and the bytes at its end that held it.
pub struct Tail {
    pub meta: ParquetMetaData,
    /// The last bytes of the file, from offset `start`.
    pub bytes: Bytes,
    pub start: u64,
    /// Bytes fetched (one or two ranged GETs).
    pub fetched: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFile {
    pub key: String,
    pub size: u64,
    pub kind: Kind,
}

/// The name of a compacted file of `folder` (which ends with `/`).
pub fn compacted_key(folder: &str, generation: &str, shard: u32, shards: u32) -> String {
    format!("{folder}events_c{generation}_{shard}-{shards}.parquet")
}

/// The kind of the file named `name` (the key's last segment); None for anything else.
pub fn kind_of(name: &str) -> Option<Kind> {
    let stem = name.strip_prefix("events_")?.strip_suffix(".parquet")?;
    if uuid::Uuid::parse_str(stem).is_ok() {
        return Some(Kind::Raw);
    }
    if let Some(rest) = stem.strip_prefix('c') {
        let (generation, position) = rest.split_once('_')?;
        let (shard, shards) = position.split_once('-')?;
        let (shard, shards): (u32, u32) = (shard.parse().ok()?, shards.parse().ok()?);
        if generation.is_empty() || shard >= shards {
            return None;
        }
        return Some(Kind::Compacted {
            generation: generation.to_string(),
            shard,
            shards,
        });
    }
    None
}

impl ArchiveBucket {
    pub fn new(client: aws_sdk_s3::Client, name: String, prefix: String) -> Self {
        Self {
            client,
            name,
            prefix,
        }
    }

    /// The prefix of every archive key (empty or ending with `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The folder of an hour, prefix included (ends with `/`).
    pub fn folder(&self, hour: HourPartition) -> String {
        format!("{}{}", self.prefix, hour.folder())
    }

    /// The key of a new raw file of an hour.
    pub fn raw_key(&self, hour: HourPartition, batch_id: Uuid) -> String {
        hour.object_key(&self.prefix, batch_id)
    }

    /// One PutObject. The SDK computes a CRC32 checksum, which S3 verifies (and which Object
    /// Lock buckets require). The run id and row count travel as object metadata, so an
    /// object can be traced to the run (and log line) that wrote it without opening it.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        run_id: Uuid,
        events: usize,
    ) -> Result<(), ArchiveError> {
        self.client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .content_type(CONTENT_TYPE)
            .metadata("eis-run-id", run_id.to_string())
            .metadata("eis-events", events.to_string())
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| ArchiveError::storage(&e))?;
        Ok(())
    }

    /// Every archive file of one folder, sorted by key. Other objects are ignored.
    pub async fn list(&self, folder: &str) -> Result<Vec<ArchiveFile>, ArchiveError> {
        let objects = self.objects(folder).await?;
        Ok(objects
            .into_iter()
            .filter_map(|(key, size)| {
                let kind = kind_of(key.strip_prefix(folder).unwrap_or(&key))?;
                Some(ArchiveFile { key, size, kind })
            })
            .collect())
    }

    /// The keys and sizes of the objects directly in `folder` (not in its subfolders),
    /// sorted by key.
    pub async fn objects(&self, folder: &str) -> Result<Vec<(String, u64)>, ArchiveError> {
        let mut objects = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(folder)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| ArchiveError::storage(&e))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                if key.strip_prefix(folder).unwrap_or(key).contains('/') {
                    continue;
                }
                let size = object.size().and_then(|s| u64::try_from(s).ok());
                objects.push((key.to_string(), size.unwrap_or(0)));
            }
        }
        objects.sort();
        Ok(objects)
    }

    /// A whole object; `Ok(None)` when it no longer exists.
    pub async fn get(
        &self,
        key: &str,
        range: Option<String>,
    ) -> Result<Option<Bytes>, ArchiveError> {
        let sent = self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .set_range(range)
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) if e.code() == Some("NoSuchKey") => return Ok(None),
            Err(e) => return Err(ArchiveError::storage(&e)),
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| ArchiveError::StorageUnavailable(format!("reading {key}: {e}")))?;
        Ok(Some(body.into_bytes()))
    }

    /// The Parquet footer of a file of `size` bytes: one ranged GET (two for a large footer).
    /// `Ok(None)` when the file no longer exists.
    pub async fn footer(
        &self,
        file: &ArchiveFile,
    ) -> Result<Option<ParquetMetaData>, ArchiveError> {
        Ok(self.tail(file).await?.map(|t| t.meta))
    }

    /// The footer and the bytes read for it: the end of the file (which holds the bloom
    /// filters too, when they are small; see `event_parquet::writer_properties`).
    pub async fn tail(&self, file: &ArchiveFile) -> Result<Option<Tail>, ArchiveError> {
        let guess = FOOTER_GUESS.min(file.size.max(8));
        let Some(tail) = self.get(&file.key, Some(format!("bytes=-{guess}"))).await? else {
            return Ok(None);
        };
        let corrupt = |what: &str| {
            ArchiveError::Encode(FormatError::Parquet(
                parquet::errors::ParquetError::General(format!("{}: {what}", file.key)),
            ))
        };
        let n = tail.len();
        if n < 8 || &tail[n - 4..] != b"PAR1" {
            return Err(corrupt("not a parquet file"));
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&tail[n - 8..n - 4]);
        let len = u32::from_le_bytes(len) as usize;
        let mut fetched = n as u64;
        let tail = if len + 8 <= n {
            tail
        } else {
            let whole = format!("bytes=-{}", len + 8);
            match self.get(&file.key, Some(whole)).await? {
                Some(t) if t.len() >= len + 8 => {
                    fetched += t.len() as u64;
                    t
                }
                Some(_) => return Err(corrupt("footer longer than the file")),
                None => return Ok(None),
            }
        };
        let end = tail.len() - 8;
        let meta = ParquetMetaDataReader::decode_metadata(&tail[end - len..end])
            .map_err(|e| ArchiveError::Encode(FormatError::Parquet(e)))?;
        Ok(Some(Tail {
            meta,
            start: file.size.saturating_sub(tail.len() as u64),
            bytes: tail,
            fetched,
        }))
    }

    /// The keys and sizes under `prefix` after `start_after`, in key order: one page of at
    /// most 1000, and whether more follow.
    pub async fn page_after(
        &self,
        prefix: &str,
        start_after: &str,
    ) -> Result<(Vec<(String, u64)>, bool), ArchiveError> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(prefix)
            .set_start_after((!start_after.is_empty()).then(|| start_after.to_string()))
            .send()
            .await
            .map_err(|e| ArchiveError::storage(&e))?;
        let objects = page
            .contents()
            .iter()
            .filter_map(|o| {
                let size = o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
                Some((o.key()?.to_string(), size))
            })
            .collect();
        Ok((objects, page.is_truncated().unwrap_or(false)))
    }

    /// Whether the bucket has Object Lock on: its versions cannot be deleted before their
    /// retention ends, so nothing can be erased from it (docs/privacy.md).
    pub async fn is_locked(&self) -> Result<bool, ArchiveError> {
        let sent = self
            .client
            .get_object_lock_configuration()
            .bucket(&self.name)
            .send()
            .await;
        match sent {
            Ok(out) => Ok(out
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                .is_some_and(|e| e.as_str() == "Enabled")),
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => Ok(false),
            Err(e) => Err(ArchiveError::storage(&e)),
        }
    }

    /// Deletes every version of the objects directly in `folder` but the current ones, then
    /// the delete markers (in that order: a marker removed first would bring back the
    /// version below it). Returns how many versions and markers went. Erasure's last touch of
    /// a rewritten hour; in a bucket without versioning there is nothing to find.
    pub async fn delete_noncurrent(&self, folder: &str) -> Result<u64, ArchiveError> {
        let (mut old, mut markers) = (Vec::new(), Vec::new());
        let direct = |key: &str| !key.strip_prefix(folder).unwrap_or(key).contains('/');
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            // ListObjectVersions has no paginator in the SDK: its markers, by hand.
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.name)
                .prefix(folder)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| ArchiveError::storage(&e))?;
            for v in page.versions() {
                if let (Some(key), Some(id), Some(false)) = (v.key(), v.version_id(), v.is_latest())
                {
                    if direct(key) {
                        old.push((key.to_string(), id.to_string()));
                    }
                }
            }
            for m in page.delete_markers() {
                if let (Some(key), Some(id)) = (m.key(), m.version_id()) {
                    if direct(key) {
                        markers.push((key.to_string(), id.to_string()));
                    }
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        }
        let n = (old.len() + markers.len()) as u64;
        self.delete_versions(&old).await?;
        self.delete_versions(&markers).await?;
        Ok(n)
    }

    async fn delete_versions(&self, versions: &[(String, String)]) -> Result<(), ArchiveError> {
        let identifiers = versions
            .iter()
            .map(|(k, v)| ObjectIdentifier::builder().key(k).version_id(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ArchiveError::Internal(e.to_string()))?;
        self.delete_identifiers(identifiers).await
    }

    /// Deletes the keys (a missing key is not an error: someone deleted it first).
    pub async fn delete(&self, keys: &[String]) -> Result<(), ArchiveError> {
        let identifiers = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ArchiveError::Internal(e.to_string()))?;
        self.delete_identifiers(identifiers).await
    }

    async fn delete_identifiers(
        &self,
        identifiers: Vec<ObjectIdentifier>,
    ) -> Result<(), ArchiveError> {
        for batch in identifiers.chunks(MAX_DELETE) {
            let delete = Delete::builder()
                .set_objects(Some(batch.to_vec()))
                .quiet(true)
                .build()
                .map_err(|e| ArchiveError::Internal(e.to_string()))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.name)
                .delete(delete)
                .send()
                .await
                .map_err(|e| ArchiveError::storage(&e))?;
            if let Some(failed) = out.errors().first() {
                return Err(ArchiveError::StorageRefused(format!(
                    "delete {}: {}",
                    failed.key().unwrap_or_default(),
                    failed.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }
}

/// A value of a file's key-value metadata.
pub fn metadata_value<'a>(meta: &'a ParquetMetaData, key: &str) -> Option<&'a str> {
    meta.file_metadata()
        .key_value_metadata()?
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_tell_raw_from_compacted_files() {
        for raw in [
            "events_01900000-0000-7000-8000-000000000001.parquet",
            "events_c1900000-0000-7000-8000-000000000001.parquet",
        ] {
            assert_eq!(kind_of(raw), Some(Kind::Raw), "{raw}");
        }
        let key = compacted_key("2026/01/05/09/", "0123abcd", 2, 5);
        assert_eq!(key, "2026/01/05/09/events_c0123abcd_2-5.parquet");
        assert_eq!(
            kind_of("events_c0123abcd_2-5.parquet"),
            Some(Kind::Compacted {
                generation: "0123abcd".into(),
                shard: 2,
                shards: 5
            })
        );
        for other in [
            "events_c0123abcd_5-5.parquet",
            "events_c_0-1.parquet",
            "events_nope.parquet",
            "notes.txt",
        ] {
            assert_eq!(kind_of(other), None, "{other}");
        }
    }
}
