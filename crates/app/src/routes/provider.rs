//! The provider's app: Patients (the enrolled relationships with their status on
//! chain, and Enroll), Import (a FHIR Bundle into the record store through the
//! gatekeeper), Publish (changed pointers' new hashes, each update carrying the bounty
//! query the research policy offers) and Gatekeeper (its readiness, how far its consent
//! index lags the chain, its last anchor on chain). Every step is the client library's
//! `ProviderSession`, as `medrec provider` runs it.

use super::Chrome;
use crate::{
    error::{PageError, PageResult, render},
    state::AppState,
    views::provider::{self, Health, PatientRow},
};
use alloy::primitives::{Address, U256};
use askama::Template;
use axum::{
    Form,
    extract::State,
    response::{IntoResponse, Redirect},
};
use medrec_client::provider::{
    DELEGATE_FUNDING, ProviderSession,
    bounty::{Bounty, BountyChoice},
    enroll::{EnrollRequest, PatientRef},
    publish::PublishRequest,
    state::{Enrollments, POLICY_FILE},
};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Template)]
#[template(path = "provider_patients.html")]
struct PatientsPage {
    chrome: Chrome,
    name: String,
    patients: Vec<PatientRow>,
    offer: Option<String>,
    /// Patients in the record store not enrolled yet: id and name.
    unenrolled: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "provider_import.html")]
struct ImportPage {
    chrome: Chrome,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "provider_publish.html")]
struct PublishPage {
    chrome: Chrome,
    offer: Option<String>,
    enrolled: usize,
}

#[derive(Template)]
#[template(path = "access.html")]
struct AccessPage {
    chrome: Chrome,
    rows: Vec<crate::views::access::Row>,
    summary: String,
    failure: Option<String>,
    /// The entry number the next page starts after, when there may be more.
    next: Option<u64>,
}

#[derive(Template)]
#[template(path = "provider_gatekeeper.html")]
struct GatekeeperPage {
    chrome: Chrome,
    endpoint: String,
    health: Health,
}

async fn session(state: &AppState) -> Result<Arc<ProviderSession>, PageError> {
    state.provider.read().await.clone().ok_or(PageError::Locked)
}

fn chrome(
    state: &AppState,
    session: &ProviderSession,
    active: &'static str,
    title: &'static str,
) -> Chrome {
    Chrome::new(state, active, title, session.config().address.to_string())
}

/// The first query the research policy offers, by name (every pointer change carries
/// a bounty query).
fn offer(session: &ProviderSession) -> Option<String> {
    let text = std::fs::read_to_string(session.dir().join(POLICY_FILE)).ok()?;
    let policy: medrec_research::policy::Policy = serde_json::from_str(&text).ok()?;
    policy.offers.first().map(|o| o.name.clone())
}

/// The bounty query of the policy's first offer, resolved for today.
fn bounty(session: &ProviderSession) -> Result<Option<Bounty>, String> {
    let Some(name) = offer(session) else { return Ok(None) };
    BountyChoice { offer: Some(name), ..BountyChoice::default() }
        .resolve(session.dir())
        .map_err(|e| crate::error::sentence(&e))
}

/// `GET /`: the patients enrolled, with their relationship's status on chain.
pub(crate) async fn patients(State(state): State<AppState>) -> PageResult {
    let session = session(&state).await?;
    let enrolled = Enrollments::load(session.dir())
        .map_err(|e| PageError::Failed(crate::error::sentence(&e)))?;
    let chain = session.connect().await.map_err(|e| {
        PageError::Failed(format!(
            "The chain cannot be reached ({}). Start it, then reload.",
            crate::error::sentence(&e).trim_end_matches('.')
        ))
    })?;
    let mut statuses = std::collections::HashMap::new();
    for id in enrolled.relationships.keys() {
        if let Ok(r) = chain.relationships().relationship(*id).call().await {
            statuses.insert(*id, medrec_primitives::Status::try_from(r.status).ok());
        }
    }
    let enrolled_ids: Vec<&str> =
        enrolled.relationships.values().map(|e| e.patient_id.as_str()).collect();
    let unenrolled = in_records(&session)
        .await
        .into_iter()
        .filter(|(id, _)| !enrolled_ids.contains(&id.as_str()))
        .collect();
    render(&PatientsPage {
        chrome: chrome(&state, &session, "patients", "Patients"),
        name: session.config().name.clone(),
        patients: provider::patients(&enrolled, &statuses),
        offer: offer(&session),
        unenrolled,
    })
}

