//! Research bounties end to end: a real devchain served over JSON-RPC (instant or
//! Proof of Work, with real miners), a research-serving gatekeeper over a SQLite store
//! and research ledger in a temporary directory, driven in process by the test client.

mod input;
mod log;
mod mining;
mod privacy;
mod world;

use crate::client::{Answer, As, Client};
use alloy::primitives::{Address, B256, keccak256};
use medrec_devchain::node::SealMode;
use medrec_gatekeeper::audit::wire::ProvenEntry;
use medrec_gatekeeper::{
    limits::RateLimits,
    pointer::PointerQuery,
    serve::{Assembled, ResearchSetup, ServeConfig, StoreUrl, assemble},
    server::{Enrollment, Gatekeeper},
};
use medrec_primitives::RelationshipId;
use medrec_research::{
    aggregate::{PatientData, exact},
    ledger::Ledger,
    policy::Policy,
    query::BountyQuery,
};
use medrec_store::fhir::Resource;
use medrec_synth as synthetic;
use serde_json::Value;
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};
use world::{Bounty, World};

pub(crate) use crate::client::CHAIN_ID;
/// Funded development accounts on these chains.
pub(crate) const ACCOUNTS: u32 = 40;
/// The founding certified institution (deployed the contracts).
pub(crate) const INSTITUTION: usize = 0;
/// The provider whose gatekeeper serves the bounties.
pub(crate) const PROVIDER: usize = 1;
/// The delegate of the first patient's relationship: it sends the pointer updates
/// that carry the bounties.
pub(crate) const CARRIER: usize = 3;
/// Research entities admitted by the institutions.
pub(crate) const RESEARCHER_A: usize = 4;
pub(crate) const RESEARCHER_B: usize = 5;
/// A miner never admitted.
pub(crate) const ROGUE: usize = 6;
/// Someone with no role.
pub(crate) const STRANGER: usize = 7;
/// Patient `i` of a cohort is dev account `FIRST_PATIENT + i`.
pub(crate) const FIRST_PATIENT: usize = 10;

/// Heart rate: every synthetic visit records one (category vital-signs).
pub(crate) const HEART_RATE: &str = "http://loinc.org|8867-4";
pub(crate) const WINDOW: &str = "date >= 2023-01-01 and date < 2026-01-01";

pub(crate) fn heart_rate(aggregate: &str) -> String {
    format!(
        "{aggregate}(Observation.valueQuantity) where code = {HEART_RATE} and {WINDOW} and range 0..300"
    )
}

/// ε per bounty of [`sharp_policy`].
pub(crate) const SHARP: f64 = 1e6;

/// A policy whose noise is negligible (ε = 10⁶ per bounty), so that a released value
/// equals the exact one to well under 0.01, with `k` and a budget of a million
/// bounties.
pub(crate) fn sharp_policy(k: usize) -> Policy {
    Policy { k, epsilon_per_bounty: SHARP, budget_per_researcher: SHARP * 1e6, ..Policy::default() }
}

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medrec-research-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `done` every 20 ms until it holds; panics with `what` after 60 s.
pub(crate) async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ----- the provider and its gatekeeper ---------------------------------------------

/// A delegate address for patient `i` of a cohort (the first one is [`CARRIER`]).
pub(crate) fn delegate(world: &World, i: usize) -> Address {
    if i == 0 {
        world.address(CARRIER)
    } else {
        Address::from_word(keccak256(format!("delegate {i}")))
    }
}

/// A provider with a cohort of synthetic patients, each with an accepted relationship
/// enrolled at a research-serving gatekeeper ([`assemble`]d from its configuration as
/// `serve::spawn` does it, with no socket), and the test client on its router.
pub(crate) struct Clinic {
    pub(crate) world: World,
    pub(crate) dir: PathBuf,
    pub(crate) gk: Gatekeeper,
    served: Assembled,
    pub(crate) client: Client,
    pub(crate) relationships: Vec<RelationshipId>,
    cohort: Vec<PatientData>,
}

