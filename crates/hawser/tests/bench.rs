//! `hawser bench` against a real broker: every message accounted for, the
//! result printed as one JSON object, queues and topics.

mod common;

use std::process::Command;

use common::{free_port, mkdir, Broker};

fn bench(broker: &Broker, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["bench", "--broker", &format!("127.0.0.1:{}", broker.port)])
        .args(args)
        .output()
        .expect("run hawser bench");
    assert!(
        out.status.success(),
        "hawser bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().expect("a JSON line");
    serde_json::from_str(last).expect("the result is JSON")
}

#[test]
fn persistent_queue_run_accounts_for_every_message() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&mkdir(tmp.path().join("b")), free_port());
    let r = bench(
        &broker,
        &[
            "--scenario",
            "S1",
            "--count",
            "300",
            "--producers",
            "2",
            "--consumers",
            "3",
        ],
    );
    assert_eq!(r["scenario"], "S1");
    assert_eq!(r["persistent"], true);
    assert_eq!(r["sent"], 600);
    assert_eq!(r["confirmed"], 600);
    assert_eq!(r["received"], 600);
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicates"], 0);
    assert!(r["msgs_per_sec"].as_f64().unwrap() > 0.0);
    assert!(r["latency_us"]["p99"].as_u64().unwrap() >= r["latency_us"]["p50"].as_u64().unwrap());
    // Reported in clock ticks (10 ms): a short run may have used none.
    assert!(r["client_cpu_s"].as_f64().is_some_and(|s| s >= 0.0));
}

#[test]
fn topic_run_counts_every_subscriber_delivery() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&mkdir(tmp.path().join("b")), free_port());
    let r = bench(
        &broker,
        &["--scenario", "S6", "--count", "200", "--consumers", "3"],
    );
    assert_eq!(r["sent"], 200);
    assert_eq!(r["received"], 600, "each of 3 subscribers gets all 200");
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicates"], 0);
}

#[test]
fn synchronous_sends_with_a_fixed_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&mkdir(tmp.path().join("b")), free_port());
    let r = bench(
        &broker,
        &[
            "--persistent",
            "--window",
            "1",
            "--rate",
            "500",
            "--count",
            "100",
            "--producers",
            "1",
            "--consumers",
            "1",
        ],
    );
    assert_eq!(r["window"], 1);
    assert_eq!(r["received"], 100);
    assert_eq!(r["lost"], 0);
    // 100 messages at 500/s take about 0.2 s: the rate is honoured, not exceeded.
    assert!(r["elapsed_s"].as_f64().unwrap() >= 0.19, "{r}");
}
