//! A bounded on-disk FIFO of alerts waiting for one output.
//!
//! Records are lines (an alert's JSON has no line break) appended to
//! numbered segment files; a `cursor` file (written to a temporary file,
//! then renamed) holds the segment and offset of the oldest record not yet
//! delivered. A record is removed only after its delivery, so a process
//! killed at any moment delivers the spooled records after a restart, in
//! order; one killed between a delivery and the cursor update delivers that
//! record again (receivers can drop repeats by the alert id). Writes reach
//! the page cache, not the disk: a crash of the process loses nothing, a
//! power loss may lose the last records.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Largest segment file; a new one starts beyond it.
const SEGMENT_BYTES: u64 = 1 << 20;
const CURSOR: &str = "cursor";

/// One output's spool.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    /// Segment numbers and sizes, oldest first; never empty.
    segments: VecDeque<(u64, u64)>,
    /// Offset of the oldest undelivered record in the first segment.
    head: u64,
    /// Undelivered records and their bytes (newlines included).
    count: u64,
    bytes: u64,
    max_bytes: u64,
    writer: File,
}

impl Spool {
    /// Opens or creates the spool in `dir`, at most `max_bytes` of records.
    /// A torn last record (a write cut by a crash) is cut off.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let mut numbers: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        let (mut seg, mut head) = read_cursor(dir);
        // Segments before the cursor were delivered.
        for n in numbers.iter().filter(|n| **n < seg) {
            std::fs::remove_file(segment_path(dir, *n))?;
        }
        numbers.retain(|n| *n >= seg);
        if numbers.first() != Some(&seg) {
            // The cursor's segment is gone (delivered): start at the next.
            seg = numbers.first().copied().unwrap_or(seg);
            head = 0;
        }
        if numbers.is_empty() {
            numbers.push(seg);
        }
        let mut segments = VecDeque::new();
        let mut count = 0;
        let mut bytes = 0;
        let last = *numbers.last().unwrap_or(&seg);
        for n in numbers {
            let path = segment_path(dir, n);
            let mut data = Vec::new();
            if let Ok(mut f) = File::open(&path) {
                f.read_to_end(&mut data)?;
            }
            // Only whole lines count; a torn tail is cut off.
            let whole = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if whole < data.len() || !path.exists() {
                let f = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(false)
                    .open(&path)?;
                f.set_len(whole as u64)?;
            }
            let from = if n == seg {
                (head as usize).min(whole)
            } else {
                0
            };
            count += data[from..whole].iter().filter(|b| **b == b'\n').count() as u64;
            bytes += (whole - from) as u64;
            segments.push_back((n, whole as u64));
        }
        let head = head.min(segments.front().map_or(0, |s| s.1));
        let writer = OpenOptions::new()
            .append(true)
            .open(segment_path(dir, last))?;
        Ok(Spool {
            dir: dir.to_owned(),
            segments,
            head,
            count,
            bytes,
            max_bytes,
            writer,
        })
    }

    /// Appends a record; `Ok(false)` when the spool is full (the record is
    /// not kept).
    pub fn push(&mut self, record: &[u8]) -> io::Result<bool> {
        if record.contains(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a spool record holds a line break",
            ));
        }
        let size = record.len() as u64 + 1;
        if self.bytes + size > self.max_bytes {
            return Ok(false);
        }
        let (last, len) = *self.segments.back().unwrap_or(&(0, 0));
        if len > 0 && len + size > SEGMENT_BYTES {
            let next = last + 1;
            self.writer = OpenOptions::new()
                .create(true)
                .append(true)
                .open(segment_path(&self.dir, next))?;
            self.segments.push_back((next, 0));
        }
        let mut line = Vec::with_capacity(record.len() + 1);
        line.extend_from_slice(record);
        line.push(b'\n');
        self.writer.write_all(&line)?;
        if let Some(back) = self.segments.back_mut() {
            back.1 += size;
        }
        self.count += 1;
        self.bytes += size;
        Ok(true)
    }

    /// The oldest undelivered record, if any.
    pub fn peek(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.count == 0 {
            return Ok(None);
        }
        // Segments read to their end move the head on.
        while let Some(&(n, len)) = self.segments.front() {
            if self.head < len || self.segments.len() == 1 {
                break;
            }
            std::fs::remove_file(segment_path(&self.dir, n))?;
            self.segments.pop_front();
            self.head = 0;
        }
        let Some(&(n, _)) = self.segments.front() else {
            return Ok(None);
        };
        let mut f = File::open(segment_path(&self.dir, n))?;
        f.seek(SeekFrom::Start(self.head))?;
        let mut line = Vec::new();
        BufReader::new(f).read_until(b'\n', &mut line)?;
        if line.pop() != Some(b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the spool's head record is cut short",
            ));
        }
        Ok(Some(line))
    }

    /// Removes the oldest record (after [`Spool::peek`] returned it) and
    /// records the new head on disk.
    pub fn pop(&mut self, record_len: usize) -> io::Result<()> {
        let size = record_len as u64 + 1;
        self.head += size;
        self.count = self.count.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(size);
        let seg = self.segments.front().map_or(0, |s| s.0);
        let tmp = self.dir.join("cursor.tmp");
        std::fs::write(&tmp, format!("{seg} {}\n", self.head))?;
        std::fs::rename(&tmp, self.dir.join(CURSOR))
    }

    /// Undelivered records.
    pub fn records(&self) -> u64 {
        self.count
    }

    /// Bytes of undelivered records.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.seg"))
}

