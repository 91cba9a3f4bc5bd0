//! `medrec demo`: the whole MedRec story on this machine, narrated.
//!
//! Starts the embedded chain (free gas: no transfer ever funds anyone, so none links a
//! provider to a patient), two provider gatekeepers with synthetic records, and plays a
//! patient, a viewer (a pharmacist), an emergency clinician, a custodian, guardians and
//! a researcher through it: the providers offer, the patient takes the offers (the
//! patient's key creates each relationship, the provider's name encrypted for the
//! patient), fetch and verify, the pharmacist publishes its key and reads the provider
//! from the key sealed for it, revoke, the pharmacist is refused, an emergency
//! clinician breaks the glass and reads the patient's emergency set (the patient is
//! told at once), the patient's spouse acts as a custodian with the rights given (and
//! is refused the others), a provider adds a lab result, the patient is notified, the
//! access log is shown with proofs checked on chain, and another patient's guardians
//! recover her account after a time-lock (a first, fraudulent recovery vetoed). Demo
//! identities are the public development accounts of the `test … junk` mnemonic:
//! never use them for anything real.

mod care;
mod lakeside;
mod steps;

use crate::output;
use alloy::primitives::{B256, keccak256};
use anyhow::{Context, bail, ensure};
use clap::Args;
use medrec_app::{AppConfig, Role};
use medrec_chain::inbox::Notice;
use medrec_client::{
    ChainSpec,
    care::{ClinicianSession, EmergencyReason, InstitutionSession, group_address},
    patient::{PatientSession, Target, Window, access_log::ProofStatus, records::fetch_verified},
    provider::registration::register_provider,
    researcher, tx,
    viewer::ViewerSession,
};
use medrec_devchain::{
    chain::{Chain as DevChain, ChainConfig},
    deploy::Deployment,
    genesis::{DevAccount, dev_accounts},
    miner::{self, MinerConfig},
    node::{Node, SealMode},
    server::{ServerHandle, serve as serve_rpc},
};
use medrec_gatekeeper::{
    pointer::{self, PointerQuery},
    serve::{Anchoring, ResearchSetup, RunningGatekeeper, ServeConfig, StoreUrl, spawn},
};
use medrec_primitives::{RelationshipId, Status};
use medrec_research::policy::{Offer, Policy};
use medrec_synth::{Options, generate, transaction_bundle};
use serde_json::{Value, json};
use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

/// Arguments of `medrec demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Leave the chain and the gatekeepers serving after the story, until Ctrl-C.
    #[arg(long)]
    keep_running: bool,
    /// Print one JSON object on stdout when the story is done (the narration goes to
    /// stderr).
    #[arg(long)]
    json: bool,
    /// Years of synthetic history per provider.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    years: u32,
    /// A SMART app that Riverside Clinic's and Northgate Hospital's gatekeepers let be
    /// authorized (a public client), `CLIENT_ID=REDIRECT_URI`, as `provider serve
    /// --smart-client`; repeat for more (default: none). The FHIR client tests use it.
    #[arg(long = "smart-client", value_name = "ID=URI")]
    smart_clients: Vec<String>,
    /// An origin whose pages may call those two gatekeepers from a browser (CORS), as
    /// `provider serve --cors-origin`; repeat for more (default: none).
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
}

