//! `medrec bench research`: a tiny cohort redeems every bounty once fresh and once
//! replayed, and the report has the expected shape (no timing is asserted).

use serde_json::Value;
use std::process::Command;

#[test]
fn bench_research_redeems_every_bounty_fresh_then_replayed() {
    let out = Command::new(env!("CARGO_BIN_EXE_medrec"))
        .args(["bench", "research", "--json", "--patients", "3,5", "--bounties", "2"])
        .args(["--years", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout:?}"));
    let r = &v["research"];
    assert_eq!(r["bounties_per_cohort"], 2);
    assert_eq!(r["queries"].as_array().map(Vec::len), Some(2));
    let cohorts = r["cohorts"].as_array().unwrap();
    assert_eq!(cohorts.len(), 2);
    for (c, patients) in cohorts.iter().zip([3, 5]) {
        assert_eq!(c["patients"], patients, "{c}");
        assert_eq!(c["opted_in"], patients, "{c}");
        assert!(c["observations_in_cohort"].as_u64().unwrap() > 0, "{c}");
        assert_eq!(c["redemptions"], 4, "{c}");
        for kind in ["fresh", "replayed"] {
            let l = &c[kind];
            assert_eq!(l["count"], 2, "{kind}: {c}");
            let (p50, p90, max) = (
                l["p50_ms"].as_f64().unwrap(),
                l["p90_ms"].as_f64().unwrap(),
                l["max_ms"].as_f64().unwrap(),
            );
            assert!(0.0 < p50 && p50 <= p90 && p90 <= max, "{kind}: {c}");
        }
        // One mean and one grouped bounty; with fewer than k = 10 patients every cell
        // is suppressed.
        assert_eq!(c["fresh_by_query"]["mean"]["count"], 1, "{c}");
        assert_eq!(c["fresh_by_query"]["grouped"]["count"], 1, "{c}");
        assert!(c["cells"].as_u64().unwrap() >= 2, "{c}");
        assert_eq!(c["cells"], c["cells_suppressed"], "{c}");
        assert!(c["setup_seconds"].as_f64().unwrap() > 0.0, "{c}");
    }
    assert_eq!(v["machine"]["release_build"], !cfg!(debug_assertions));
}

#[test]
fn bench_research_refuses_an_empty_cohort() {
    let out = Command::new(env!("CARGO_BIN_EXE_medrec"))
        .args(["bench", "research", "--json", "--patients", "0", "--bounties", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
}
