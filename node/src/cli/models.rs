//! `amoskys models list|train`: the node's anomaly models, through its API.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Show the models in use and the trainer's last run.
    List {
        /// API address of the node.
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300")]
        api: String,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Ask the node to retrain its models now (returns once queued).
    Train {
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300")]
        api: String,
    },
    /// Make a registered version the one every node uses (pin or roll
    /// back).
    Activate {
        version: u64,
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7300")]
        api: String,
    },
}

pub fn run(cmd: ModelsCommand) -> ExitCode {
    let result = match cmd {
        ModelsCommand::List { api, json } => super::block_on(list(api, json)),
        ModelsCommand::Train { api } => super::block_on(train(api)),
        ModelsCommand::Activate { version, api } => super::block_on(async move {
            let path = format!("/api/v1/models/{version}/activate");
            super::cluster::call(&api, reqwest::Method::POST, &path, None).await?;
            println!("model version {version} is active on every node");
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("amoskys: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn list(api: String, json: bool) -> Result<(), String> {
    let url = format!("http://{api}/api/v1/models");
    let body: serde_json::Value = reqwest::Client::new()
        .get(&url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("cannot reach the node API at {api}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("unexpected answer from {url}: {e}"))?;
    if json {
        println!("{body}");
        return Ok(());
    }
    if body["learning"] != true {
        println!("learning is disabled on this node");
    }
    let models = body["models"].as_array().cloned().unwrap_or_default();
    if models.is_empty() {
        println!("no model yet");
    }
    for m in &models {
        println!(
            "{:<8} {:<10} {} rows  threshold {:.2}  sha256 {}",
            m["entity"].as_str().unwrap_or("?"),
            m["model"].as_str().unwrap_or("?"),
            m["train_rows"],
            m["threshold"].as_f64().unwrap_or(f64::NAN),
            m["sha256"].as_str().unwrap_or("?"),
        );
    }
    let registry = &body["registry"];
    let active = registry["active"].as_u64();
    for v in registry["versions"].as_array().into_iter().flatten() {
        let version = v["version"].as_u64().unwrap_or(0);
        println!(
            "v{version:<4}{} parent {} round {} sha256 {} metrics {}",
            if Some(version) == active { "*" } else { " " },
            v["parent"].as_u64().map_or("-".into(), |p| p.to_string()),
            v["round"].as_u64().map_or("-".into(), |r| r.to_string()),
            v["sha256"].as_str().unwrap_or("?"),
            v["metrics"],
        );
    }
    let t = &body["trainer"];
    if t.is_object() {
        println!(
            "trainer: {} run(s){}{}",
            t["runs"],
            if t["running"] == true {
                ", running"
            } else {
                ""
            },
            if t["queued"] == true {
                ", one queued"
            } else {
                ""
            },
        );
        for k in t["last"]["kinds"].as_array().into_iter().flatten() {
            if let Some(why) = k["skipped"].as_str() {
                println!(
                    "  {}: no model ({why})",
                    k["entity"].as_str().unwrap_or("?")
                );
            }
        }
    }
    Ok(())
}

async fn train(api: String) -> Result<(), String> {
    super::cluster::call(&api, reqwest::Method::POST, "/api/v1/models/train", None).await?;
    println!("training queued; see `amoskys models list --api {api}`");
    Ok(())
}
