//! `amoskys-testnet`: a namespace testnet of real nodes, driven across
//! invocations through its state directory.
//!
//! ```text
//! amoskys-testnet up N [--dir DIR] [--amoskys PATH]
//! amoskys-testnet partition 0,1 2,3,4 [--dir DIR]
//! amoskys-testnet heal | kill I | restart I | loss I PERCENT | status | down
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use amoskys_testnet::{Options, Testnet};

fn usage() -> ExitCode {
    eprintln!(
        "usage: amoskys-testnet up N | partition A B | heal | kill I | restart I | loss I PERCENT | status | down   [--dir DIR] [--amoskys PATH]"
    );
    ExitCode::from(2)
}

fn group(s: &str) -> Option<Vec<usize>> {
    s.split(',').map(|x| x.trim().parse().ok()).collect()
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take = |flag: &str| -> Option<String> {
        let i = args.iter().position(|a| a == flag)?;
        let v = args.get(i + 1).cloned();
        args.drain(i..(i + 2).min(args.len()));
        v
    };
    let dir = PathBuf::from(take("--dir").unwrap_or_else(|| "/tmp/amoskys-testnet".into()));
    let amoskys = take("--amoskys")
        .map(PathBuf::from)
        .unwrap_or_else(amoskys_testnet::built_amoskys);
    let verb: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match verb.as_slice() {
        ["up", n] => match n.parse() {
            Ok(nodes) => Testnet::up(&Options {
                nodes,
                amoskys,
                dir: dir.clone(),
                sets: Vec::new(),
            })
            .map(|mut t| {
                t.owned = false;
                for h in &t.hosts {
                    println!("{}  {}  {}", h.ns, h.addr, h.peer_id);
                }
            }),
            Err(_) => return usage(),
        },
        [verb, rest @ ..] => {
            let mut t = match Testnet::load(&dir) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("amoskys-testnet: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let index = |s: Option<&&str>| s.and_then(|x| x.parse::<usize>().ok());
            match (*verb, rest) {
                ("down", []) => {
                    t.down();
                    let _ = std::fs::remove_file(dir.join("state.json"));
                    Ok(())
                }
                ("status", []) => {
                    println!("{}", serde_json::to_string_pretty(&t).unwrap_or_default());
                    Ok(())
                }
                ("heal", []) => t.heal(),
                ("partition", [a, b]) => match (group(a), group(b)) {
                    (Some(a), Some(b)) => t.partition(&a, &b),
                    _ => return usage(),
                },
                ("kill", [i]) => match index(Some(i)) {
                    Some(i) => t.kill(i),
                    None => return usage(),
                },
                ("restart", [i]) => match index(Some(i)) {
                    Some(i) => t.kill(i).and_then(|()| t.start_node(i, &[])),
                    None => return usage(),
                },
                ("loss", [i, p]) => match (index(Some(i)), p.parse()) {
                    (Some(i), Ok(p)) => t.loss(i, p),
                    _ => return usage(),
                },
                _ => return usage(),
            }
        }
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("amoskys-testnet: {e}");
            ExitCode::FAILURE
        }
    }
}
