//! Throughput of the flow sensor's hot path: parse + flow-table update.
//!
//! A recorded buffer of realistic frames is built in memory once: TCP
//! connections over IPv4, IPv6 and 802.1Q (handshake, request, response
//! segments, ACKs, FIN both ways), UDP request/response pairs and ICMP echo
//! exchanges, interleaved so that about 1,000 flows are open at a time. Each
//! run feeds the whole buffer through `parse` and `FlowTable::update` on one
//! thread with synthetic timestamps (expiry every 10,000 packets, a flush at
//! the end) and is timed. No capture: this measures what one capture thread
//! can sustain once the kernel hands it frames.
//!
//! Run: `cargo bench -p amoskys-sensors --bench flows`. Under `cargo test
//! --all-targets` (no `--bench` argument, unoptimised build) it does a short
//! smoke run that checks the results and prints no throughput verdict.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use amoskys_sensors::FlowRecord;
use amoskys_sensors::flows::synth::{self, TcpFlags};
use amoskys_sensors::flows::{FlowTable, TableConfig, parse};

const TCP_V4: u32 = 8_000;
const TCP_V6: u32 = 2_000;
const TCP_VLAN: u32 = 2_000;
const UDP: u32 = 10_000;
const ICMP: u32 = 2_000;
/// Flows interleaved with each other.
const CONCURRENT: usize = 1_000;
/// Synthetic time between two packets (50,000 packets/s of wire time).
const STEP_NS: u64 = 20_000;
const EXPIRE_EVERY: usize = 10_000;
const RUNS: usize = 7;

/// Frames stored back to back, as a capture file would hold them.
struct Recording {
    bytes: Vec<u8>,
    frames: Vec<(usize, usize)>,
    flows: usize,
}

impl Recording {
    fn push(&mut self, frame: &[u8]) {
        self.frames.push((self.bytes.len(), frame.len()));
        self.bytes.extend_from_slice(frame);
    }

    fn frame(&self, i: usize) -> &[u8] {
        let (start, len) = self.frames[i];
        &self.bytes[start..start + len]
    }
}

fn v4(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff)))
}

fn v6(n: u32) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(
        0xfd00,
        0,
        0,
        0,
        0,
        0,
        (n >> 16) as u16,
        n as u16,
    ))
}

/// The packets of one TCP connection from `c` to `s`.
fn tcp_connection(c: SocketAddr, s: SocketAddr, vlan: Option<u16>) -> Vec<Vec<u8>> {
    const SA: u8 = TcpFlags::SYN | TcpFlags::ACK;
    const A: u8 = TcpFlags::ACK;
    const PA: u8 = TcpFlags::PSH | TcpFlags::ACK;
    const FA: u8 = TcpFlags::FIN | TcpFlags::ACK;
    let script: [(bool, u8, usize); 12] = [
        (true, TcpFlags::SYN, 0),
        (false, SA, 0),
        (true, A, 0),
        (true, PA, 220),
        (false, A, 1448),
        (false, A, 1448),
        (true, A, 0),
        (false, PA, 610),
        (true, A, 0),
        (true, FA, 0),
        (false, FA, 0),
        (true, A, 0),
    ];
    script
        .iter()
        .map(|&(up, flags, len)| {
            let (from, to) = if up { (c, s) } else { (s, c) };
            let f = synth::tcp(from, to, flags, len);
            match vlan {
                Some(id) => synth::with_vlan(&f, id),
                None => f,
            }
        })
        .collect()
}

fn build(scale: u32) -> Recording {
    let mut flows: Vec<Vec<Vec<u8>>> = Vec::new();
    let server4 = v4(0x00_0001);
    for n in 0..TCP_V4 / scale {
        let c = SocketAddr::new(v4(0x01_0000 + n / 20_000), 20_000 + (n % 40_000) as u16);
        flows.push(tcp_connection(c, SocketAddr::new(server4, 443), None));
    }
    for n in 0..TCP_V6 / scale {
        let c = SocketAddr::new(v6(0x2_0000 + n), 33_000);
        flows.push(tcp_connection(c, SocketAddr::new(v6(1), 443), None));
    }
    for n in 0..TCP_VLAN / scale {
        let c = SocketAddr::new(v4(0x03_0000 + n), 41_000);
        flows.push(tcp_connection(c, SocketAddr::new(server4, 8080), Some(100)));
    }
    for n in 0..UDP / scale {
        let c = SocketAddr::new(v4(0x04_0000 + n / 1000), 10_000 + (n % 1000) as u16);
        let s = SocketAddr::new(v4(0x00_0035), 53);
        flows.push(vec![synth::udp(c, s, 40), synth::udp(s, c, 120)]);
    }
    for n in 0..ICMP / scale {
        let (c, s) = (v4(0x05_0000 + n), v4(0x00_0002));
        flows.push(vec![
            synth::echo(c, s, false, n as u16),
            synth::echo(s, c, true, n as u16),
            synth::echo(c, s, false, n as u16),
            synth::echo(s, c, true, n as u16),
        ]);
    }
    // Mix the kinds, then interleave CONCURRENT flows at a time.
    let mut order: Vec<usize> = (0..flows.len()).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut rec = Recording {
        bytes: Vec::new(),
        frames: Vec::new(),
        flows: flows.len(),
    };
    for wave in order.chunks(CONCURRENT) {
        let longest = wave.iter().map(|&f| flows[f].len()).max().unwrap_or(0);
        for k in 0..longest {
            for &f in wave {
                if let Some(frame) = flows[f].get(k) {
                    rec.push(frame);
                }
            }
        }
    }
    rec
}

