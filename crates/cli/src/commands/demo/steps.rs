//! The demo's longer steps: the research cohort, and waiting for a gatekeeper to
//! refuse, to redeem, or to have every access-log entry anchored.

use super::{COHORT, LABS, Narrator, PATIENCE, PAUSE, ProviderSite, target};
use alloy::primitives::{Address, B256, keccak256};
use anyhow::{Context, bail};
use medrec_client::{
    Chain, Error,
    patient::{
        PatientSession,
        access_log::{AccessEntry, ProofStatus},
    },
    provider::enroll::{Offered, offer_relationship},
    researcher,
    retry::until_caught_up,
};
use medrec_devchain::genesis::DevAccount;
use medrec_gatekeeper::{
    client::{ClientError, GatekeeperClient},
    pointer::PointerSpec,
    serve::RunningGatekeeper,
};
use medrec_store::RecordStore;
use medrec_synth::{Options, generate, transaction_bundle};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A client of a demo provider's own gatekeeper, signing as the provider.
pub(super) fn provider_client(
    chain: &Chain,
    running: &RunningGatekeeper,
    account: &DevAccount,
) -> GatekeeperClient {
    chain.gatekeeper(running.url(), account.address, account.signer())
}

pub(super) fn short(h: B256) -> String {
    let s = h.to_string();
    format!("{}…", &s[..10])
}

/// The demo's name of `provider` (its address when it is none of the demo's).
pub(super) fn provider_name(sites: &[ProviderSite], provider: Option<Address>) -> String {
    match provider {
        Some(p) => sites
            .iter()
            .find(|s| s.account.address == p)
            .map_or_else(|| p.to_string(), |s| s.name.to_owned()),
        None => "a provider whose name does not decrypt".to_owned(),
    }
}

/// `site` offers `patient` a relationship with `delegate` carrying the lab-results
/// pointer over the records of `patient_id`: signed with the provider's key and kept at
/// its gatekeeper (nothing goes on chain from the provider).
pub(super) async fn offer(
    chain: &Chain,
    site: &ProviderSite,
    store: &dyn RecordStore,
    patient: Address,
    delegate: Address,
    patient_id: &str,
) -> anyhow::Result<Offered> {
    let labs = PointerSpec::salted(LABS);
    let offered = offer_relationship(
        chain,
        &site.account.signer(),
        store,
        patient,
        delegate,
        &patient_id.parse()?,
        &labs,
    )
    .await?;
    let client = provider_client(chain, &site.running, &site.account);
    until_caught_up(PAUSE, PATIENCE, || {
        client.enroll(
            offered.relationship,
            patient_id,
            std::slice::from_ref(&labs),
            Some(&offered.offer),
        )
    })
    .await
    .with_context(|| {
        format!("the gatekeeper did not keep the offer of {}", offered.relationship.0)
    })?;
    Ok(offered)
}

/// Waits until the request is refused (the revocation indexed); returns the reason.
pub(super) async fn retry_until_refused<T, F, Fut>(mut f: F) -> anyhow::Result<String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    for _ in 0..100 {
        match f().await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(ClientError::Refused { status: 403, diagnostics }) => return Ok(diagnostics),
            Err(e) => return Err(e.into()),
        }
    }
    bail!("the gatekeeper still served the data after the revocation")
}

/// Redeems `bounty` as the researcher once the gatekeeper has followed the chain to its
/// block (it refuses with 403, 409 or 503 until then).
pub(super) async fn redeem_when_seen(
    chain: &Chain,
    researcher: &DevAccount,
    bounty: &researcher::Bounty,
    url: &str,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match researcher::redeem(chain, &researcher.signer(), bounty, Some(url)).await {
            Err(Error::Gatekeeper {
                source: ClientError::Refused { status: 403 | 409 | 503, .. },
                ..
            }) if Instant::now() < deadline => tokio::time::sleep(PAUSE).await,
            other => return Ok(other?),
        }
    }
}

