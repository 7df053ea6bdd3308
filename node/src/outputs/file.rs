//! File output: one alert per line (the signed alert's JSON, or OCSF),
//! rotated by size as logrotate does: PATH becomes PATH.1, PATH.1 becomes
//! PATH.2, and so on up to `keep_files`; the oldest is deleted.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use amoskys_mesh::Alert;

use super::DeliveryError;
use super::format::Format;
use crate::config::OutputSection;

/// One JSON-lines file.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    format: Format,
    max_bytes: u64,
    keep: u64,
    file: Option<(File, u64)>,
}

impl FileSink {
    /// The sink of a validated `[[outputs]]` entry.
    pub fn new(o: &OutputSection) -> Self {
        Self {
            path: PathBuf::from(&o.path),
            format: Format::parse(&o.format),
            max_bytes: o.rotate_kib.saturating_mul(1024),
            keep: o.keep_files,
            file: None,
        }
    }

    /// Appends one alert, rotating first when it would pass the size.
    pub fn deliver(&mut self, alert: &Alert) -> Result<(), DeliveryError> {
        let mut line = self.format.render(alert);
        line.push('\n');
        let fail = |what: &str, e: std::io::Error| {
            DeliveryError::Transient(format!("cannot {what} {}: {e}", self.path.display()))
        };
        if self.file.is_none() {
            self.file = Some(open(&self.path).map_err(|e| fail("open", e))?);
        }
        if let Some((_, len)) = &self.file
            && *len > 0
            && len + line.len() as u64 > self.max_bytes
        {
            self.file = None;
            rotate(&self.path, self.keep).map_err(|e| fail("rotate", e))?;
            self.file = Some(open(&self.path).map_err(|e| fail("open", e))?);
        }
        let Some((file, len)) = self.file.as_mut() else {
            return Ok(());
        };
        if let Err(e) = file.write_all(line.as_bytes()) {
            self.file = None;
            return Err(fail("write", e));
        }
        *len += line.len() as u64;
        Ok(())
    }
}

/// The file for appending, and its size.
fn open(path: &Path) -> std::io::Result<(File, u64)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    let len = f.metadata()?.len();
    Ok((f, len))
}

/// PATH.n for n = keep-1 .. 1 moves to PATH.(n+1), PATH to PATH.1.
fn rotate(path: &Path, keep: u64) -> std::io::Result<()> {
    let numbered = |n: u64| {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    };
    if keep == 0 {
        return std::fs::remove_file(path);
    }
    for n in (1..keep).rev() {
        let from = numbered(n);
        if from.exists() {
            std::fs::rename(&from, numbered(n + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_rotate_by_size_and_the_oldest_file_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("alerts.jsonl");
        let mut sink = FileSink::new(&OutputSection {
            name: "f".into(),
            kind: "file".into(),
            path: path.display().to_string(),
            keep_files: 2,
            ..OutputSection::default()
        });
        sink.max_bytes = 1500;
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        for seq in 0..12 {
            let alert = Alert::sign(
                amoskys_mesh::AlertBody {
                    seq,
                    time_ns: 1,
                    severity: "low".into(),
                    category: "c".into(),
                    technique: "T1".into(),
                    rule: "r".into(),
                    score: 0.5,
                    subject: "s".into(),
                    evidence: Vec::new(),
                },
                &key,
            );
            sink.deliver(&alert).expect("written");
        }
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        let lines = |t: String| t.lines().count();
        let (now, one, two) = (
            read(path.clone()),
            read(dir.path().join("alerts.jsonl.1")),
            read(dir.path().join("alerts.jsonl.2")),
        );
        assert!(now.len() <= 1500 && one.len() <= 1500 && two.len() <= 1500);
        assert!(!dir.path().join("alerts.jsonl.3").exists());
        // Each line is one whole alert; the newest is last in PATH.
        let last = now.lines().last().expect("a line");
        assert_eq!(
            Alert::decode(last.as_bytes()).expect("an alert").body.seq,
            11
        );
        assert!(lines(now) + lines(one) + lines(two) < 12, "the oldest went");
    }
}
