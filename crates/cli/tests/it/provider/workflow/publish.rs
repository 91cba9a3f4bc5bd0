//! Enrollment, import and publication reach the chain, the gatekeeper and the patient.

use super::*;

#[test]
#[allow(clippy::too_many_lines)]
fn enroll_import_and_publish_reach_the_chain_the_gatekeeper_and_the_patient() {
    let accounts = dev_accounts(3);
    let (institution, patient) = (accounts[0].clone(), accounts[2].clone());
    let net = Net::start("provider-workflow", Some(institution.address));
    let data = net.dir.join("provider");
    net.init_dev(&data);

    // Import the patient's history.
    let record =
        generate(&Options { patients: 1, years: 2, seed: 7, ..Options::default() }).pop().unwrap();
    let bundle = write_json(&net.dir.join("history.json"), &transaction_bundle(&record));
    let imported = succeeds(&net.medrec(&data, &["import", &bundle, "--json"]).output().unwrap());
    assert_eq!(imported["imported"][0]["created"], record.resources.len() + 1);
    assert_eq!(imported["failed"], 0);

    // Malformed files are named, and nothing of them is imported.
    let broken = net.dir.join("broken.json");
    std::fs::write(&broken, "{\"resourceType\": \"Bundle\", ").unwrap();
    let err =
        fails(&net.medrec(&data, &["import", &bundle, broken.to_str().unwrap()]).output().unwrap());
    assert!(err.contains(&format!("{} is not valid JSON", broken.display())), "{err}");
    let searchset = write_json(
        &net.dir.join("searchset.json"),
        &json!({"resourceType": "Bundle", "type": "searchset", "entry": []}),
    );
    let err = fails(&net.medrec(&data, &["import", &searchset]).output().unwrap());
    assert!(err.contains("only transaction and batch Bundles can be imported"), "{err}");

    // An unknown identity without an address to register is a clear error.
    let salt = format!("0x{}", "5a".repeat(32));
    let err = fails(
        &net.medrec(
            &data,
            &[
                "enroll",
                "--patient-id",
                &record.id,
                "--identity",
                "MRN-404",
                "--salt",
                &salt,
                "--pointer",
                "Observation?category=laboratory",
            ],
        )
        .output()
        .unwrap(),
    );
    assert!(err.contains("no patient is registered under the identity commitment"), "{err}");
    // Several pointers need a bounty.
    let err = fails(
        &net.medrec(
            &data,
            &["enroll", "--patient-id", &record.id, "--patient", &patient.address.to_string()],
        )
        .output()
        .unwrap(),
    );
    assert!(err.contains("pass --bounty TEXT or --offer NAME"), "{err}");

    // Enroll: the institution registers the identity, then offers the relationship with
    // pointer 0 at its gatekeeper; the four other default pointers wait, with the bounty
    // named by an offer of the policy.
    let policy = json!({"offers": [{"name": "iron", "query": BOUNTY}]});
    write_json(&data.join("policy.json"), &policy);
    let enrolled = succeeds(
        &net.medrec(
            &data,
            &[
                "enroll",
                "--patient-id",
                &record.id,
                "--identity",
                "MRN-0001",
                "--salt",
                &salt,
                "--patient",
                &patient.address.to_string(),
                "--offer",
                "iron",
                "--json",
            ],
        )
        .output()
        .unwrap(),
    );
    assert_eq!(address(&enrolled["patient"]), patient.address);
    let rel = RelationshipId(hash(&enrolled["relationship"]));
    let delegate = address(&enrolled["delegate"]);
    assert_eq!(rel, RelationshipId::derive(patient.address, delegate));
    assert_eq!(enrolled["status"], "offered");
    assert_eq!(enrolled["pointers"].as_array().unwrap().len(), 1);
    assert_eq!(enrolled["waiting"].as_array().unwrap().len(), 4);
    assert!(!net.summary(patient.address).contains_key(&rel), "nothing on chain from the provider");
    // Before the patient takes the offer, publish has nothing to add.
    let waiting = succeeds(
        &net.medrec(&data, &["publish", "--spread", "0", "--bounty", BOUNTY, "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(waiting["changes"], json!([]));
    assert_eq!(waiting["waiting"].as_array().unwrap().len(), 1, "{waiting}");

    // The patient takes the offer: the patient's key creates the relationship with
    // pointer 0. Publish then adds the four others from the delegate, each with the
    // bounty, and the patient accepts the update.
    let spec = medrec_client::ChainSpec {
        rpc_url: net.rpc.clone(),
        registrar: net.at.registrar,
        relationships: net.at.relationships,
        anchors: net.at.anchors,
        from_block: 0,
    };
    net.runtime.block_on(async {
        let chain = spec.connect().await.unwrap();
        let me = medrec_client::patient::PatientSession::with_signer(chain, patient.signer());
        let offer = me.offer(&rel.0.to_string()).await.unwrap();
        assert_eq!(offer.view.provider, institution.address);
        me.take(&offer).await.unwrap();
    });
    let added = succeeds(
        &net.medrec(&data, &["publish", "--spread", "0", "--bounty", BOUNTY, "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(added["changes"].as_array().unwrap().len(), 4, "{added}");
    let summary = net.summary(patient.address);
    let on_chain = &summary[&rel];
    assert_eq!(on_chain.status, Some(Status::UpdatePending));
    assert_eq!(on_chain.pointers.len(), 5);
    assert_eq!(on_chain.pointers[0].1, hash(&enrolled["pointers"][0]["data_hash"]));
    // The identity now resolves to the patient.
    let resolved = net.runtime.block_on(async {
        let commitment =
            medrec_primitives::IdentityCommitment::new(&salt.parse().unwrap(), "MRN-0001");
        Registrar::new(net.at.registrar, net.reader()).resolve(commitment.0).call().await.unwrap()
    });
    assert_eq!(resolved.account, patient.address);

    // The patient accepts, and the gatekeeper serves each pointer with the hash on
    // chain.
    let gk_url = net.gatekeeper_url();
    net.runtime.block_on(async {
        let by_patient = Relationships::new(net.at.relationships, net.wallet(&patient));
        let receipt =
            by_patient.accept(delegate).send().await.unwrap().get_receipt().await.unwrap();
        assert!(receipt.status());
        let _ = &delegate;
        let client =
            GatekeeperClient::new(gk_url.clone(), institution.address, CHAIN_ID, patient.signer());
        for i in [0u8, 4] {
            let data = eventually(|| client.pointer(rel, i)).await;
            data.verify(on_chain.pointers[usize::from(i)].1).unwrap();
        }
    });

    // Nothing changed: nothing is sent.
    let before = net.block();
    let nothing = succeeds(
        &net.medrec(&data, &["publish", "--spread", "0", "--bounty", BOUNTY, "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(nothing["changes"], json!([]));
    assert_eq!(nothing["unchanged"], 5);
    assert_eq!(net.block(), before, "no transaction when nothing changed");

    // A new lab result: publish sends one update, the patient sees an update pending.
    let lab = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": {
            "resourceType": "Observation", "id": "new-iron", "status": "final",
            "subject": {"reference": format!("Patient/{}", record.id)},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "2498-4"}]},
            "valueQuantity": {"value": 91, "unit": "ug/dL", "system": "http://unitsofmeasure.org", "code": "ug/dL"},
            "effectiveDateTime": "2026-01-20"
        },
        "request": {"method": "PUT", "url": "Observation/new-iron"}
    }]});
    let lab = write_json(&net.dir.join("lab.json"), &lab);
    succeeds(&net.medrec(&data, &["import", &lab, "--json"]).output().unwrap());
    let published = succeeds(
        &net.medrec(
            &data,
            &[
                "publish",
                "--spread",
                "0",
                "--bounty",
                BOUNTY,
                "--relationship",
                &rel.0.to_string(),
                "--json",
            ],
        )
        .output()
        .unwrap(),
    );
    let changes = published["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{published}");
    assert_eq!(changes[0]["pointer"], 0);
    assert_eq!(hash(&changes[0]["old_hash"]), on_chain.pointers[0].1);
    assert!(changes[0]["tx"].is_string());
    let commitment = hash(&published["bounty"]["commitment"]);
    assert_ne!(commitment, B256::ZERO);
    let summary = net.summary(patient.address);
    assert_eq!(summary[&rel].status, Some(Status::UpdatePending));
    assert_eq!(summary[&rel].pointers[0].1, hash(&changes[0]["new_hash"]));
    net.runtime.block_on(async {
        let client =
            GatekeeperClient::new(gk_url.clone(), institution.address, CHAIN_ID, patient.signer());
        let text = client.bounty_text(commitment).await.unwrap();
        assert_eq!(text, published["bounty"]["text"].as_str().unwrap());
        let data = eventually(|| client.pointer(rel, 0)).await;
        data.verify(hash(&changes[0]["new_hash"])).unwrap();
    });

    // Published: nothing changed any more.
    let before = net.block();
    let again = succeeds(
        &net.medrec(&data, &["publish", "--spread", "0", "--bounty", BOUNTY, "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(again["changes"], json!([]));
    assert_eq!(net.block(), before);

    // A wrong passphrase is a clear error.
    let err = fails(
        &net.medrec(&data, &["publish", "--spread", "0", "--bounty", BOUNTY])
            .env(PASSPHRASE_VAR, "wrong passphrase")
            .output()
            .unwrap(),
    );
    assert!(err.contains("passphrase"), "{err}");
}