/// The first patients of the record store (their id and name): the provider's own
/// records, shown on its own machine to pick whom to enroll.
async fn in_records(session: &ProviderSession) -> Vec<(String, String)> {
    use medrec_store::{fhir::ResourceType, search::SearchQuery};
    let Ok(store) = session.store().await else { return Vec::new() };
    let Ok(query) = SearchQuery::parse(ResourceType::Patient, [("_count", "50")]) else {
        return Vec::new();
    };
    let Ok(page) = store.search(&query).await else { return Vec::new() };
    page.entries.iter().map(|p| (p.id.to_string(), provider::patient_name(&p.json))).collect()
}

/// The Enroll form.
#[derive(Deserialize)]
pub(crate) struct EnrollForm {
    address: String,
    patient_id: String,
}

/// `POST /enroll`: opens a relationship with the patient on chain, with the default
/// pointers, and tells the gatekeeper.
pub(crate) async fn enroll(
    State(state): State<AppState>,
    Form(form): Form<EnrollForm>,
) -> PageResult {
    let session = session(&state).await?;
    let outcome = async {
        let address: Address = form.address.trim().parse().map_err(|_| {
            format!("'{}' is not an Ethereum address (0x and 40 hex digits): ask the patient for the address their app shows.", form.address.trim())
        })?;
        let request = EnrollRequest {
            patient_id: form.patient_id.trim().to_owned(),
            patient: PatientRef { address: Some(address), identity: None },
            pointers: Vec::new(),
            bounty: bounty(&session)?,
            patient_funding: U256::from(DELEGATE_FUNDING),
        };
        session.enroll(&request).await.map_err(|e| crate::error::sentence(&e))
    }
    .await;
    match outcome {
        Ok(e) => state.tell(false, format!(
            "Offered: relationship {} to {} ({} data pointer{} now, {} more once taken). The offer waits at your gatekeeper; the patient sees it in their Inbox and, if they accept, creates the relationship with their own key.",
            crate::views::short_id(e.relationship.0),
            e.patient,
            e.pointers.len(),
            if e.pointers.len() == 1 { "" } else { "s" },
            e.waiting.len()
        )),
        Err(e) => state.tell(true, format!("The patient was not enrolled. {e}")),
    }
    Ok(Redirect::to("/").into_response())
}

/// `GET /import`.
pub(crate) async fn import_page(State(state): State<AppState>) -> PageResult {
    let session = session(&state).await?;
    render(&ImportPage { chrome: chrome(&state, &session, "import", "Import"), error: None })
}

/// The Import form.
#[derive(Deserialize)]
pub(crate) struct ImportForm {
    bundle: String,
}

/// `POST /import`: a FHIR `transaction` or `batch` Bundle into the record store.
pub(crate) async fn import(
    State(state): State<AppState>,
    Form(form): Form<ImportForm>,
) -> PageResult {
    let session = session(&state).await?;
    let again = |error: String| {
        render(&ImportPage {
            chrome: chrome(&state, &session, "import", "Import"),
            error: Some(error),
        })
    };
    let bundle: serde_json::Value = match serde_json::from_str(&form.bundle) {
        Ok(v) => v,
        Err(e) => {
            return again(format!(
                "That is not JSON ({e}): paste a FHIR Bundle of type transaction or batch."
            ));
        }
    };
    if bundle["resourceType"] != "Bundle"
        || !matches!(bundle["type"].as_str(), Some("transaction" | "batch"))
    {
        return again("That is not a FHIR Bundle of type transaction or batch.".to_owned());
    }
    match session.import(&bundle, "the pasted Bundle").await {
        Ok(report) => {
            state.tell(false, provider::import_sentence(&report));
            Ok(Redirect::to("/publish").into_response())
        }
        Err(e) => again(crate::error::sentence(&e)),
    }
}

