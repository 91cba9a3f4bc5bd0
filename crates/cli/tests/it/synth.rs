//! `medrec synth`: Bundles into a directory or on stdout, the same for the same seed,
//! and clear refusals of bad flags.

use serde_json::Value;
use std::{collections::BTreeMap, path::PathBuf, process::Command};

fn synth(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_medrec")).arg("synth").args(args).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    (out.status.success(), stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A fresh empty directory under the target dir, for this test only.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn read_dir(dir: &PathBuf) -> BTreeMap<String, Value> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            (name, value)
        })
        .collect()
}

#[test]
fn synth_writes_one_bundle_per_patient_and_the_same_again_for_the_same_seed() {
    let dir = scratch("synth-out");
    let dir_text = dir.to_str().unwrap();
    let args = ["--patients", "3", "--years", "2", "--seed", "77", "--out", dir_text];
    let (ok, stdout, stderr) = synth(&args);
    assert!(ok, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("synthesized 3 patients"), "{stderr}");
    let files = read_dir(&dir);
    assert_eq!(files.len(), 3, "{:?}", files.keys());
    for (name, bundle) in &files {
        assert_eq!(bundle["resourceType"], "Bundle");
        assert_eq!(bundle["type"], "transaction");
        let entries = bundle["entry"].as_array().unwrap();
        let patient = &entries[0]["resource"];
        assert_eq!(patient["resourceType"], "Patient");
        assert_eq!(*name, format!("{}.json", patient["id"].as_str().unwrap()));
        assert!(entries.len() > 10, "{name}: {} entries", entries.len());
        for e in entries {
            let r = &e["resource"];
            let url =
                format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap());
            assert_eq!(e["request"], serde_json::json!({"method": "PUT", "url": url}));
        }
    }

    // stdout: one JSON array of the same Bundles.
    let (ok, stdout, stderr) = synth(&args[..6]);
    assert!(ok, "{stderr}");
    let bundles: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let from_stdout: BTreeMap<String, Value> = bundles
        .into_iter()
        .map(|b| (format!("{}.json", b["entry"][0]["resource"]["id"].as_str().unwrap()), b))
        .collect();
    assert_eq!(from_stdout, files);

    // Another seed: other patients.
    let (ok, other, _) = synth(&["--patients", "3", "--years", "2", "--seed", "78"]);
    assert!(ok);
    assert_ne!(other, stdout);
}

#[test]
fn synth_refuses_bad_flags_clearly() {
    for (args, says) in [
        (&["--patients", "0"][..], "--patients"),
        (&["--patients", "many"][..], "--patients"),
        (&["--years", "1000"][..], "--years"),
        (&["--seed=-1"][..], "--seed"),
        (&["--reference-date", "2026-02-30"][..], "YYYY-MM-DD"),
    ] {
        let (ok, stdout, stderr) = synth(args);
        assert!(!ok, "{args:?} was accepted");
        assert!(stdout.is_empty());
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    // An --out that is a file, not a directory.
    let file = scratch("synth-not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let (ok, _, stderr) = synth(&["--patients", "1", "--out", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("cannot create the output directory"), "{stderr}");
    std::fs::remove_file(&file).unwrap();
}
