//! `medrec research` as a real process against the chain and gatekeepers that
//! `medrec demo --keep-running` leaves serving: listing owned bounties, redeeming one
//! (the stored answer again), refusals for someone else's bounty, admission by an
//! institution's vote, and mining a block with one's own coinbase.

use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Output, Stdio},
};

/// The demo, running; stopped with SIGTERM when dropped.
struct Demo {
    child: Child,
    v: Value,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }
}

fn demo() -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_medrec"))
        .args(["demo", "--json", "--keep-running"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).expect("the demo printed its JSON");
    Demo { child, v }
}

/// Runs `medrec research <args>` against the demo's chain, signing with the private
/// key of the demo identity `who`.
fn research(d: &Demo, who: &str, args: &[&str]) -> Output {
    let dir = tempdir();
    Command::new(env!("CARGO_BIN_EXE_medrec"))
        .arg("research")
        .args(args)
        .args(["--rpc-url", d.v["rpc_url"].as_str().unwrap(), "--key-env", "MEDREC_TEST_KEY"])
        .args(["--data-dir", dir.to_str().unwrap()])
        .env("MEDREC_TEST_KEY", d.v[who]["private_key"].as_str().unwrap())
        .output()
        .unwrap()
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "medrec-research-cli-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

#[test]
fn a_researcher_lists_and_redeems_its_bounty_and_others_are_refused() {
    let d = demo();
    let researcher = d.v["researcher"]["address"].as_str().unwrap().to_lowercase();
    let bounty = d.v["research"]["bounties"][0].clone();
    let id = bounty["id"].as_str().unwrap();

    // The researcher owns the demo's bounty; it is admitted.
    let listed = json(&research(&d, "researcher", &["bounties", "--json"]));
    assert_eq!(listed["admitted"], true);
    assert_eq!(listed["owner"].as_str().unwrap().to_lowercase(), researcher);
    let ids: Vec<&str> =
        listed["bounties"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id]);

    // Redeeming it again gives the answer the demo got, and spends nothing more.
    let redeemed = json(&research(&d, "researcher", &["redeem", id, "--json"]));
    let answer = &redeemed["redeemed"][0];
    assert_eq!(answer["release"], bounty["result"], "the stored answer, not a new draw");
    assert_eq!(answer["replayed"], true);
    assert_eq!(answer["spent"], bounty["epsilon"]);
    assert!(answer["query"].as_str().unwrap().starts_with("mean(Observation.valueQuantity)"));

    // The pharmacist owns nothing, and is refused the researcher's bounty.
    let theirs = json(&research(&d, "viewer", &["bounties", "--json"]));
    assert_eq!(theirs["bounties"].as_array().unwrap().len(), 0);
    assert_eq!(theirs["admitted"], false);
    let refused = research(&d, "viewer", &["redeem", id]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("only its owner may redeem it"), "{err}");
    assert!(refused.stdout.is_empty(), "nothing released on stdout");

    // Malformed bounty ids are refused with a sentence.
    let bad = research(&d, "researcher", &["redeem", "not-a-bounty"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("<relationship id>:<sequence>"));
}

#[test]
fn institutions_admit_researchers_who_then_mine_with_their_own_coinbase() {
    let d = demo();
    let viewer = d.v["viewer"]["address"].as_str().unwrap().to_owned();
    // Only a certified institution votes.
    let not_institution = research(&d, "patient", &["admit", &viewer]);
    assert!(!not_institution.status.success());
    assert!(
        String::from_utf8_lossy(&not_institution.stderr).contains("not a certified institution")
    );
    // The demo's institution is dev account 0 (the first of the `test … junk` accounts).
    let dir = tempdir();
    let admit = Command::new(env!("CARGO_BIN_EXE_medrec"))
        .args(["research", "admit", &viewer, "--json", "--key-env", "MEDREC_TEST_KEY"])
        .args(["--rpc-url", d.v["rpc_url"].as_str().unwrap()])
        .args(["--data-dir", dir.to_str().unwrap()])
        .env(
            "MEDREC_TEST_KEY",
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        )
        .output()
        .unwrap();
    let admitted = json(&admit);
    assert_eq!(admitted["admitted"], true, "one institution's vote is a majority of one");
    let listed = json(&research(&d, "viewer", &["bounties", "--json"]));
    assert_eq!(listed["admitted"], true);

    // Mining one block with the viewer's address as coinbase.
    let mined = research(&d, "viewer", &["mine", "--blocks", "1", "--json"]);
    let line: Value = serde_json::from_slice(&mined.stdout).expect("one JSON line per block");
    assert!(mined.status.success(), "{}", String::from_utf8_lossy(&mined.stderr));
    assert!(line["block"].as_u64().unwrap() > 0);
}