/// `GET /publish`.
pub(crate) async fn publish_page(State(state): State<AppState>) -> PageResult {
    let session = session(&state).await?;
    let enrolled = Enrollments::load(session.dir()).map_or(0, |e| e.relationships.len());
    render(&PublishPage {
        chrome: chrome(&state, &session, "publish", "Publish"),
        offer: offer(&session),
        enrolled,
    })
}

/// `POST /publish`: every enrolled pointer whose data changed gets its new hash on
/// chain, with the policy's bounty query.
pub(crate) async fn publish(State(state): State<AppState>) -> PageResult {
    let session = session(&state).await?;
    let outcome = async {
        let request = PublishRequest {
            bounty: bounty(&session)?,
            delegate_funding: U256::from(DELEGATE_FUNDING),
            ..PublishRequest::default()
        };
        session.publish(&request).await.map_err(|e| crate::error::sentence(&e))
    }
    .await;
    match outcome {
        Ok(report) => state.tell(false, provider::publish_sentence(&report)),
        Err(e) => state.tell(true, format!("Nothing was published. {e}")),
    }
    Ok(Redirect::to("/publish").into_response())
}

/// Which page of the access log.
#[derive(Deserialize, Default)]
pub(crate) struct AccessQuery {
    after: Option<u64>,
}

/// `GET /access?after=N`: the gatekeeper's own access log (500 entries a page), each
/// entry checked against the anchor this provider put on chain.
pub(crate) async fn access(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<AccessQuery>,
) -> PageResult {
    let session = session(&state).await?;
    let me = session.config().address;
    let after = query.after.unwrap_or(0);
    let mut names = state.names.read().await.clone();
    names.endpoints.insert(me, session.config().endpoint.clone());
    let (rows, summary, failure, next) = match session.access_log(after).await {
        Ok(entries) => {
            let last = entries.last().and_then(|e| e.entry["seq"].as_u64());
            let next = (entries.len() >= 500).then_some(last).flatten();
            let rows = crate::views::access::rows(&entries, me, &names, &Default::default());
            (rows, crate::views::access::summary(&entries), None, next)
        }
        Err(e) => (Vec::new(), String::new(), Some(crate::error::sentence(&e)), None),
    };
    render(&AccessPage {
        chrome: chrome(&state, &session, "access", "Access log"),
        rows,
        summary,
        failure,
        next,
    })
}

/// `GET /gatekeeper`: is it ready, how far behind the chain, when it last anchored.
pub(crate) async fn gatekeeper(State(state): State<AppState>) -> PageResult {
    let session = session(&state).await?;
    let endpoint = session.config().endpoint.clone();
    let ready = reqwest_json(&format!("{}/readyz", endpoint.trim_end_matches('/'))).await;
    let chain = session.connect().await.ok();
    let anchor = match &chain {
        Some(chain) => last_anchor(chain, session.config().address).await,
        None => None,
    };
    render(&GatekeeperPage {
        chrome: chrome(&state, &session, "gatekeeper", "Gatekeeper"),
        health: provider::health(ready.as_ref(), anchor),
        endpoint,
    })
}

/// A JSON answer, whatever its status (`/readyz` answers 503 with its body when not
/// ready); `None` when the gatekeeper does not answer.
async fn reqwest_json(url: &str) -> Option<serde_json::Value> {
    let client = alloy::transports::http::reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .ok()?;
    let response = client.get(url).send().await.ok()?;
    response.json().await.ok()
}

/// The provider's newest `Anchored` event on chain: its block, the log size and head.
async fn last_anchor(chain: &medrec_client::Chain, provider: Address) -> Option<provider::Anchor> {
    use alloy::{providers::Provider as _, rpc::types::Filter, sol_types::SolEvent};
    use medrec_contracts::AccessAnchors::Anchored;
    let filter = Filter::new()
        .address(chain.spec().anchors)
        .event_signature(Anchored::SIGNATURE_HASH)
        .topic1(provider.into_word())
        .from_block(chain.spec().from_block);
    let logs = chain.reader().get_logs(&filter).await.ok()?;
    let last = logs.last()?;
    let e = Anchored::decode_log(&last.inner).ok()?;
    Some(provider::Anchor { block: last.block_number.unwrap_or(0), size: e.size, head: e.head })
}
