//! Storage: queries, reopen, lock and permission errors, and no loss of
//! acknowledged writes when the writing process is killed with SIGKILL.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use amoskys_node::storage::{EventQuery, StorageError, Store};
use amoskys_sensors::event::ProcessActivityKind;
use amoskys_sensors::{Event, EventBody, EventClass, ProcessActivity, ProcessInfo};

fn event(time_ns: u64, pid: i32) -> Event {
    Event::new(
        time_ns,
        "test-host",
        "test",
        EventBody::ProcessActivity(ProcessActivity {
            activity: ProcessActivityKind::Launch,
            process: ProcessInfo {
                pid,
                ppid: 1,
                name: "t".into(),
                exe: "/bin/t".into(),
                cmdline: vec!["t".into(), "--flag".into()],
                uid: 0,
                start_time_ns: time_ns,
                cwd: String::new(),
            },
            lineage: vec![],
        }),
    )
}

fn all_events(store: &Store) -> Vec<u64> {
    let q = EventQuery {
        class: None,
        since_ns: Some(0),
        limit: usize::MAX,
    };
    store
        .events(&q)
        .expect("query")
        .iter()
        .map(|e| e.seq)
        .collect()
}

#[test]
fn queries_and_reopen_keep_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("open");
        let batch: Vec<Event> = (0..10).map(|i| event(1_000 + i, i as i32)).collect();
        assert_eq!(store.put_events(&batch).expect("write"), 0);
        let since = store
            .events(&EventQuery {
                class: Some(EventClass::ProcessActivity),
                since_ns: Some(1_005),
                limit: 3,
            })
            .expect("query");
        assert_eq!(
            since.iter().map(|e| e.event.time_ns).collect::<Vec<_>>(),
            vec![1_005, 1_006, 1_007]
        );
        let newest = store
            .events(&EventQuery {
                limit: 2,
                ..Default::default()
            })
            .expect("query");
        assert_eq!(
            newest.iter().map(|e| e.event.time_ns).collect::<Vec<_>>(),
            vec![1_008, 1_009]
        );
        store.delete_events_before(1_003).expect("retention");
        assert_eq!(all_events(&store).len(), 7);
    }
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        store.events_written(),
        10,
        "sequence continues after reopen"
    );
    assert_eq!(store.put_events(&[event(2_000, 1)]).expect("write"), 10);
    assert_eq!(all_events(&store), vec![3, 4, 5, 6, 7, 8, 9, 10]);
}

#[test]
fn size_retention_deletes_the_oldest_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    for chunk in 0..20u64 {
        let batch: Vec<Event> = (0..1_000)
            .map(|i| event(chunk * 1_000 + i, i as i32))
            .collect();
        store.put_events(&batch).expect("write");
        store.flush_events().expect("flush");
    }
    let before = store.events_bytes().expect("size");
    assert!(
        store
            .enforce_events_size(before * 10)
            .expect("under limit")
            .is_none()
    );
    let cutoff = store
        .enforce_events_size(before / 2)
        .expect("over limit")
        .expect("deleted some");
    let left = all_events(&store);
    assert!(
        !left.is_empty() && left.len() < 20_000,
        "{} left",
        left.len()
    );
    assert!(left.contains(&19_999), "newest kept");
    assert!(!left.contains(&0), "oldest gone");
    let after = store.events_bytes().expect("size");
    assert!(after < before, "size {before} -> {after}, cutoff {cutoff}");
}

/// Open files of this process that refer to `dir` itself (Linux).
fn directory_handles(dir: &std::path::Path) -> usize {
    let dir = dir.canonicalize().expect("the directory exists");
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd (Linux)")
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == dir))
        .count()
}

/// Labs run hundreds of nodes on one host, so a node's open files count:
/// a new database holds as few directory handles as a reopened one.
#[test]
fn a_new_store_holds_two_directory_handles() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("db");
    let store = Store::open(&path).expect("store opens");
    assert_eq!(directory_handles(&path), 2);
    drop(store);
    let _store = Store::open(&path).expect("store opens");
    assert_eq!(directory_handles(&path), 2);
}

#[test]
fn second_opener_gets_a_clear_lock_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = Store::open(dir.path()).expect("open");
    let err = Store::open(dir.path()).expect_err("locked");
    assert!(matches!(err, StorageError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("locked by another running node"),
        "{err}"
    );
}

#[test]
fn unwritable_data_dir_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").expect("write");
    let err = Store::open(&file.join("db")).expect_err("not a directory");
    assert!(matches!(err, StorageError::Unwritable { .. }), "{err}");
    assert!(err.to_string().contains("a-file/db"), "{err}");
}

/// Child side of `acknowledged_writes_survive_sigkill`: writes batches forever
/// (bounded to 30 s) and prints the event count after each acknowledged write.
#[test]
#[ignore = "child process of acknowledged_writes_survive_sigkill"]
fn sigkill_child_writer() {
    let Some(dir) = std::env::var_os("AMOSKYS_TEST_WRITER_DIR") else {
        return;
    };
    let store = Store::open(std::path::Path::new(&dir)).expect("child opens");
    let mut out = std::io::stdout().lock();
    let start = Instant::now();
    let mut t = 1u64;
    while start.elapsed() < Duration::from_secs(30) {
        let batch: Vec<Event> = (0..200).map(|i| event(t + i, i as i32)).collect();
        t += 200;
        store.put_events(&batch).expect("child writes");
        writeln!(out, "ack {}", store.events_written()).expect("stdout");
        out.flush().expect("flush");
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "sigkill_child_writer",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("AMOSKYS_TEST_WRITER_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().expect("stdout");
    let mut acked = 0u64;
    let mut acks = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(n) = line.strip_prefix("ack ") {
            acked = n.trim().parse().expect("count");
            acks += 1;
            if acks == 50 {
                // Kill mid-stream: the child is writing its next batch.
                child.kill().expect("SIGKILL");
                break;
            }
        }
    }
    child.wait().expect("reap");
    assert_eq!(acks, 50, "writer produced acknowledgements");

    let store = Store::open(dir.path()).expect("reopen after SIGKILL");
    let seqs = all_events(&store);
    assert!(
        seqs.len() as u64 >= acked,
        "{} events stored, {acked} acknowledged",
        seqs.len()
    );
    assert!(
        seqs.iter().copied().eq(0..seqs.len() as u64),
        "no gap in the stored sequence"
    );
    assert!(store.events_written() >= acked);
}
