//! The durable spool: captured events kept on disk until they have a final result, so that a
//! client killed with `kill -9` (or dropped without `close`) loses nothing, and the next client
//! on the same directory sends them with their original ids.
//!
//! The directory holds append-only segments `<n>.log` and a `lock` file (one client at a time).
//! A segment line is either a captured event (its JSON, which starts with `{`) or `-<uuid>`: that
//! event has a final result (stored, duplicate, rejected, conflict or given up). Capture
//! appends its line with one `write(2)` before it returns: from then on the event survives the
//! death of the process (the page cache is the kernel's). `fsync` runs off the caller's path,
//! every `spool_sync_interval` and at close, so an OS crash or power loss can lose at most
//! that interval's captures. A segment is rotated past 8 MiB and deleted once it and every
//! older segment hold no event without a final result (older first, so that no `-<uuid>` line
//! is lost while the event it settles is still on disk). At open, the events without a final
//! result are rewritten into a fresh segment and the old ones deleted.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde::Deserialize;
use uuid::Uuid;

/// A segment is rotated once it holds this much.
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// An event found in the spool without a final result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recovered {
    pub id: Uuid,
    pub json: Bytes,
}

/// What opening found: the events to send, and lines that could not be read (a line torn by a
/// crash in the middle of a write), which are skipped.
#[derive(Debug)]
pub(crate) struct Replay {
    pub events: Vec<Recovered>,
    /// The segment that holds them now.
    pub segment: u64,
    pub skipped_lines: usize,
}

#[derive(Debug)]
struct State {
    current: u64,
    file: Arc<File>,
    written: u64,
    /// Per segment, its events without a final result.
    live: BTreeMap<u64, usize>,
    /// Files written since the last fsync, and whether a segment was created since.
    unsynced: Vec<Arc<File>>,
    created: bool,
    closed: bool,
}

#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    state: Mutex<State>,
    lock: File,
}

#[derive(Deserialize)]
struct IdOnly {
    event_id: String,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.log"))
}

fn create_segment(dir: &Path, n: u64) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, n))
}