/// One pass over the recording: (records emitted, malformed frames).
fn run(rec: &Recording, out: &mut Vec<FlowRecord>) -> (usize, usize) {
    let config = TableConfig {
        idle_timeout: Duration::from_secs(15),
        active_timeout: Duration::from_secs(60),
        end_grace: Duration::from_secs(1),
        half_open: Duration::from_millis(500),
        max_flows: 65_536,
    };
    let mut table = FlowTable::new("bench0", &config);
    let (mut records, mut bad) = (0, 0);
    let mut ts = 1_700_000_000_000_000_000u64;
    for i in 0..rec.frames.len() {
        match parse(black_box(rec.frame(i))) {
            Ok(meta) => table.update(&meta, ts, out),
            Err(_) => bad += 1,
        }
        ts += STEP_NS;
        if i % EXPIRE_EVERY == 0 {
            table.expire(ts, out);
            records += out.len();
            black_box(&out);
            out.clear();
        }
    }
    table.flush(out);
    records += out.len();
    out.clear();
    (records, bad)
}

/// A SYN flood from 200,000 distinct sources into a table of 4,096 flows:
/// every packet after the first 4,096 evicts the least recently seen flow.
fn syn_flood(scale: u32) {
    let sources = 200_000 / scale;
    let rec = {
        let mut rec = Recording {
            bytes: Vec::new(),
            frames: Vec::new(),
            flows: sources as usize,
        };
        let dst = SocketAddr::new(v4(1), 22);
        for n in 0..sources {
            let src = SocketAddr::new(v4(0x10_0000 + n), 1024 + (n % 60_000) as u16);
            rec.push(&synth::tcp(src, dst, TcpFlags::SYN, 0));
        }
        rec
    };
    let config = TableConfig {
        idle_timeout: Duration::from_secs(15),
        active_timeout: Duration::from_secs(60),
        end_grace: Duration::from_secs(1),
        half_open: Duration::from_millis(500),
        max_flows: 4096,
    };
    let mut table = FlowTable::new("bench0", &config);
    let mut out = Vec::with_capacity(16);
    let mut forced = 0usize;
    let t = Instant::now();
    for i in 0..rec.frames.len() {
        if let Ok(meta) = parse(black_box(rec.frame(i))) {
            table.update(&meta, i as u64 * 1_000, &mut out);
        }
        forced += out.len();
        out.clear();
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(table.evictions() as usize, forced);
    println!(
        "syn flood into a full table (4,096 flows): {:.2} M packets/s, {} evictions",
        rec.frames.len() as f64 / secs / 1e6,
        table.evictions()
    );
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (scale, runs) = if bench { (1, RUNS) } else { (20, 1) };
    let built = Instant::now();
    let rec = build(scale);
    println!(
        "recording: {} frames, {} flows, {:.1} MB, built in {:.2?}",
        rec.frames.len(),
        rec.flows,
        rec.bytes.len() as f64 / 1e6,
        built.elapsed()
    );

    // Parse alone, for reference.
    let t = Instant::now();
    let mut ok = 0usize;
    for i in 0..rec.frames.len() {
        ok += usize::from(parse(black_box(rec.frame(i))).is_ok());
    }
    let parse_rate = rec.frames.len() as f64 / t.elapsed().as_secs_f64();
    println!("parse only: {:.2} M packets/s", parse_rate / 1e6);
    assert_eq!(ok, rec.frames.len(), "every recorded frame parses");

    let mut out = Vec::with_capacity(4096);
    let mut rates = Vec::with_capacity(runs);
    for run_no in 0..=runs {
        let t = Instant::now();
        let (records, bad) = run(&rec, &mut out);
        let secs = t.elapsed().as_secs_f64();
        assert_eq!((records, bad), (rec.flows, 0), "one record per flow");
        if run_no == 0 {
            continue; // warm-up
        }
        rates.push((rec.frames.len() as f64 / secs, records as f64 / secs));
    }
    rates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (median, best) = (rates[rates.len() / 2], rates[rates.len() - 1]);
    println!(
        "parse + aggregate, {runs} runs on one thread: median {:.2} M packets/s, {:.0} k flows/s; best {:.2} M packets/s, {:.0} k flows/s",
        median.0 / 1e6,
        median.1 / 1e3,
        best.0 / 1e6,
        best.1 / 1e3
    );
    syn_flood(scale);
    if !bench {
        println!("smoke run only (unoptimised, 1/{scale} of the data): measure with cargo bench");
        return;
    }
    let target = 1_000_000.0;
    println!(
        "target >= 1.00 M packets/s: {}",
        if median.0 >= target { "met" } else { "NOT met" }
    );
}
