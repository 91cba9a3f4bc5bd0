//! `medrec provider serve` against `medrec chain`, both as real processes: ready, stopped
//! by SIGTERM, clear errors, research ledger.

use super::{GATEKEEPER, fails, provider_serve, start_chain, start_json, temp_dir, url};
use alloy::transports::http::reqwest;
use serde_json::Value;
use std::{path::PathBuf, process::Command, time::Duration};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reports_its_url_becomes_ready_and_stops_on_sigterm() {
    let chain = start_chain();
    let relationships = chain.info["contracts"]["relationships"].as_str().unwrap().to_owned();
    let dir = temp_dir("provider-serve");
    let store = format!("sqlite:{}", dir.join("records.db").display());
    let gk = start_json(&[
        "provider",
        "serve",
        "--gatekeeper",
        GATEKEEPER,
        "--listen",
        "127.0.0.1:0",
        "--store",
        &store,
        "--rpc-url",
        &url(&chain),
        "--relationships",
        &relationships,
        "--poll-ms",
        "100",
        "--json",
    ]);
    assert_eq!(gk.info["chain_id"], 31337);
    assert_eq!(gk.info["tls"], false);
    assert_eq!(gk.info["relationships"].as_str().unwrap().to_lowercase(), relationships);
    let base = gk.info["url"].as_str().unwrap().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let http = reqwest::Client::new();
    let status = |path: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move { http.get(format!("{base}{path}")).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/healthz").await, 200);
    let mut ready = false;
    for _ in 0..300 {
        if status("/readyz").await == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the gatekeeper never caught up with the chain");
    let readyz: Value =
        http.get(format!("{base}/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(readyz["ready"], true);
    // Data needs credentials.
    let path = format!("{base}/pointers/0x{}/0", "11".repeat(32));
    assert_eq!(http.get(path).send().await.unwrap().status().as_u16(), 401);

    let mut gk = gk;
    let pid = gk.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let exit = gk.child.wait().unwrap();
    assert!(exit.success(), "exit status {exit}");
    drop(chain);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_stores_chains_and_certificates_are_clear_errors() {
    let chain = start_chain();
    let relationships = chain.info["contracts"]["relationships"].as_str().unwrap().to_owned();
    let rpc = url(&chain);
    let dir = temp_dir("provider-errors");
    let sqlite = format!("sqlite:{}", dir.join("records.db").display());
    let run = |store: &str, rpc: &str, extra: &[&str]| {
        let listen =
            if extra.contains(&"--listen") { &[][..] } else { &["--listen", "127.0.0.1:0"][..] };
        provider_serve(&["--store", store, "--rpc-url", rpc, "--relationships", &relationships])
            .args(listen)
            .args(extra)
            .output()
            .unwrap()
    };

    let err = fails(&run("oracle://scott:tiger@db/x", &rpc, &[]));
    assert!(err.contains("error: the record store URL is not usable"), "{err}");
    assert!(err.contains("unknown kind of store 'oracle://'") && !err.contains("tiger"), "{err}");

    let err = fails(&run("postgres://medrec:secret@127.0.0.1:1/records", &rpc, &[]));
    assert!(err.contains("error: the gatekeeper could not start"), "{err}");
    assert!(err.contains("cannot open the record store"), "{err}");
    assert!(err.contains("cannot connect to PostgreSQL") && !err.contains("secret"), "{err}");

    let err = fails(&run(&sqlite, "http://127.0.0.1:1", &[]));
    assert!(err.contains("cannot reach the chain node at http://127.0.0.1:1"), "{err}");

    let err = fails(&run(&sqlite, &rpc, &["--chain-id", "5"]));
    assert!(
        err.contains("is on chain 31337, but the gatekeeper is configured for chain 5"),
        "{err}"
    );

    let cert = dir.join("cert.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    let cert_arg = cert.to_str().unwrap();
    let err = fails(&run(&sqlite, &rpc, &["--tls-cert", cert_arg, "--tls-key", cert_arg]));
    assert!(err.contains(&format!("the TLS certificate {cert_arg} is not usable")), "{err}");

    // A port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = fails(&run(&sqlite, &rpc, &["--listen", &addr]));
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    drop(chain);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_research_ledger_serves_the_policy_and_refuses_a_bad_one() {
    let chain = start_chain();
    let relationships = chain.info["contracts"]["relationships"].as_str().unwrap().to_owned();
    let rpc = url(&chain);
    let dir = temp_dir("provider-research");
    let store = format!("sqlite:{}", dir.join("records.db").display());
    let ledger = dir.join("ledger.db");
    let (good, bad) = (dir.join("policy.json"), dir.join("bad-policy.json"));
    std::fs::write(&good, r#"{"k": 12}"#).unwrap();
    std::fs::write(&bad, r#"{"k": "ten"}"#).unwrap();
    let args = |policy: &PathBuf| {
        vec![
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--store".to_owned(),
            store.clone(),
            "--rpc-url".to_owned(),
            rpc.clone(),
            "--relationships".to_owned(),
            relationships.clone(),
            "--research-ledger".to_owned(),
            ledger.to_str().unwrap().to_owned(),
            "--research-policy".to_owned(),
            policy.to_str().unwrap().to_owned(),
        ]
    };

    let out = provider_serve(&[]).args(args(&bad)).output().unwrap();
    let err = fails(&out);
    assert!(err.contains(&format!("the research policy {} is not usable", bad.display())), "{err}");

    let mut good_args = vec!["provider".to_owned(), "serve".to_owned()];
    good_args.extend(["--gatekeeper".to_owned(), GATEKEEPER.to_owned(), "--json".to_owned()]);
    good_args.extend(args(&good));
    let refs: Vec<&str> = good_args.iter().map(String::as_str).collect();
    let gk = start_json(&refs);
    let base = gk.info["url"].as_str().unwrap().to_owned();
    let policy: Value = reqwest::get(format!("{base}/research/policy"))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(policy["k"], 12, "{policy}");
    drop(gk);
    drop(chain);
    std::fs::remove_dir_all(&dir).unwrap();
}
