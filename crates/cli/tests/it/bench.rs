//! `medrec bench gatekeeper`: a short run in each mode reports sane figures and no
//! errors (no timing is asserted).

use serde_json::Value;
use std::process::Command;

fn bench(args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_medrec"))
        .args(["bench", "gatekeeper", "--json", "--warmup", "0", "--patients", "2"])
        .args(["--records", "20", "--connections", "4"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = if out.status.success() {
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout:?}"))
    } else {
        Value::Null
    };
    (out.status.success(), value, stderr)
}

#[test]
fn every_mode_serves_every_request_and_logs_it() {
    let (ok, v, stderr) = bench(&["--mode", "all", "--seconds", "1", "--signed-rate", "5000"]);
    assert!(ok, "{stderr}");
    let g = &v["gatekeeper"];
    for mode in ["bearer", "off", "signed"] {
        let m = &g["modes"][mode];
        assert_eq!(m["errors"], 0, "{mode}: {m}");
        if mode != "signed" {
            // (A fast machine may use up the pre-signed requests: not asserted there.)
            assert_eq!(m["valid"], true, "{mode}: {m}");
        }
        let requests = m["requests"].as_u64().unwrap();
        assert!(requests > 0, "{mode}: {m}");
        assert_eq!(m["connections"], 4);
        // Every request sent, warm-up included, is one access log entry.
        assert_eq!(m["access_log_entries"], m["sent_total"], "{mode}: {m}");
        let ms = |k: &str| m[k].as_f64().unwrap();
        assert!(ms("p50_ms") > 0.0 && ms("p50_ms") <= ms("p99_ms"), "{mode}: {m}");
        assert!(ms("p99_ms") <= ms("max_ms"), "{mode}: {m}");
        let bytes = ms("mean_body_bytes");
        assert!((1024.0..4096.0).contains(&bytes), "a resource of 1–4 KiB came back: {bytes}");
        assert!(m["peak_rss_kib"].as_u64().unwrap() > 0);
        assert!(m["cpu_seconds_by_thread"]["gk-server"].as_f64().unwrap() > 0.0, "{m}");
    }
    assert!(g["bearer_over_off"].as_f64().unwrap() > 0.0);
    assert!(g["memory"]["peak_rss_kib"].as_u64() >= g["memory"]["rss_before_load_kib"].as_u64());
    assert_eq!(g["scenario"]["patients"], 2);
    assert!(v["machine"]["cpus"].as_u64().unwrap() >= 1);
}

#[test]
fn a_run_that_runs_out_of_signed_requests_is_not_valid() {
    // One pre-signed request per connection: the connections stop at once.
    let (ok, v, stderr) = bench(&["--mode", "signed", "--seconds", "1", "--signed-rate", "1"]);
    assert!(ok, "{stderr}");
    let m = &v["gatekeeper"]["modes"]["signed"];
    assert_eq!(m["exhausted_connections"], 4, "{m}");
    assert_eq!(m["valid"], false, "{m}");
    assert_eq!(m["sent_total"], 4, "{m}");
    assert_eq!(m["errors"], 0, "{m}");
}
