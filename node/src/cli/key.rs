//! `amoskys key rotate`: hands the node's identity over to a new key
//! (docs/SECURITY.md, "Rotating keys").

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;

use super::ConfigArgs;
use super::client::{self, ClientError};
use super::cluster::ApiArgs;

/// How long `key rotate` waits for the node to come back as its successor
/// and take the old key's seat (a voter's, or a learner's).
const WAIT: Duration = Duration::from_secs(90);

#[derive(Debug, Subcommand)]
pub(super) enum KeyCommand {
    /// Give this node a new key: the old and the new key sign the
    /// hand-over, the node restarts as its successor, and the cluster
    /// swaps it in (a voter stays a voter). Alerts the old key signed stay
    /// valid; later ones are refused everywhere.
    Rotate {
        #[command(flatten)]
        api: ApiArgs,
        /// The node is stopped: stage the new key in its data directory;
        /// the next start hands over.
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

pub(super) fn run(cmd: KeyCommand) -> ExitCode {
    let KeyCommand::Rotate {
        api,
        offline,
        config,
    } = cmd;
    if offline {
        return client::finish(stage_offline(&config));
    }
    client::run(rotate(api))
}

fn stage_offline(config: &ConfigArgs) -> Result<(), ClientError> {
    let config = config
        .load()
        .map_err(|e| ClientError::Local(e.to_string()))?;
    let dir = config.data_dir();
    let next =
        amoskys_node::rotation::stage(&dir).map_err(|e| ClientError::Local(e.to_string()))?;
    println!(
        "staged successor key {} in {}; the node hands over at its next start",
        next.peer_id(),
        dir.join(amoskys_node::rotation::NEXT_KEY_FILE).display()
    );
    Ok(())
}

async fn rotate(api: ApiArgs) -> Result<(), ClientError> {
    let before = api.client().get("/api/v1/cluster", &[]).await?["cluster"].take();
    let listed_in = |c: &serde_json::Value, role: &str, id: &str| {
        c[role]
            .as_array()
            .is_some_and(|ids| ids.iter().any(|i| i.as_str() == Some(id)))
    };
    let was_voter = before["id"]
        .as_str()
        .is_some_and(|me| listed_in(&before, "voters", me));
    let v = api.client().post("/api/v1/node/key/rotate", None).await?;
    let (old, new) = (
        v["old"].as_str().unwrap_or_default().to_owned(),
        v["new"].as_str().unwrap_or_default().to_owned(),
    );
    println!("old key   {old}");
    println!("new key   {new}");
    println!("the node restarts as its successor...");
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // A new client each time: the node's id changes with the restart.
        let Ok(mut c) = api.client().get("/api/v1/cluster", &[]).await else {
            continue;
        };
        let c = c["cluster"].take();
        let voter = listed_in(&c, "voters", &new);
        let seated = if was_voter {
            voter
        } else {
            voter || listed_in(&c, "learners", &new)
        };
        if c["id"].as_str() == Some(new.as_str()) && seated {
            let role = if voter { "voter" } else { "learner" };
            println!("the cluster committed the hand-over; {new} is a {role}");
            return Ok(());
        }
    }
    Err(ClientError::Failed(format!(
        "the node did not come back as {new} in the cluster within {}s; see its log and \
         `amoskys cluster status` (the hand-over is kept in handover.json and sent again)",
        WAIT.as_secs()
    )))
}