/// The cursor's segment and offset; `(0, 0)` when there is none.
fn read_cursor(dir: &Path) -> (u64, u64) {
    std::fs::read_to_string(dir.join(CURSOR))
        .ok()
        .and_then(|t| {
            let (s, o) = t.trim().split_once(' ')?;
            Some((s.parse().ok()?, o.parse().ok()?))
        })
        .unwrap_or((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(s: &mut Spool) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(r) = s.peek().expect("peek") {
            s.pop(r.len()).expect("pop");
            out.push(String::from_utf8(r).expect("utf8"));
        }
        out
    }

    #[test]
    fn records_come_out_once_in_order_across_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spool::open(dir.path(), 1 << 20).expect("open");
        for i in 0..5 {
            assert!(s.push(format!("r{i}").as_bytes()).expect("push"));
        }
        let first = s.peek().expect("peek").expect("a record");
        s.pop(first.len()).expect("pop");
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(s.records(), 4);
        assert_eq!(drain(&mut s), ["r1", "r2", "r3", "r4"]);
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(s.records(), 0);
        assert!(s.push(b"r5").expect("push"));
        assert_eq!(drain(&mut s), ["r5"]);
    }

    #[test]
    fn a_full_spool_refuses_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spool::open(dir.path(), 10).expect("open");
        assert!(s.push(b"abcd").expect("push"));
        assert!(s.push(b"efgh").expect("push"));
        assert!(!s.push(b"x").expect("push"), "11 bytes are over 10");
        drop(s);
        let seg = segment_path(dir.path(), 0);
        let mut f = OpenOptions::new().append(true).open(&seg).expect("seg");
        f.write_all(b"torn").expect("write");
        let mut s = Spool::open(dir.path(), 100).expect("reopen");
        assert_eq!(drain(&mut s), ["abcd", "efgh"]);
    }

    #[test]
    fn segments_roll_over_and_delivered_ones_are_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spool::open(dir.path(), 8 << 20).expect("open");
        let record = vec![b'a'; 100_000];
        for _ in 0..25 {
            assert!(s.push(&record).expect("push"));
        }
        assert!(s.segments.len() >= 3);
        assert_eq!(drain(&mut s).len(), 25);
        let s = Spool::open(dir.path(), 8 << 20).expect("reopen");
        assert_eq!((s.records(), s.segments.len()), (0, 1));
    }
}