/// The patient's access log at `provider` once every entry is covered by an anchor
/// (each proof checked against the chain by the library).
pub(super) async fn wait_for_proofs(
    me: &PatientSession,
    provider: alloy::primitives::Address,
) -> anyhow::Result<Vec<AccessEntry>> {
    for _ in 0..100 {
        let entries: Vec<AccessEntry> =
            me.access_log(None).await?.into_iter().filter(|e| e.provider == provider).collect();
        if !entries.is_empty() && entries.iter().all(|e| e.proof != ProofStatus::Pending) {
            return Ok(entries);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the access log was not anchored in time")
}

/// Enrolls Riverside Clinic's other patients (synthetic records, dev accounts 10 and
/// up, one delegate address each); each accepts and three in four opt in to research.
/// Returns how many opted in.
pub(super) async fn enroll_cohort(
    n: &Narrator,
    chain: &Chain,
    site: &ProviderSite,
    accounts: &[DevAccount],
    years: u32,
) -> anyhow::Result<usize> {
    let records = generate(&Options { patients: COHORT, years, seed: 21, ..Options::default() });
    let client = provider_client(chain, &site.running, &site.account);
    let store = site.store.open().await?;
    // The provider: records, then an offer to each patient at its gatekeeper.
    let mut cohort = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        client.import(&transaction_bundle(record)).await.context("importing the records")?;
        let patient = accounts.get(10 + i).context("not enough development accounts")?;
        let delegate = Address::from_word(keccak256(format!("riverside delegate {i}")));
        let offered =
            offer(chain, site, store.as_ref(), patient.address, delegate, &record.id).await?;
        cohort.push((patient, offered.relationship));
    }
    // The patients, each from their own account: take the offer (the relationship on
    // chain, accepted), and three in four opt in.
    let answers = cohort.iter().enumerate().map(|(i, (patient, relationship))| async move {
        let me = PatientSession::with_signer(chain.clone(), patient.signer());
        let offer = me.offer(&relationship.0.to_string()).await?;
        me.take(&offer).await?;
        let opt_in = i % 4 != 3;
        if opt_in {
            me.set_research(&target(*relationship), true).await?;
        }
        anyhow::Ok(opt_in)
    });
    let opted_in = futures::future::try_join_all(answers).await?.into_iter().filter(|&o| o).count();
    n.say(&format!("   {COHORT} patients took Riverside Clinic's offers, {opted_in} opted in"));
    Ok(opted_in)
}

/// With `--keep-running`: `site` adds a new lab result for the patient and publishes
/// the pointer's new hash, so an update waits in the patient's Inbox for the app.
pub(super) async fn leave_an_update_pending(
    chain: &Chain,
    site: &ProviderSite,
    patient: alloy::primitives::Address,
) -> anyhow::Result<()> {
    let lab = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": {
            "resourceType": "Observation", "id": "demo-pending-lab", "status": "final",
            "subject": {"reference": format!("Patient/{}", site.patient_id)},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose [Mass/volume] in Serum or Plasma"}]},
            "valueQuantity": {"value": 97, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
            "referenceRange": [{"low": {"value": 70, "unit": "mg/dL"}, "high": {"value": 99, "unit": "mg/dL"}}],
            "effectiveDateTime": "2026-02-03"
        },
        "request": {"method": "PUT", "url": "Observation/demo-pending-lab"}
    }]});
    let provider = provider_client(chain, &site.running, &site.account);
    provider.import(&lab).await?;
    let bounty =
        provider.publish_bounty(super::BOUNTY).await.context("publishing the bounty query")?;
    let store = site.store.open().await?;
    let fresh = medrec_gatekeeper::pointer::run(
        store.as_ref(),
        &medrec_gatekeeper::pointer::PointerQuery::parse(LABS)?,
        &site.patient_id.parse()?,
    )
    .await?;
    let by_delegate = chain.relationships_as(site.delegate.signer());
    let update =
        by_delegate.updatePointer(patient, alloy::primitives::U256::ZERO, fresh.data_hash, bounty);
    medrec_client::tx::send(&update, "publishing the new lab result's hash").await?;
    Ok(())
}

/// Adds to a transaction bundle an allergy to penicillin of patient `patient_id`, the
/// record an emergency room most needs (the synthetic history may hold none).
pub(super) fn add_allergy(bundle: &mut Value, patient_id: &str) {
    let concept = |system: &str, code: &str, display: &str| serde_json::json!({"coding": [{"system": system, "code": code, "display": display}]});
    let allergy = serde_json::json!({
        "resource": {
            "resourceType": "AllergyIntolerance",
            "id": "demo-penicillin",
            "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"),
            "verificationStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed"),
            "type": "allergy",
            "category": ["medication"],
            "criticality": "high",
            "code": concept("http://snomed.info/sct", "91936005", "Allergy to penicillin"),
            "patient": {"reference": format!("Patient/{patient_id}")},
            "recordedDate": "2024-03-02",
        },
        "request": {"method": "PUT", "url": "AllergyIntolerance/demo-penicillin"}
    });
    if let Some(entries) = bundle["entry"].as_array_mut() {
        entries.push(allergy);
    }
}
