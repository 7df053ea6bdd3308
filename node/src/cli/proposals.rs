//! `amoskys proposals list` and `amoskys policy approve ID`: the changes
//! waiting for admins of several nodes (`[governance] approvals` in the
//! policy; docs/CLUSTER.md, "Changes that need several sites").

use std::process::ExitCode;

use clap::Subcommand;

use super::client::{self, ClientError};
use super::cluster::ApiArgs;
use super::show::{self, print_table};

#[derive(Debug, Subcommand)]
pub enum ProposalsCommand {
    /// Proposals, newest first: what each changes, its approvals and
    /// status.
    List {
        /// Only the ones still open.
        #[arg(long)]
        open: bool,
        #[command(flatten)]
        api: ApiArgs,
        /// Print the API's JSON answer (with each proposed policy document).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: ProposalsCommand) -> ExitCode {
    client::run(async {
        match cmd {
            ProposalsCommand::List { open, api, json } => list(&api, open, json).await,
        }
    })
}

async fn list(api: &ApiArgs, open: bool, json: bool) -> Result<(), ClientError> {
    let v = api.client().get("/api/v1/proposals", &[]).await?;
    if json {
        println!("{v}");
        return Ok(());
    }
    println!(
        "approvals needed: {} (from admins of distinct nodes); proposals expire after {} s",
        show::text(&v["approvals"]),
        show::text(&v["proposal_ttl_secs"])
    );
    let rows = v["proposals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| !open || p["status"] == "open")
        .map(row)
        .collect();
    print_table(
        &[
            "ID",
            "STATUS",
            "APPROVALS",
            "CHANGE",
            "PROPOSED BY",
            "EXPIRES",
        ],
        rows,
        if open {
            "no open proposals"
        } else {
            "no proposals"
        },
    );
    Ok(())
}

fn row(p: &serde_json::Value) -> Vec<String> {
    let approvals = p["approvals"].as_array().map_or(0, Vec::len);
    let proposer = &p["approvals"][0];
    let by = format!(
        "{} on {}",
        show::text(&proposer["operator"]),
        show::peer(&proposer["node"])
    );
    let mut status = show::text(&p["status"]);
    if let Some(reason) = p["reason"].as_str() {
        status = format!("{status}: {reason}");
    }
    vec![
        show::text(&p["id"]),
        status,
        format!("{approvals} of {}", show::text(&p["needed"])),
        show::text(&p["summary"]),
        by,
        p["expires_ns"].as_u64().map_or("-".into(), show::when_ns),
    ]
}

/// `amoskys policy approve ID`: this operator's approval, through the node
/// at `--api`.
pub(super) async fn approve(id: u64, api: &ApiArgs) -> Result<(), ClientError> {
    let path = format!("/api/v1/proposals/{id}/approve");
    let v = api.client().post(&path, None).await?;
    if v["status"] == "applied" {
        println!("proposal {id} approved and applied on every node");
    } else {
        println!(
            "proposal {id} approved: {} of {} approvals; it applies once admins on {} nodes approve it",
            show::text(&v["approvals"]),
            show::text(&v["needed"]),
            show::text(&v["needed"])
        );
    }
    Ok(())
}

/// When a write became a proposal (`202`), says so and returns true.
pub(super) fn print_if_proposed(v: &serde_json::Value) -> bool {
    let Some(id) = v["proposal"].as_u64() else {
        return false;
    };
    println!(
        "proposal {id} made: it applies once admins on {} nodes approve it (yours is the first); \
         on another node: amoskys policy approve {id}",
        show::text(&v["needed"])
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_names_the_change_its_approvals_and_the_proposer() {
        let p = serde_json::json!({
            "id": 3, "status": "open", "needed": 2, "summary": "activate model version 4",
            "approvals": [{"operator": "alice", "node": "12D3KooWabc", "time_ns": 1}],
            "expires_ns": 1_800_000_000_000_000_000u64,
        });
        let r = row(&p);
        assert_eq!(r[0], "3");
        assert_eq!(r[2], "1 of 2");
        assert_eq!(r[3], "activate model version 4");
        assert_eq!(r[4], "alice on 12D3KooWabc");
        assert!(r[5].starts_with("2027-"), "{}", r[5]);
        assert!(print_if_proposed(
            &serde_json::json!({"proposal": 3, "needed": 2})
        ));
        assert!(!print_if_proposed(&serde_json::json!({"version": 3})));
    }
}
