//! `amoskys operator …`: operator keys and the cluster's operators, and
//! `amoskys api`: any API request, signed like every other command (what a
//! script uses where it would use curl).

use std::path::PathBuf;
use std::process::ExitCode;

use amoskys_consensus::operators::rotation_statement;
use amoskys_node::auth::{keygen_operator, load_public_key, load_signing_key};
use clap::{Args, Subcommand};
use ed25519_dalek::Signer as _;
use reqwest::Method;

use super::client::{self, Body, ClientError, segment};
use super::cluster::ApiArgs;
use super::show::{self, print_table};

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Write a new operator key: NAME.key (private, 0600) and NAME.key.pub.
    Keygen {
        /// The operator's name (the file name when --out is not given).
        name: String,
        /// Where to write the private key; the public key goes to FILE.pub.
        #[arg(long, short = 'o', value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Add an operator to the cluster (admins only).
    Add {
        name: String,
        /// The operator's public key file (`operator keygen` wrote it).
        #[arg(long = "pub", value_name = "FILE.pub")]
        public: PathBuf,
        /// viewer, analyst or admin.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Remove an operator (never the last admin).
    Remove {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Change an operator's role.
    Role {
        name: String,
        /// viewer, analyst or admin.
        role: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The cluster's operators.
    List {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        json: bool,
    },
    /// Hand over to a new key: the current key (--key) and the new one both
    /// sign; from then on only the new key works, on every node.
    Rotate {
        /// The new private key (`operator keygen` writes one).
        #[arg(long = "new", value_name = "FILE")]
        new: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Which operator the key in use is, on that node.
    Whoami {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print a one-time link that signs a browser in to the node's web
    /// console as the key's operator (valid 60 s, once).
    Login {
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn operator(cmd: OperatorCommand) -> ExitCode {
    if let OperatorCommand::Keygen { name, out } = cmd {
        return client::finish(keygen(&name, out));
    }
    client::run(async {
        match cmd {
            OperatorCommand::Keygen { .. } => unreachable!("handled above"),
            OperatorCommand::Add {
                name,
                public,
                role,
                api,
            } => {
                let key =
                    load_public_key(&public).map_err(|e| ClientError::Local(e.to_string()))?;
                let body = serde_json::json!({
                    "name": name,
                    "key": hex::encode(key.to_bytes()),
                    "role": role,
                });
                let v = api
                    .client()
                    .post("/api/v1/operators", Some(Body::Json(body)))
                    .await?;
                println!(
                    "added {} as {}",
                    show::text(&v["name"]),
                    show::text(&v["role"])
                );
            }
            OperatorCommand::Remove { name, api } => {
                api.client()
                    .delete(&format!("/api/v1/operators/{}", segment(&name)), &[])
                    .await?;
                println!("removed {name}");
            }
            OperatorCommand::Role { name, role, api } => {
                let v = api
                    .client()
                    .put(
                        &format!("/api/v1/operators/{}", segment(&name)),
                        Body::Json(serde_json::json!({ "role": role })),
                    )
                    .await?;
                println!("{name} is now {}", show::text(&v["role"]));
            }
            OperatorCommand::List { api, json } => {
                let v = api.client().get("/api/v1/operators", &[]).await?;
                if json {
                    println!("{v}");
                    return Ok(());
                }
                let rows = v["operators"]
                    .as_array()
                    .map(|ops| {
                        ops.iter()
                            .map(|op| {
                                vec![
                                    show::text(&op["name"]),
                                    show::text(&op["role"]),
                                    show::text(&op["key"]),
                                    show::text(&op["added_by"]),
                                    op["added_ns"].as_u64().map_or("-".into(), show::when_ns),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                print_table(
                    &["NAME", "ROLE", "KEY", "ADDED BY", "ADDED"],
                    rows,
                    "no operators (the cluster is not formed yet)",
                );
            }
            OperatorCommand::Rotate { new, api } => {
                let client = api.client();
                let me = client.get("/api/v1/whoami", &[]).await?;
                let name = me["name"].as_str().unwrap_or_default().to_owned();
                let old = client.operator_key().await?;
                let new = load_signing_key(&new).map_err(|e| ClientError::Local(e.to_string()))?;
                let (old_hex, new_hex) = (
                    hex::encode(old.verifying_key().to_bytes()),
                    hex::encode(new.verifying_key().to_bytes()),
                );
                let statement = rotation_statement(&name, &old_hex, &new_hex);
                let body = serde_json::json!({
                    "key": new_hex,
                    "old_sig": hex::encode(old.sign(&statement).to_bytes()),
                    "new_sig": hex::encode(new.sign(&statement).to_bytes()),
                });
                client
                    .post(
                        &format!("/api/v1/operators/{}/rotate", segment(&name)),
                        Some(Body::Json(body)),
                    )
                    .await?;
                println!("{name} now signs with {new_hex}; the old key is refused on every node");
            }
            OperatorCommand::Login { api } => {
                let client = api.client();
                let v = client.post("/api/v1/console/login", None).await?;
                println!("{}{}", client.base(), show::text(&v["path"]));
                eprintln!(
                    "open it within {} s to sign in as {} ({}); it works once",
                    show::text(&v["expires_secs"]),
                    show::text(&v["operator"]),
                    show::text(&v["role"])
                );
            }
            OperatorCommand::Whoami { api } => {
                let v = api.client().get("/api/v1/whoami", &[]).await?;
                println!(
                    "{} ({}) on {}",
                    show::text(&v["name"]),
                    show::text(&v["role"]),
                    show::peer(&v["node"])
                );
            }
        }
        Ok(())
    })
}

fn keygen(name: &str, out: Option<PathBuf>) -> Result<(), ClientError> {
    amoskys_consensus::operators::check_name(name).map_err(ClientError::Local)?;
    let path = out.unwrap_or_else(|| PathBuf::from(format!("{name}.key")));
    let public = keygen_operator(&path).map_err(|e| ClientError::Local(e.to_string()))?;
    println!("wrote {} (private, mode 0600)", path.display());
    println!("wrote {}.pub", path.display());
    println!("public key  {public}");
    println!(
        "an admin adds it with: amoskys operator add {name} --pub {}.pub --role viewer|analyst|admin",
        path.display()
    );
    Ok(())
}

/// `amoskys api METHOD PATH`
#[derive(Debug, Args)]
pub struct RawArgs {
    /// GET, POST, PUT or DELETE.
    method: String,
    /// Path and query, e.g. '/api/v1/events?kind=process_activity&limit=20'.
    path: String,
    /// A request body; `@FILE` reads it from a file, `@-` from stdin.
    #[arg(long, short = 'd', value_name = "BODY")]
    data: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

/// Sends one signed request and prints the answer as it came.
pub fn raw(args: RawArgs) -> ExitCode {
    client::run(async move {
        let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| ClientError::Local(format!("{:?} is not an HTTP method", args.method)))?;
        if !args.path.starts_with('/') {
            return Err(ClientError::Local(format!(
                "the path {:?} must start with / (e.g. /api/v1/node)",
                args.path
            )));
        }
        let body = match args.data.as_deref() {
            None => None,
            Some("@-") => Some(std::io::read_to_string(std::io::stdin()).map_err(|e| {
                ClientError::Local(format!("cannot read the body from stdin: {e}"))
            })?),
            Some(d) => match d.strip_prefix('@') {
                Some(file) => Some(std::fs::read_to_string(file).map_err(|e| {
                    ClientError::Local(format!("cannot read the body from {file}: {e}"))
                })?),
                None => Some(d.to_owned()),
            },
        };
        let body = body.map(|b| match serde_json::from_str(&b) {
            Ok(json) => Body::Json(json),
            Err(_) => Body::Text(b),
        });
        let text = args
            .api
            .client()
            .text(
                method,
                &args.path,
                &[],
                body,
                std::time::Duration::from_secs(30),
            )
            .await?;
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
        Ok(())
    })
}
