//! `amoskys alerts review`: the alerts whose verdict would teach the
//! supervised head the most (`GET /api/v1/alerts/review`), and each kind's
//! head.

use super::client::{self, ClientError};
use super::cluster::ApiArgs;
use super::show::{self, print_table};

pub(super) fn run(api: ApiArgs, limit: usize, json: bool) -> std::process::ExitCode {
    client::run(review(api, limit, json))
}

async fn review(api: ApiArgs, limit: usize, json: bool) -> Result<(), ClientError> {
    let body = api
        .client()
        .get("/api/v1/alerts/review", &[("limit", limit.to_string())])
        .await?;
    if json {
        println!("{body}");
        return Ok(());
    }
    let empty = Vec::new();
    let heads = body["heads"].as_array().unwrap_or(&empty);
    println!(
        "head: {} (in force after {} verdicts of each class)",
        show::text(&body["head"]),
        body["min_per_class"]
    );
    let rows: Vec<Vec<String>> = heads
        .iter()
        .filter(|h| {
            h["local_attacks"].as_u64() > Some(0)
                || h["local_normals"].as_u64() > Some(0)
                || h["source"] == "federated"
        })
        .map(|h| {
            vec![
                show::text(&h["entity"]),
                show::text(&h["source"]),
                if h["in_force"] == true { "yes" } else { "no" }.to_owned(),
                format!("{} / {}", h["attacks"], h["normals"]),
                format!("{} / {}", h["local_attacks"], h["local_normals"]),
            ]
        })
        .collect();
    print_table(
        &["ENTITY", "HEAD", "IN FORCE", "TP / FP", "HERE TP / FP"],
        rows,
        "no verdicts yet",
    );
    println!();
    let rows: Vec<Vec<String>> = body["review"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|r| {
            let a = &r["alert"]["body"];
            vec![
                show::text(&r["id"]),
                r["time_ns"].as_u64().map_or("-".into(), show::when_ns),
                show::text(&r["entity"]),
                r["score"]
                    .as_f64()
                    .map_or("-".into(), |s| format!("{s:.2}")),
                r["head_probability"]
                    .as_f64()
                    .map_or("-".into(), |p| format!("{p:.2}")),
                show::text(&a["subject"]),
            ]
        })
        .collect();
    print_table(
        &["ALERT", "TIME", "ENTITY", "SCORE", "P(TRUE)", "SUBJECT"],
        rows,
        "nothing to review: no unjudged anomaly alert on this node",
    );
    Ok(())
}
