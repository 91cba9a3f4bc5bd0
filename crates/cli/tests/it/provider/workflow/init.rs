//! `provider init` from the development mnemonic, and `provider serve` from what it wrote.

use super::*;

#[test]
fn init_from_the_dev_mnemonic_registers_the_institution_as_provider() {
    let institution = dev_accounts(1)[0].clone();
    let net = Net::start("provider-init-dev", Some(institution.address));
    let data = net.dir.join("provider");
    let init = net.init_dev(&data);
    assert_eq!(address(&init["address"]), institution.address);
    assert_eq!(init["registered"], true);
    assert!(init["tx"].is_string(), "{init}");
    assert!(init.get("mnemonic").is_none(), "a recovered phrase is not shown again");
    assert_eq!(net.endpoint_of(institution.address), net.gatekeeper_url());
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("provider.json")).unwrap())
            .unwrap();
    assert_eq!(config["name"], "Riverside Clinic");
    assert_eq!(config["chain"]["chain_id"], CHAIN_ID);
    assert_eq!(config["store"], net.store());

    // Running init again finds the wallet and the registration.
    let again = net.init_dev_again(&data);
    assert_eq!(again["registration"], "already registered");
    assert!(again["tx"].is_null());
}

#[test]
fn serve_takes_what_init_wrote_from_the_data_dir() {
    let institution = dev_accounts(1)[0].clone();
    let net = Net::start("provider-serve-config", None);
    let data = net.dir.join("provider");
    let out = net
        .medrec(
            &data,
            &[
                "init",
                "--recover",
                "--name",
                "Riverside Clinic",
                "--endpoint",
                "http://127.0.0.1:1",
                "--store",
                &net.store(),
                "--rpc-url",
                &net.rpc,
                "--json",
            ],
        )
        .env("MEDREC_MNEMONIC", DEV_MNEMONIC)
        .output()
        .unwrap();
    succeeds(&out);
    let gk = crate::provider::start_json(&[
        "provider",
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--json",
    ]);
    assert_eq!(address(&gk.info["gatekeeper"]), institution.address);
    assert_eq!(address(&gk.info["relationships"]), net.at.relationships);
    assert_eq!(gk.info["chain_id"], CHAIN_ID);
    let base = gk.info["url"].as_str().unwrap().to_owned();
    let ready = net.runtime.block_on(async {
        for _ in 0..100 {
            let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
            if r.status().as_u16() == 200 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    });
    assert!(ready, "the gatekeeper never followed the chain named in provider.json");

    // Without flags or a data directory, the missing settings are named.
    let out = crate::provider::provider_serve(&[]).env_remove("MEDREC_DATA_DIR").output().unwrap();
    let err = fails(&out);
    assert!(err.contains("--store is needed"), "{err}");
}