const CHAIN_ID: u64 = 31337;
/// How often, and for how long, to ask a gatekeeper that is still following the chain.
const PAUSE: Duration = Duration::from_millis(100);
const PATIENCE: Duration = Duration::from_secs(10);
const INSTITUTION: usize = 0;
const PATIENT: usize = 2;
const VIEWER: usize = 4;
const RESEARCHER: usize = 5;
/// The emergency-room clinician (dev accounts 8 and 9 are otherwise unused).
const CLINICIAN: usize = 8;
/// The patient's spouse, a custodian.
const SPOUSE: usize = 9;
/// The emergency group the certified institution creates.
const ER_GROUP: &str = "Emergency departments";
/// The pointer each provider publishes: the patient's laboratory results.
const LABS: &str = "Observation?category=laboratory";
/// Development accounts: the named parties and Riverside Clinic's other patients.
const DEV_ACCOUNTS: u32 = 10 + COHORT as u32;
/// Riverside Clinic's other patients (dev accounts 10 and up).
const COHORT: usize = 36;
/// The bounty query Riverside Clinic offers researchers.
const BOUNTY: &str = "mean(Observation.valueQuantity) where code = http://loinc.org|29463-7 and category = vital-signs and date in last 1825 days and range 30..150 group by sex";

/// The demo providers' research policy: the defaults (k = 10, one value per patient)
/// with ε = 2 per bounty, a budget of 10 per researcher and one offered query. A
/// dozen patients per cell is a small cohort: a smaller ε would drown the mean in noise.
fn demo_policy() -> Policy {
    Policy {
        offers: vec![Offer { name: "body-weight-by-sex".into(), query: BOUNTY.into() }],
        epsilon_per_bounty: 2.0,
        budget_per_researcher: 10.0,
        ..Policy::default()
    }
}

/// A demo gatekeeper's configuration: on loopback, following the chain at once (no
/// reorg depth, 100 ms polls), its enrollments and research ledger in the given files,
/// the demo's research policy, anchoring every second with the provider's key.
fn gatekeeper_config(
    spec: &ChainSpec,
    store: StoreUrl,
    provider: alloy::signers::local::PrivateKeySigner,
    enrollments: std::path::PathBuf,
    ledger: std::path::PathBuf,
) -> anyhow::Result<ServeConfig> {
    let mut config = ServeConfig::new(
        "127.0.0.1:0".parse()?,
        store,
        spec.rpc_url.clone(),
        spec.relationships,
        provider.address(),
        CHAIN_ID,
    );
    config.reorg_depth = 0;
    config.poll = Duration::from_millis(100);
    config.registrar = Some(spec.registrar);
    config.enrollments = Some(enrollments);
    config.research =
        Some(ResearchSetup { registrar: spec.registrar, policy: demo_policy(), ledger });
    config.anchoring =
        Some(Anchoring { anchors: spec.anchors, period: Duration::from_secs(1), signer: provider });
    Ok(config)
}

struct Narrator {
    json: bool,
    step: u32,
    started: Instant,
}

impl Narrator {
    fn step(&mut self, text: &str) {
        self.step += 1;
        self.say(&format!(
            "\n[{:>4.1} s] {}. {text}",
            self.started.elapsed().as_secs_f64(),
            self.step
        ));
    }

    fn say(&self, text: &str) {
        if self.json { output::note(text) } else { output::result(text) }
    }
}

/// A provider of the demo: its accounts and running gatekeeper.
struct ProviderSite {
    name: &'static str,
    account: DevAccount,
    delegate: DevAccount,
    running: RunningGatekeeper,
    store: StoreUrl,
    patient_id: String,
    relationship: RelationshipId,
}

/// Runs `medrec demo`.
pub(crate) fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(story(args))
}

use steps::{
    enroll_cohort, offer, provider_client, provider_name, redeem_when_seen, retry_until_refused,
    short, wait_for_proofs,
};

/// `1 allergy`, `2 allergies`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Which relationship, for the patient's steps.
fn target(id: RelationshipId) -> Target {
    Target::Id(id.0.to_string())
}