impl Spool {
    /// Opens (creating) the spool in `dir`, locks it, and takes over what an earlier client
    /// left. Blocking file I/O: done once, when the client is made.
    pub fn open(dir: &Path) -> io::Result<(Spool, Replay)> {
        fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        if let Err(e) = lock.try_lock() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("in use by another client ({e})"),
            ));
        }
        let mut segments: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name();
                name.to_str()?.strip_suffix(".log")?.parse().ok()
            })
            .collect();
        segments.sort_unstable();
        let mut replay = read_segments(dir, &segments)?;

        // The survivors go into a fresh segment, synced before the old ones are deleted: a
        // crash in between leaves both, and reading them again dedupes by id.
        let current = segments.last().map_or(0, |n| n + 1);
        replay.segment = current;
        let file = create_segment(dir, current)?;
        let mut text = Vec::new();
        for event in &replay.events {
            text.extend_from_slice(&event.json);
            text.push(b'\n');
        }
        (&file).write_all(&text)?;
        file.sync_data()?;
        for n in &segments {
            fs::remove_file(segment_path(dir, *n))?;
        }
        File::open(dir)?.sync_all()?;
        let state = State {
            current,
            file: Arc::new(file),
            written: text.len() as u64,
            live: BTreeMap::from([(current, replay.events.len())]),
            unsynced: Vec::new(),
            created: false,
            closed: false,
        };
        let spool = Spool {
            dir: dir.to_path_buf(),
            state: Mutex::new(state),
            lock,
        };
        Ok((spool, replay))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change under this lock is a counter or a file handle swap, complete or not
        // made: a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a captured event (one `write(2)`, no fsync) and gives its segment.
    pub fn append(&self, json: &[u8]) -> io::Result<u64> {
        let mut line = Vec::with_capacity(json.len() + 1);
        line.extend_from_slice(json);
        line.push(b'\n');
        let mut s = self.lock();
        if s.closed {
            return Err(io::Error::other("the spool is closed"));
        }
        if s.written >= SEGMENT_BYTES {
            let next = s.current + 1;
            let file = Arc::new(create_segment(&self.dir, next)?);
            let old = std::mem::replace(&mut s.file, file);
            s.unsynced.push(old);
            s.current = next;
            s.written = 0;
            s.live.insert(next, 0);
            s.created = true;
        }
        (&*s.file).write_all(&line)?;
        s.written += line.len() as u64;
        let current = s.current;
        *s.live.entry(current).or_insert(0) += 1;
        Ok(current)
    }

    /// Records final results (`-<uuid>` lines, one write) and deletes the segments that no
    /// longer hold an event without one.
    pub fn settle(&self, done: &[(Uuid, u64)]) -> io::Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let mut text = Vec::with_capacity(done.len() * 38);
        for (id, _) in done {
            text.push(b'-');
            text.extend_from_slice(
                id.hyphenated()
                    .encode_lower(&mut Uuid::encode_buffer())
                    .as_bytes(),
            );
            text.push(b'\n');
        }
        let mut s = self.lock();
        if s.closed {
            return Ok(());
        }
        (&*s.file).write_all(&text)?;
        s.written += text.len() as u64;
        for (_, segment) in done {
            if let Some(n) = s.live.get_mut(segment) {
                *n = n.saturating_sub(1);
            }
        }
        while let Some((&first, &count)) = s.live.first_key_value() {
            if count > 0 || first == s.current {
                break;
            }
            s.live.remove(&first);
            fs::remove_file(segment_path(&self.dir, first))?;
        }
        Ok(())
    }

    /// fsyncs what was written since the last call (blocking: run it off the async threads).
    pub fn sync(&self) -> io::Result<()> {
        let (files, created) = {
            let mut s = self.lock();
            let mut files = std::mem::take(&mut s.unsynced);
            files.push(Arc::clone(&s.file));
            (files, std::mem::take(&mut s.created))
        };
        for file in files {
            file.sync_data()?;
        }
        if created {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Stops writing and lets another client open the spool. What has no final result stays.
    pub fn close(&self) {
        self.lock().closed = true;
        let _ = self.sync();
        let _ = self.lock.unlock();
    }

    #[cfg(test)]
    fn segments(&self) -> Vec<u64> {
        self.lock().live.keys().copied().collect()
    }
}

/// Every captured event of `segments` without a final result, in capture order, once each.
fn read_segments(dir: &Path, segments: &[u64]) -> io::Result<Replay> {
    let mut captured: Vec<Recovered> = Vec::new();
    let mut settled: HashSet<Uuid> = HashSet::new();
    let mut skipped_lines = 0;
    for n in segments {
        let text = fs::read(segment_path(dir, *n))?;
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let parsed = match line.first() {
                Some(b'-') => std::str::from_utf8(&line[1..])
                    .ok()
                    .and_then(|t| Uuid::try_parse(t).ok())
                    .map(|id| {
                        settled.insert(id);
                    }),
                Some(b'{') => serde_json::from_slice::<IdOnly>(line)
                    .ok()
                    .and_then(|e| Uuid::try_parse(&e.event_id).ok())
                    .map(|id| {
                        captured.push(Recovered {
                            id,
                            json: Bytes::copy_from_slice(line),
                        });
                    }),
                _ => None,
            };
            if parsed.is_none() {
                skipped_lines += 1;
            }
        }
    }
    let mut seen = HashSet::new();
    let events = captured
        .into_iter()
        .filter(|e| !settled.contains(&e.id) && seen.insert(e.id))
        .collect();
    Ok(Replay {
        events,
        segment: 0,
        skipped_lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("eis-spool-test-{}", Uuid::now_v7()));
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn event(id: Uuid) -> Vec<u8> {
        format!("{{\"event_id\":\"{id}\",\"event_type\":\"t\"}}").into_bytes()
    }

    #[test]
    fn unsettled_events_survive_and_come_back_once_in_order() {
        let dir = temp_dir();
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        {
            let (spool, replay) = Spool::open(&dir).expect("open");
            assert!(replay.events.is_empty());
            let segments: Vec<u64> = ids
                .iter()
                .map(|id| spool.append(&event(*id)).expect("append"))
                .collect();
            spool.settle(&[(ids[1], segments[1])]).expect("settle");
            // Dropped without close: as a killed process leaves it (the lock goes with it).
        }
        let (spool, replay) = Spool::open(&dir).expect("reopen");
        let back: Vec<Uuid> = replay.events.iter().map(|e| e.id).collect();
        assert_eq!(back, vec![ids[0], ids[2], ids[3]]);
        assert_eq!(
            replay.events[0].json,
            Bytes::from(event(ids[0])),
            "the same bytes"
        );
        assert_eq!(replay.skipped_lines, 0);
        assert_eq!(
            spool.segments().len(),
            1,
            "rewritten into one fresh segment"
        );
        spool.close();
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_counted() {
        let dir = temp_dir();
        let id = Uuid::now_v7();
        {
            let (spool, _) = Spool::open(&dir).expect("open");
            spool.append(&event(id)).expect("append");
            let torn = segment_path(&dir, spool.lock().current);
            let mut f = OpenOptions::new().append(true).open(torn).expect("segment");
            f.write_all(b"{\"event_id\":\"0193").expect("write");
        }
        let (spool, replay) = Spool::open(&dir).expect("reopen");
        assert_eq!(
            replay.events.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![id]
        );
        assert_eq!(replay.skipped_lines, 1);
        spool.close();
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_client_at_a_time_and_close_lets_the_next_in() {
        let dir = temp_dir();
        let (first, _) = Spool::open(&dir).expect("open");
        let err = Spool::open(&dir).expect_err("locked");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        first.close();
        assert!(first.append(b"{}").is_err(), "closed");
        let (second, _) = Spool::open(&dir).expect("free again");
        second.close();
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn settled_segments_are_deleted_oldest_first() {
        let dir = temp_dir();
        let (spool, _) = Spool::open(&dir).expect("open");
        let big = Uuid::now_v7();
        let mut line = event(big);
        line.truncate(line.len() - 1);
        line.extend_from_slice(
            format!(",\"pad\":\"{}\"}}", "x".repeat(SEGMENT_BYTES as usize)).as_bytes(),
        );
        let s0 = spool.append(&line).expect("append");
        let small = Uuid::now_v7();
        let s1 = spool.append(&event(small)).expect("append");
        assert_eq!(s1, s0 + 1, "rotated past the segment size");
        let other = Uuid::now_v7();
        let s1b = spool.append(&event(other)).expect("append");
        spool.settle(&[(small, s1)]).expect("settle");
        assert_eq!(
            spool.segments(),
            vec![s0, s1],
            "the older one still holds an event"
        );
        spool.settle(&[(big, s0)]).expect("settle");
        assert_eq!(spool.segments(), vec![s1], "gone once settled");
        assert!(!segment_path(&dir, s0).exists());
        spool.sync().expect("sync");
        drop(spool);
        let (spool, replay) = Spool::open(&dir).expect("reopen");
        assert_eq!(
            replay.events.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![other]
        );
        let _ = s1b;
        spool.close();
        let _ = fs::remove_dir_all(&dir);
    }
}