impl Clinic {
    /// `patients` synthetic patients (each with heart rates in [`WINDOW`]), none opted
    /// in, served with `policy`.
    pub(crate) async fn new(name: &str, seal: SealMode, patients: usize, policy: Policy) -> Self {
        let world = World::new(seal).await;
        world.admit(RESEARCHER_A);
        world.admit(RESEARCHER_B);
        let dir = temp_dir(name);
        let records = synthetic::generate(&synthetic::Options {
            patients,
            years: 3,
            seed: 6,
            reference_date: synthetic::DEFAULT_REFERENCE_DATE,
        });
        let url = StoreUrl::Sqlite(dir.join("records.db"));
        let store = url.open().await.unwrap();
        let mut cohort = Vec::new();
        for r in &records {
            let observations: Vec<Value> = r
                .resources
                .iter()
                .filter(|x| x["resourceType"] == "Observation")
                .cloned()
                .collect();
            let mut all = vec![Resource::parse(r.patient.clone()).unwrap()];
            all.extend(observations.iter().map(|o| Resource::parse(o.clone()).unwrap()));
            store.update_all(all).await.unwrap();
            cohort.push(PatientData { patient: r.patient.clone(), resources: observations });
        }
        let pairs: Vec<(usize, Address)> =
            (0..patients).map(|i| (FIRST_PATIENT + i, delegate(&world, i))).collect();
        let relationships = world.relate(&pairs);

        // The gatekeeper, assembled from its configuration as `serve::spawn` assembles
        // it (store, access log and research ledger on disk, the follower polling the
        // chain every 50 ms), with no socket.
        let provider = world.address(PROVIDER);
        let mut config = ServeConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            url,
            world.rpc.url(),
            world.at.relationships,
            provider,
            CHAIN_ID,
        );
        config.reorg_depth = 0;
        config.poll = Duration::from_millis(50);
        config.siwe_domain = Some(crate::client::DOMAIN.to_owned());
        config.limits = RateLimits::off();
        config.research = Some(ResearchSetup {
            registrar: world.at.registrar,
            policy,
            ledger: dir.join("research.db"),
        });
        let served = assemble(&config).await.unwrap();
        let gk = served.gatekeeper().clone();
        let pointer = PointerQuery::parse("Observation?category=vital-signs").unwrap();
        for (rel, r) in relationships.iter().zip(&records) {
            let enrollment = Enrollment {
                patient: r.id.parse().unwrap(),
                pointers: vec![pointer.clone()],
                offer: None,
            };
            gk.enroll(*rel, enrollment).unwrap();
        }
        let client = Client::new(served.router(), provider);
        let clinic = Self { world, dir, gk, served, client, relationships, cohort };
        clinic.caught_up().await;
        clinic
    }

    /// Waits until the gatekeeper's consent index has every block mined so far.
    pub(crate) async fn caught_up(&self) {
        let head = self.world.head();
        until("the gatekeeper indexed the chain", || self.served.health().indexed >= head).await;
    }

    fn patient(&self, i: usize) -> (usize, Address) {
        (FIRST_PATIENT + i, delegate(&self.world, i))
    }

    /// Patients `who` opt in (`true`) or out.
    pub(crate) async fn consent(&self, who: impl IntoIterator<Item = usize>, opt_in: bool) {
        let choices: Vec<(usize, Address, bool)> = who
            .into_iter()
            .map(|i| {
                let (p, d) = self.patient(i);
                (p, d, opt_in)
            })
            .collect();
        self.world.consent(&choices);
        self.caught_up().await;
    }

    /// Patient `i` takes a second offer of this provider (a new delegate, the same
    /// records), enrolled here and opted in to research.
    pub(crate) async fn second_relationship(&self, i: usize) -> RelationshipId {
        let (p, _) = self.patient(i);
        let delegate = Address::from_word(keccak256(format!("second delegate {i}")));
        let rel = self.world.relate(&[(p, delegate)])[0];
        let patient = self.gk.enrollment(&self.relationships[i]).unwrap().patient;
        let pointer = PointerQuery::parse("Observation?category=vital-signs").unwrap();
        self.gk.enroll(rel, Enrollment { patient, pointers: vec![pointer], offer: None }).unwrap();
        self.world.consent(&[(p, delegate, true)]);
        self.caught_up().await;
        rel
    }

    /// `method path` with `body`, signed by dev account `who`.
    pub(crate) async fn signed(&self, who: usize, method: &str, path: &str, body: &[u8]) -> Answer {
        self.client.send(method, path, body, &As::Key(self.world.signer(who))).await
    }

    /// Dev account `who` publishes the bounty query `text` (only the provider may):
    /// its commitment.
    pub(crate) async fn publish_as(&self, who: usize, text: &str) -> Result<B256, (u16, String)> {
        let answer = self.signed(who, "PUT", "/research/queries", text.as_bytes()).await.ok()?;
        Ok(answer["commitment"].as_str().and_then(|c| c.parse().ok()).expect("a commitment"))
    }

    /// The provider publishes `text`; returns its commitment.
    pub(crate) async fn publish(&self, text: &str) -> B256 {
        self.publish_as(PROVIDER, text).await.expect("published")
    }

    /// The published text of the bounty query with `commitment` (anyone may ask),
    /// checked against it.
    pub(crate) async fn bounty_text(&self, commitment: B256) -> Result<String, (u16, String)> {
        let path = format!("/research/queries/{commitment}");
        let answer = self.client.get(&path, &As::Nobody).await.ok()?;
        let text = answer["query"].as_str().expect("a query").to_owned();
        assert_eq!(medrec_research::query::commitment_of_text(&text), commitment, "{text}");
        Ok(text)
    }

    /// The provider's research policy (public).
    pub(crate) async fn research_policy(&self) -> Value {
        self.client.get("/research/policy", &As::Nobody).await.ok().expect("the policy")
    }

    /// The access log entries about dev account `who`'s records, as `GET /audit` serves
    /// them.
    pub(crate) async fn audit(&self, who: usize) -> Vec<Value> {
        let page = self.signed(who, "GET", "/audit?after=0&limit=500", b"").await;
        let page = page.ok().expect("the patient's log");
        let entries = page["entries"].as_array().expect("entries").clone();
        for e in entries.iter().filter(|e| !e["proof"].is_null()) {
            let proven: ProvenEntry = serde_json::from_value(e.clone()).expect("a typed entry");
            proven.proof().expect("a well-formed proof");
        }
        entries
    }

    /// A bounty with the query `text` (published by the provider) on the first patient's
    /// relationship, mined by dev account `miner`; the gatekeeper has indexed it.
    pub(crate) async fn bounty(&self, miner: usize, text: &str) -> Bounty {
        let commitment = self.publish(text).await;
        let b =
            self.world.bounty_mined_by(self.world.address(miner), FIRST_PATIENT, commitment).await;
        self.caught_up().await;
        b
    }

    /// Dev account `who` redeems bounty `b`: the answer, or the refusal's status and
    /// sentence.
    pub(crate) async fn redeem(&self, who: usize, b: &Bounty) -> Result<Value, (u16, String)> {
        let path = format!("/research/redeem/{}/{}", b.relationship.0, b.seq);
        self.signed(who, "POST", &path, b"").await.ok()
    }

    /// The research ledger, opened beside the gatekeeper's own connection.
    fn ledger(&self) -> Ledger {
        Ledger::open(self.dir.join("research.db")).unwrap()
    }

    pub(crate) fn spent(&self, who: usize) -> f64 {
        self.ledger().spent(self.world.address(who)).unwrap()
    }

    pub(crate) fn released(&self, b: &Bounty) -> bool {
        self.ledger().answer(&b.id()).unwrap().is_some()
    }

    /// The exact (noise-free, unsuppressed) answer over the patients `who`: the number
    /// of contributing patients and the value.
    pub(crate) fn exact_over(
        &self,
        text: &str,
        who: impl IntoIterator<Item = usize>,
    ) -> (usize, f64) {
        let q: BountyQuery = text.parse().unwrap();
        let cohort: Vec<PatientData> = who.into_iter().map(|i| self.cohort[i].clone()).collect();
        let today = time::OffsetDateTime::now_utc().date();
        let result = exact(&q, &sharp_policy(1), &cohort, today);
        assert_eq!(result.cells.len(), 1, "one cell");
        let cell = &result.cells[0];
        let answer = serde_json::to_value(cell.answer.as_ref().expect("a value")).unwrap();
        (cell.patients, number(&answer))
    }

    pub(crate) async fn shutdown(self) {
        self.served.shutdown().await;
        self.world.rpc.shutdown().await.unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The number in an answer tagged by its kind (`{"mean": 71.5}`).
pub(crate) fn number(answer: &Value) -> f64 {
    let tagged = answer.as_object().unwrap_or_else(|| panic!("a tagged answer: {answer}"));
    assert_eq!(tagged.len(), 1, "{answer}");
    tagged.values().next().and_then(Value::as_f64).unwrap_or_else(|| panic!("a number: {answer}"))
}

/// The single (ungrouped) cell of a release.
pub(crate) fn single_cell(release: &Value) -> &Value {
    let cells = release["cells"].as_array().unwrap_or_else(|| panic!("cells in {release}"));
    assert_eq!(cells.len(), 1, "one cell: {release}");
    &cells[0]
}

/// The value of the single (ungrouped), unsuppressed cell of a release.
pub(crate) fn single_value(release: &Value) -> f64 {
    let cell = single_cell(release);
    assert_eq!(cell["suppressed"], false, "{release}");
    number(&cell["value"])
}

/// The refusal's status and sentence.
pub(crate) fn refused<T: std::fmt::Debug>(r: Result<T, (u16, String)>) -> (u16, String) {
    match r {
        Err(refusal) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}