#[allow(clippy::too_many_lines)]
async fn story(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let mut n = Narrator { json: args.json, step: 0, started: Instant::now() };
    let accounts = dev_accounts(DEV_ACCOUNTS);
    let dir = std::env::temp_dir().join(format!("medrec-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    n.step("Starting the MedRec chain (embedded, sealing each transaction at once) with free gas: a zero-price consortium chain, so nobody funds anybody and no value transfer links a provider to its patients or their delegates.");
    let chain_config = ChainConfig {
        dev_accounts: DEV_ACCOUNTS,
        // Quick to mine in a debug build: the researcher seals one block by Proof of Work.
        pow_initial_difficulty: 1 << 12,
        free_gas: true,
        ..ChainConfig::default()
    };
    let node = Node::new(DevChain::new(chain_config)?, SealMode::Instant);
    let at: Deployment = node.with(DevChain::deployment).context("the contracts are deployed")?;
    let rpc_server: ServerHandle = serve_rpc(node.clone(), "127.0.0.1:0".parse()?).await?;
    let rpc = rpc_server.url();
    let spec = ChainSpec {
        rpc_url: rpc.clone(),
        registrar: at.registrar,
        relationships: at.relationships,
        anchors: at.anchors,
        from_block: 0,
    };
    let chain = spec.connect().await?;
    n.say(&format!(
        "   chain {CHAIN_ID} at {rpc}; Registrar {}, Relationships {}, AccessAnchors {}",
        at.registrar, at.relationships, at.anchors
    ));

    n.step("Two providers start their Database Gatekeepers beside synthetic records.");
    let mut sites = Vec::new();
    for (i, (name, account, delegate, seed)) in
        [("Riverside Clinic", 1usize, 3usize, 11u64), ("Northgate Hospital", 6, 7, 12)]
            .into_iter()
            .enumerate()
    {
        let (account, delegate) = (accounts[account].clone(), accounts[delegate].clone());
        let store = StoreUrl::Sqlite(dir.join(format!("provider-{i}.db")));
        let mut config = gatekeeper_config(
            &spec,
            store.clone(),
            account.signer(),
            dir.join(format!("provider-{i}-enrollments.json")),
            dir.join(format!("provider-{i}-research.db")),
        )?;
        config.smart_clients.clone_from(&args.smart_clients);
        config.cors_origins.clone_from(&args.cors_origins);
        let running = spawn(config).await.context("a gatekeeper could not start")?;
        // The certified institution registers the provider with its gatekeeper's URL.
        register_provider(
            &chain,
            &accounts[INSTITUTION].signer(),
            account.address,
            name,
            &running.url(),
            keccak256(format!("{name} key").as_bytes()),
        )
        .await?;
        // Its records: one synthetic patient's history.
        let record =
            generate(&Options { patients: 1, years: args.years, seed, ..Options::default() })
                .pop()
                .context("the generator made no patient")?;
        let client = provider_client(&chain, &running, &account);
        let mut bundle = transaction_bundle(&record);
        if i == 0 {
            // What the emergency room will need: Riverside Clinic knows of an allergy.
            steps::add_allergy(&mut bundle, &record.id);
        }
        client.import(&bundle).await.context("importing the records")?;
        n.say(&format!(
            "   {name}: gatekeeper {} as {}, {} records imported (FHIR transaction)",
            running.url(),
            account.address,
            bundle["entry"].as_array().map_or(0, Vec::len)
        ));
        sites.push(ProviderSite {
            name,
            account,
            delegate,
            running,
            store,
            patient_id: record.id,
            relationship: RelationshipId(B256::ZERO),
        });
    }

    let patient = &accounts[PATIENT];
    let me = PatientSession::with_signer(chain.clone(), patient.signer());
    n.step("Each provider offers the patient a relationship: a delegate address for it alone and a pointer to the patient's lab results, signed by the provider and kept at its gatekeeper. Nothing goes on chain from the provider.");
    for site in &mut sites {
        let store = site.store.open().await?;
        let offered = offer(
            &chain,
            site,
            store.as_ref(),
            patient.address,
            site.delegate.address,
            &site.patient_id,
        )
        .await?;
        site.relationship = offered.relationship;
        n.say(&format!(
            "   {}: offer of relationship {} ({} lab results, data hash {})",
            site.name,
            short(site.relationship.0),
            offered.pointer.resources,
            short(offered.pointer.data_hash)
        ));
    }

    n.step("The patient's app asks the gatekeepers of the Registrar's directory for offers, and the patient takes both: the patient's own key creates each relationship on chain, already accepted, the provider's name encrypted for the patient alone.");
    let offers = me.offers().await?;
    for problem in &offers.problems {
        n.say(&format!("   (a gatekeeper could not be asked: {problem:?})"));
    }
    ensure!(offers.offers.len() == sites.len(), "the patient found {} offers", offers.offers.len());
    for o in &offers.offers {
        let (id, receipt) = me.take(o).await?;
        n.say(&format!(
            "   took {}'s offer: relationship {} created by the patient's key in block {}",
            provider_name(&sites, Some(o.view.provider)),
            short(id.0),
            receipt.block_number.unwrap_or(0)
        ));
    }

    n.step("The patient's inbox shows the new relationships; only the patient's key decrypts who the providers are (the chain shows a delegate and 36 bytes of ciphertext).");
    for (id, s) in me.relationships().await? {
        n.say(&format!(
            "   relationship {} with {} (delegate {}), {}",
            short(id.0),
            provider_name(&sites, s.provider),
            s.delegate.map_or_else(|| "?".to_owned(), |d| d.to_string()),
            s.status.map_or_else(|| "?".to_owned(), |st| st.to_string())
        ));
    }

    n.step(
        "The patient fetches every pointer from every provider and checks each against the chain.",
    );
    let summary = me.relationships().await?;
    for site in &sites {
        let client = chain.gatekeeper(site.running.url(), site.account.address, patient.signer());
        client.sign_in(&site.running.local_addr().to_string()).await?;
        let on_chain = summary[&site.relationship].pointers[0].1;
        let labs = fetch_verified(&client, site.relationship, 0, on_chain).await?;
        let everything = client.search("Observation", "_count=200").await?;
        n.say(&format!(
            "   {}: {} lab results, hash matches the chain; {} observations in the patient's compartment",
            site.name,
            labs.len(),
            everything.len()
        ));
    }

    let viewer = &accounts[VIEWER];
    let first = &sites[0];
    n.step("A pharmacist publishes its encryption key (`medrec viewer publish-key`), so that what patients share is sealed for it.");
    let pharmacist = ViewerSession::new(chain.clone(), viewer.signer());
    pharmacist.publish_encryption_key().await?;
    n.say(&format!("   {} published its X25519 key in the Registrar", viewer.address));

    n.step(
        "The patient shares the lab results at Riverside Clinic with the pharmacist for one hour, the relationship's key sealed for it.",
    );
    let window = Window { until: Some(node.now() + 3600), ..Window::default() };
    me.share(&target(first.relationship), viewer.address, Some(&[0u8][..]), window).await?;
    let shared = pharmacist.shared().await?;
    n.say(&format!("   the pharmacist's inbox: {} grant(s)", shared.len()));
    for s in &shared {
        n.say(&format!(
            "   relationship {}: the provider, opened from the key sealed for the pharmacist, is {}",
            short(s.id.0),
            provider_name(&sites, s.provider)
        ));
    }
    ensure!(
        shared.iter().any(|s| s.provider == Some(first.account.address)),
        "the pharmacist did not read the provider from its sealed key"
    );

    n.step("The pharmacist reads them.");
    let fetched = pharmacist.fetch(Some(&first.relationship.0.to_string())).await?;
    n.say(&format!(
        "   {} lab results, each checked against the hash on chain",
        fetched.records.len()
    ));

    n.step("The patient revokes the grant; the pharmacist is refused at once.");
    me.revoke(&target(first.relationship), viewer.address).await?;
    let pharmacist = chain.gatekeeper(first.running.url(), first.account.address, viewer.signer());
    let refused = retry_until_refused(|| pharmacist.pointer(first.relationship, 0)).await?;
    n.say(&format!("   refused: {refused}"));

    let clinician = &accounts[CLINICIAN];
    n.step(&format!("Break-glass: the certified institution creates the group \"{ER_GROUP}\", an emergency group, with an emergency-room clinician."));
    let institution = InstitutionSession::new(chain.clone(), accounts[INSTITUTION].signer());
    let (er, _) = institution.create_group(ER_GROUP, true).await?;
    institution.add_member(er, clinician.address).await?;
    n.say(&format!(
        "   group {er} (patients share with it at {}); clinician {} is a member",
        group_address(er),
        clinician.address
    ));

    n.step("The patient arrives unconscious: the clinician breaks the glass and reads the patient's emergency set from both providers.");
    let er_doc = ClinicianSession::new(chain.clone(), clinician.signer());
    let opened =
        er_doc.break_glass(patient.address, Some(er), EmergencyReason::Unconscious).await?;
    n.say(&format!(
        "   opened on chain ({}) because {}, until {}",
        short(opened.tx),
        opened.reason,
        medrec_client::timeline::when(opened.expires_at)
    ));
    let sets = er_doc.emergency_records(patient.address).await?;
    let count = |s: &medrec_client::care::EmergencySet, ty: &str| {
        s.resources.iter().filter(|r| r["resourceType"] == ty).count()
    };
    for s in &sets {
        let name = sites.iter().find(|x| x.account.address == s.provider).map_or("?", |x| x.name);
        n.say(&format!(
            "   {name}: {}, {}, {}",
            plural(count(s, "AllergyIntolerance"), "allergy", "allergies"),
            plural(count(s, "MedicationRequest"), "medication request", "medication requests"),
            plural(count(s, "Condition"), "condition", "conditions")
        ));
    }
    let emergency_records: usize = sets.iter().map(|s| s.resources.len()).sum();
    n.say("   (not hash-checked: a break-glass read is outside any pointer the patient accepted, so there is no hash on chain to check it against)");

    n.step("The patient's inbox shows the opening at once; every read is in their access log as allow-break-glass.");
    let seen = me.openings(0).await?;
    ensure!(
        seen.iter().any(|o| o.clinician == clinician.address && o.group == er),
        "the patient's inbox does not show the break-glass"
    );
    for o in &seen {
        n.say(&format!(
            "   BREAK-GLASS: clinician {} of group {} ({ER_GROUP}) opened the emergency set because {}; open until {}",
            o.clinician,
            o.group,
            o.reason,
            medrec_client::timeline::when(o.expires_at)
        ));
    }
    let break_glass = json!({
        "clinician": clinician.address,
        "group": er,
        "reason": opened.reason.as_str(),
        "expires_at": opened.expires_at,
        "tx": opened.tx,
        "records": emergency_records,
    });
    let groups_json: Vec<Value> = medrec_client::care::groups(&chain)
        .await?
        .iter()
        .map(
            |g| json!({"id": g.id, "name": g.name, "emergency": g.emergency, "address": g.address}),
        )
        .collect();

    let custodian = care::custodian(&mut n, &chain, &me, &accounts[SPOUSE], &sites).await?;

    let researcher = &accounts[RESEARCHER];
    n.step(&format!("Research: {COHORT} other patients of Riverside Clinic are enrolled; three in four opt in to research, and so does our patient."));
    let opted_in = enroll_cohort(&n, &chain, first, &accounts, args.years).await?;
    me.set_research(&target(first.relationship), true).await?;
    n.say(&format!(
        "   {} of {} patients at Riverside Clinic now feed research bounties",
        opted_in + 1,
        COHORT + 1
    ));

    n.step("The certified institution admits the researcher by vote: only admitted research entities earn bounties.");
    researcher::admit(&chain, &accounts[INSTITUTION].signer(), researcher.address).await?;
    n.say(&format!("   {} is admitted", researcher.address));

    n.step("Riverside Clinic adds a new lab result and publishes the pointer's new hash, with a bounty query; the researcher mines the block that includes it, and so owns the bounty.");
    let lab = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": {
            "resourceType": "Observation", "id": "demo-new-lab", "status": "final",
            "subject": {"reference": format!("Patient/{}", first.patient_id)},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "2498-4", "display": "Iron [Mass/volume] in Serum or Plasma"}]},
            "valueQuantity": {"value": 88, "unit": "ug/dL", "system": "http://unitsofmeasure.org", "code": "ug/dL"},
            "effectiveDateTime": "2026-01-15"
        },
        "request": {"method": "PUT", "url": "Observation/demo-new-lab"}
    }]});
    let provider = provider_client(&chain, &first.running, &first.account);
    provider.import(&lab).await?;
    let store = first.store.open().await?;
    let fresh =
        pointer::run(store.as_ref(), &PointerQuery::parse(LABS)?, &first.patient_id.parse()?)
            .await?;
    let bounty = provider.publish_bounty(BOUNTY).await.context("publishing the bounty query")?;
    let by_delegate = chain.relationships_as(first.delegate.signer());
    let update = by_delegate.updatePointer(
        patient.address,
        alloy::primitives::U256::ZERO,
        fresh.data_hash,
        bounty,
    );
    // Hold instant sealing: the update waits in the pool for the researcher's miner.
    node.hold(true)?;
    let (receipt, (mining, released, sealed)) =
        tx::send_and_seal(&update, "updating the pointer", |tx| {
            let miner_config = MinerConfig {
                rpc_url: rpc.clone(),
                coinbase: researcher.address,
                blocks: Some(1),
                include: Some(vec![tx]),
                refresh: Duration::from_millis(200),
            };
            let node = &node;
            async move {
                let mut sealed = None;
                let mining = miner::mine(&miner_config, |m| sealed = Some(m.clone())).await;
                (mining, node.hold(false), sealed)
            }
        })
        .await
        .inspect_err(|_| drop(node.hold(false)))?;
    mining.context("the researcher's miner failed")?;
    released?;
    if let Some(m) = sealed {
        n.say(&format!(
            "   the researcher sealed block {} (difficulty {}, nonce {}) holding the update {}",
            m.block,
            m.difficulty,
            m.nonce,
            short(receipt.transaction_hash)
        ));
    }
    let block = receipt.block_number.unwrap_or(0);
    let posted = researcher::posted(&receipt).context("the update posted no bounty")?;
    n.say(&format!(
        "   bounty {}:{} now belongs to {} (query commitment {})",
        short(posted.relationship.0),
        posted.seq,
        posted.owner,
        short(posted.commitment)
    ));

    n.step("The patient is notified: an update is pending.");
    for d in &chain.notices(patient.address, block, None).await? {
        match &d.notice {
            Notice::PointerUpdated { pointer, data_hash } => n.say(&format!(
                "   pointer {pointer} of {} has new data ({})",
                first.name,
                short(*data_hash)
            )),
            Notice::Status(s) => n.say(&format!("   the relationship is now {s}")),
            _ => {}
        }
    }
    me.answer(&target(first.relationship), Status::Accepted).await?;
    n.say("   the patient accepts the update");

    n.step("The researcher redeems the bounty at Riverside Clinic's gatekeeper: an aggregate over the opted-in patients, with k-anonymity and differential privacy.");
    let url = first.running.url();
    let answer = redeem_when_seen(&chain, researcher, &posted, &url).await?;
    n.say(&format!(
        "   the query, checked against its commitment on chain: {}",
        answer["query"].as_str().unwrap_or("?")
    ));
    for cell in answer["release"]["cells"].as_array().into_iter().flatten() {
        let group = cell["group"]
            .as_object()
            .map(|g| g.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("?"))))
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        n.say(&format!(
            "   {}: {}",
            if group.is_empty() { "everyone".to_owned() } else { group },
            if cell["suppressed"] == true {
                "suppressed (fewer than k patients)".to_owned()
            } else {
                crate::commands::research::answer(&cell["value"])
            }
        ));
    }
    n.say(&format!(
        "   ε spent {} (total {} of {}); asking again returns the same stored answer",
        answer["epsilon"], answer["spent"], answer["budget"]
    ));
    let again = researcher::redeem(&chain, &researcher.signer(), &posted, Some(&url)).await?;
    ensure!(again["release"] == answer["release"], "a second redemption gave a different answer");

    n.step("The patient reads the access log of their records at Riverside Clinic, each entry proven by a head anchored on chain.");
    let logged = wait_for_proofs(&me, first.account.address).await?;
    let by_clinician = logged.iter().filter(|e| e.entry["decision"] == "allow-break-glass").count();
    for e in logged {
        let block = match e.proof {
            ProofStatus::Verified { block } => block,
            other => bail!("an access log entry does not check out: {other:?}"),
        };
        n.say(&format!(
            "   #{:<3} {:<12} by {} → {} (proof checked, anchor in block {block})",
            e.entry["seq"],
            e.entry["action"].as_str().unwrap_or(""),
            e.entry["requester"].as_str().unwrap_or(""),
            e.entry["decision"].as_str().unwrap_or(""),
        ));
    }

    ensure!(by_clinician > 0, "the access log holds no allow-break-glass entry");
    n.say(&format!(
        "   {by_clinician} of them are the emergency clinician's reads, logged as allow-break-glass"
    ));

    let recovery =
        care::recovery(&mut n, &node, &chain, &accounts, first, !args.keep_running).await?;

    // The bounties posted by pointer changes (redeemed in the research workflow).
    let bounties: Vec<Value> = researcher::owned(&chain, None)
        .await?
        .iter()
        .map(|b| {
            let redeemed = b.id() == posted.id();
            json!({
                "id": b.id(),
                "block": b.block,
                "owner": b.owner,
                "redeemed": redeemed,
                "epsilon": if redeemed { answer["epsilon"].clone() } else { Value::Null },
                "result": if redeemed { answer["release"].clone() } else { Value::Null },
            })
        })
        .collect();

    if args.keep_running {
        let second = &sites[1];
        n.step(&format!("{} adds a new lab result and publishes its hash: the update waits in the patient's Inbox, for the app.", second.name));
        steps::leave_an_update_pending(&chain, second, patient.address).await?;
    }

    let final_summary = me.relationships().await?;
    let relationships: Vec<Value> = sites
        .iter()
        .map(|s| {
            let r = final_summary.get(&s.relationship);
            json!({
                "id": s.relationship.0,
                // Decrypted by the patient's key: the chain holds it only encrypted.
                "provider": r.and_then(|r| r.provider),
                "delegate": r.and_then(|r| r.delegate),
                "status": r.and_then(|r| r.status).map(|st| st.to_string()),
            })
        })
        .collect();
    let identity = |a: &DevAccount| json!({"address": a.address, "private_key": a.private_key});
    let mut apps = Vec::new();
    let mut lakeside_site = None;
    if args.keep_running {
        n.step("The EHR manager: the web app for the patient, the pharmacist, the researcher and the emergency clinician.");
        // The researcher's app keeps what the story redeemed, as `medrec research` does.
        let kept = dir.join("app-researcher").join("redeemed.json");
        let mut answers = researcher::Answers::load(&kept)?;
        answers.by_bounty.insert(posted.id(), answer.clone());
        answers.save()?;
        // The clinician's app is a viewer's app with the clinician's key.
        for (name, role, account) in [
            ("patient", Role::Patient, patient),
            ("viewer", Role::Viewer, viewer),
            ("researcher", Role::Researcher, &accounts[RESEARCHER]),
            ("clinician", Role::Viewer, clinician),
        ] {
            let app = medrec_app::spawn(AppConfig {
                role,
                demo_key: Some(account.signer()),
                ..AppConfig::new(
                    "127.0.0.1:0".parse()?,
                    dir.join(format!("app-{name}")),
                    spec.clone(),
                )
            })
            .await
            .with_context(|| format!("the {name} app did not start"))?;
            n.say(&format!("   {name} app: {}", app.launch_url()));
            apps.push((name, app));
        }
        // A provider's app needs a provider set up for real: Lakeside Practice.
        let site = lakeside::start(&spec, &chain, &dir, &accounts[INSTITUTION], args.years).await?;
        let app = medrec_app::spawn(AppConfig {
            role: Role::Provider,
            passphrase: Some(medrec_wallet::Passphrase::new(lakeside::PASSPHRASE)?),
            kdf: medrec_wallet::ScryptParams::light(),
            ..AppConfig::new("127.0.0.1:0".parse()?, site.dir.clone(), spec.clone())
        })
        .await
        .context("the provider app did not start")?;
        n.say(&format!(
            "   provider app ({}, gatekeeper {}; it holds the patient's records as Patient/{}: enroll them there): {}",
            lakeside::NAME,
            site.running.url(),
            site.patient_id,
            app.launch_url()
        ));
        apps.push(("provider", app));
        lakeside_site = Some(site);
    }
    let mut result = json!({
        "rpc_url": rpc,
        "chain_id": CHAIN_ID,
        "contracts": {"registrar": at.registrar, "relationships": at.relationships, "anchors": at.anchors},
        "providers": sites.iter().map(|s| json!({"name": s.name, "gatekeeper_url": s.running.url(), "address": s.account.address})).collect::<Vec<_>>(),
        "patient": identity(patient),
        "viewer": identity(viewer),
        "researcher": identity(&accounts[RESEARCHER]),
        "relationships": relationships,
        "research": {"bounties": bounties},
        "clinician": identity(clinician),
        "groups": groups_json,
        "break_glass": break_glass,
        "custodian": custodian,
        "recovery": recovery,
        "free_gas": true,
        "elapsed_seconds": n.started.elapsed().as_secs_f64(),
    });
    if !apps.is_empty() {
        result["apps"] = apps
            .iter()
            .map(|(name, app)| ((*name).to_owned(), Value::String(app.launch_url())))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    if let Some(site) = &lakeside_site {
        result["lakeside"] = json!({
            "name": lakeside::NAME,
            "address": site.address,
            "gatekeeper_url": site.running.url(),
            "patient_id": site.patient_id,
        });
    }
    n.step(&format!("Done in {:.1} s.", n.started.elapsed().as_secs_f64()));
    // Listen for Ctrl-C and SIGTERM before printing the result others may act on.
    let shutdown = crate::signals::Shutdown::install().context("cannot listen for Ctrl-C")?;
    if args.json {
        output::result(&result.to_string());
    }
    if args.keep_running {
        n.say(&format!(
            "\nEverything keeps running until Ctrl-C. Open the apps above in a browser (each link lets that browser in as the demo identity), or explore with:\n   cast block-number --rpc-url {rpc}\n   medrec patient inbox --rpc-url {rpc} --address {}\n   MEDREC_KEY={} medrec research bounties --rpc-url {rpc} --key-env MEDREC_KEY\n   curl {}/research/policy\n   curl {}/fhir/metadata",
            patient.address,
            researcher.private_key,
            sites[0].running.url(),
            sites[0].running.url()
        ));
        shutdown.wait().await;
    }
    for (_, app) in apps {
        app.shutdown().await?;
    }
    if let Some(site) = lakeside_site {
        site.running.shutdown().await?;
    }
    for site in sites {
        site.running.shutdown().await?;
    }
    rpc_server.shutdown().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}
