//! Case notes: status, assignee, notes, limits and retirement.

use super::cases::{CaseError, CaseNotes, MAX_NOTE_BYTES, Status};
use super::doc::author_hex;
use super::sync::PeerSync;
use super::{Side, converge, key};

const DAY: u64 = 86_400_000;

#[test]
fn ack_status_assignee_and_notes() {
    let k = key(1);
    let mut cases = CaseNotes::new();
    assert_eq!(cases.show("a1").status, Status::New);
    let case = cases.ack("a1", Some("alice"), 1_000, &k).unwrap();
    assert_eq!(case.status, Status::Acknowledged);
    assert_eq!(case.assignee.as_deref(), Some("alice"));
    assert_eq!(case.status_set.as_ref().unwrap().by, author_hex(&k));
    cases.note("a1", "first", 1_100, &k).unwrap();
    cases.note("a1", "same millisecond", 1_100, &k).unwrap();
    cases.assign("a1", None, 1_200, &k).unwrap();
    let case = cases.set_status("a1", Status::Resolved, 1_300, &k).unwrap();
    assert_eq!(case.notes.len(), 2);
    assert_eq!(case.assignee, None);
    assert_eq!(case.last_ms, 1_300);
    cases.note("a2", "another alert", 1_000, &k).unwrap();
    let alerts: Vec<_> = cases.list().into_iter().map(|c| c.alert).collect();
    assert_eq!(alerts, ["a1", "a2"]);
    assert_eq!(
        "false_positive".parse::<Status>(),
        Ok(Status::FalsePositive)
    );
}

#[test]
fn limits_give_clear_errors() {
    let k = key(1);
    let mut cases = CaseNotes::new();
    let long = "x".repeat(MAX_NOTE_BYTES + 1);
    let err = cases.note("a1", &long, 1, &k).unwrap_err();
    assert_eq!(
        err,
        CaseError::NoteTooLong {
            len: MAX_NOTE_BYTES + 1
        }
    );
    assert!(err.to_string().contains("over the limit of 4096"));
    assert_eq!(cases.note("a1", "  ", 1, &k), Err(CaseError::NoteEmpty));
    assert!(matches!(
        cases.ack("a/1", None, 1, &k),
        Err(CaseError::AlertId(_))
    ));
    assert!(matches!(
        cases.assign("a1", Some(""), 1, &k),
        Err(CaseError::Assignee(_))
    ));
    assert!(
        "closed"
            .parse::<Status>()
            .unwrap_err()
            .to_string()
            .contains("not one of")
    );
    assert!(cases.list().is_empty());
}

#[test]
fn closed_old_cases_are_retired_at_compaction() {
    let k = key(1);
    let mut cases = CaseNotes::new();
    cases.note("old-closed", "done", 0, &k).unwrap();
    cases
        .set_status("old-closed", Status::FalsePositive, 1, &k)
        .unwrap();
    cases.note("old-open", "still open", 0, &k).unwrap();
    cases
        .set_status("new-closed", Status::Resolved, 9 * DAY, &k)
        .unwrap();
    let report = cases.compact(10 * DAY, 7 * DAY, &k).unwrap();
    assert_eq!(report.entries_dropped, 2);
    let alerts: Vec<_> = cases.list().into_iter().map(|c| c.alert).collect();
    assert_eq!(alerts, ["new-closed", "old-open"]);
}

/// Retirement during a rebase is judged on the joined state: our old notes
/// on a case that is active in the snapshot are kept.
#[test]
fn rebase_keeps_old_notes_of_a_case_active_elsewhere() {
    let (ka, kb) = (key(1), key(2));
    let (mut a, mut b) = (CaseNotes::new(), CaseNotes::new());
    b.note("a9", "old note from b", 1_000, &kb).unwrap();
    b.set_status("a9", Status::Resolved, 1_001, &kb).unwrap();
    a.note("a9", "recent note from a", 3 * DAY - 1, &ka)
        .unwrap();
    a.compact(3 * DAY, DAY, &ka).unwrap();
    let (mut pa, mut pb) = (PeerSync::new(), PeerSync::new());
    converge(
        Side {
            doc: a.document_mut(),
            key: &ka,
            peer: &mut pa,
        },
        Side {
            doc: b.document_mut(),
            key: &kb,
            peer: &mut pb,
        },
    );
    let case = a.show("a9");
    assert_eq!(case, b.show("a9"));
    assert_eq!(case.notes.len(), 2);
    assert_eq!(case.status, Status::Resolved);
}
