//! A new provider is told how to get registered, and an institution registers it.

use super::*;

#[test]
fn a_new_provider_is_told_how_to_get_registered_and_an_institution_registers_it() {
    let net = Net::start("provider-init-new", None);
    let endpoint = "https://gk.northgate.example";
    let data = net.dir.join("northgate");
    let out = net
        .medrec(
            &data,
            &[
                "init",
                "--name",
                "Northgate Hospital",
                "--endpoint",
                endpoint,
                "--store",
                "sqlite:/tmp/unused-northgate.db",
                "--rpc-url",
                &net.rpc,
                "--json",
            ],
        )
        .output()
        .unwrap();
    let init = succeeds(&out);
    let account = address(&init["address"]);
    assert_eq!(init["registered"], false);
    let words = init["mnemonic"].as_str().unwrap().split_whitespace().count();
    assert_eq!(words, 12);
    let command = init["register_command"].as_str().unwrap();
    assert!(
        command.starts_with(&format!("medrec provider register --account {account} --name 'Northgate Hospital' --endpoint {endpoint}")),
        "{command}"
    );
    assert_eq!(net.endpoint_of(account), "", "not registered yet");

    // Human output says so too, and names the command.
    let human = net
        .medrec(
            &data,
            &[
                "init",
                "--name",
                "Northgate Hospital",
                "--endpoint",
                endpoint,
                "--store",
                "sqlite:/tmp/unused-northgate.db",
                "--rpc-url",
                &net.rpc,
            ],
        )
        .output()
        .unwrap();
    assert!(human.status.success());
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("a certified institution must register it"), "{text}");
    assert!(text.contains(command), "{text}");

    // A wallet that is not an institution cannot register anyone.
    let err = fails(
        &net.medrec(
            &data,
            &[
                "register",
                "--account",
                &account.to_string(),
                "--name",
                "Northgate Hospital",
                "--endpoint",
                endpoint,
                "--rpc-url",
                &net.rpc,
            ],
        )
        .output()
        .unwrap(),
    );
    assert!(err.contains("is not a certified institution"), "{err}");

    // The genesis institution runs the printed command.
    let inst = net.dir.join("institution");
    let out = net
        .medrec(
            &inst,
            &[
                "init",
                "--recover",
                "--name",
                "Institution",
                "--endpoint",
                "https://inst.example",
                "--store",
                "sqlite:/tmp/unused-inst.db",
                "--rpc-url",
                &net.rpc,
                "--json",
            ],
        )
        .env("MEDREC_MNEMONIC", DEV_MNEMONIC)
        .output()
        .unwrap();
    succeeds(&out);
    let out = net
        .medrec(
            &inst,
            &[
                "register",
                "--account",
                &account.to_string(),
                "--name",
                "Northgate Hospital",
                "--endpoint",
                endpoint,
                "--rpc-url",
                &net.rpc,
                "--json",
            ],
        )
        .output()
        .unwrap();
    let registered = succeeds(&out);
    assert!(registered["tx"].is_string());
    assert_eq!(net.endpoint_of(account), endpoint);

    // Now init sees the registration.
    let again = succeeds(
        &net.medrec(
            &data,
            &[
                "init",
                "--name",
                "Northgate Hospital",
                "--endpoint",
                endpoint,
                "--store",
                "sqlite:/tmp/unused-northgate.db",
                "--rpc-url",
                &net.rpc,
                "--json",
            ],
        )
        .output()
        .unwrap(),
    );
    assert_eq!(again["registered"], true);
    assert_eq!(again["registration"], "already registered");
}
