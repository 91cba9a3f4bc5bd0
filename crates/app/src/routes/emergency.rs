//! The viewer's Emergency page: a clinician of an emergency group breaks the glass for
//! a patient (the patient's address, a reason, a confirmation) and reads the patient's
//! emergency set from every provider while the opening lasts; anyone else is told who
//! may break the glass.

use super::Chrome;
use crate::{
    error::{PageError, PageResult, render, sentence},
    state::AppState,
    views::{
        care::{self, EmergencyProvider, ReasonChoice},
        date,
    },
};
use askama::Template;
use axum::{
    Form,
    extract::State,
    response::{IntoResponse, Redirect},
};
use medrec_client::{
    care::{ClinicianSession, EmergencySet, GroupInfo},
    timeline::unix_now,
};
use serde::Deserialize;
use std::time::{Duration, Instant};

/// How long after breaking the glass the page waits for the gatekeepers to follow the
/// block that recorded it, before their refusal counts.
const CATCH_UP: Duration = Duration::from_secs(15);

/// The opening this page shows the records of.
struct Opened {
    patient: String,
    group: String,
    reason: String,
    until: String,
    in_force: bool,
}

#[derive(Template)]
#[template(path = "emergency.html")]
struct EmergencyPage {
    chrome: Chrome,
    /// The emergency groups the clinician belongs to (empty: may not break the glass).
    groups: Vec<GroupInfo>,
    reasons: Vec<ReasonChoice>,
    confirmation: &'static str,
    opened: Option<Opened>,
    providers: Vec<EmergencyProvider>,
    records_error: Option<String>,
}

/// `GET /emergency`: the form (or who may use it), and the emergency set of the last
/// opening while it lasts, fetched afresh at every visit.
pub(crate) async fn page(State(state): State<AppState>) -> PageResult {
    let clinician = state.clinician().await.ok_or(PageError::Locked)?;
    // The same key's viewer session: the chain, to name the groups.
    let viewer = state.viewer().await.ok_or(PageError::Locked)?;
    let groups = clinician.emergency_groups().await.map_err(|e| {
        PageError::Failed(format!(
            "Your emergency groups cannot be read from the chain right now ({}). Check that the chain is running, then reload.",
            sentence(&e).trim_end_matches('.')
        ))
    })?;
    // The opening broken from this page, or else the clinician's latest one still in
    // force on chain (after the app restarted, say): no waiting for a gatekeeper then.
    let held = state
        .glass
        .lock()
        .ok()
        .and_then(|g| g.clone())
        .map(|(g, at)| (g.patient, g.group, g.reason, g.expires_at, at));
    let held = match held {
        Some(h) => Some(h),
        None => clinician
            .openings()
            .await
            .ok()
            .and_then(|all| all.into_iter().rev().find(|o| o.expires_at > unix_now()))
            .map(|o| {
                let long_ago = Instant::now().checked_sub(CATCH_UP).unwrap_or_else(Instant::now);
                (o.patient, o.group, o.reason, o.expires_at, long_ago)
            }),
    };
    let mut chrome = Chrome::new(&state, "emergency", "Emergency", clinician.address().to_string());
    chrome.emergency = !groups.is_empty();
    let (mut opened, mut providers, mut records_error) = (None, Vec::new(), None);
    if let Some((patient, group, reason, expires_at, recorded)) = held {
        let all = medrec_client::care::groups(viewer.chain()).await.unwrap_or_default();
        let in_force = expires_at > unix_now();
        opened = Some(Opened {
            patient: patient.to_string(),
            group: care::group_name(&all, group),
            reason: reason.to_string(),
            until: date(expires_at),
            in_force,
        });
        if in_force {
            match fetch(&clinician, patient, recorded).await {
                Ok(sets) => {
                    let mut names = state.names.read().await.clone();
                    names.endpoints.extend(sets.iter().map(|s| (s.provider, s.endpoint.clone())));
                    providers = care::emergency(&sets, &names);
                }
                Err(e) => records_error = Some(e),
            }
        }
    }
    render(&EmergencyPage {
        chrome,
        groups,
        reasons: care::reasons(),
        confirmation: care::CONFIRMATION,
        opened,
        providers,
        records_error,
    })
}

/// The emergency set from every provider; right after the opening was recorded, a
/// gatekeeper that has not followed its block yet is asked again for a while.
async fn fetch(
    clinician: &ClinicianSession,
    patient: alloy::primitives::Address,
    recorded: Instant,
) -> Result<Vec<EmergencySet>, String> {
    loop {
        match clinician.emergency_records(patient).await {
            Ok(sets) => return Ok(sets),
            Err(_) if recorded.elapsed() < CATCH_UP => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => return Err(sentence(&e)),
        }
    }
}

/// The Emergency form.
#[derive(Deserialize)]
pub(crate) struct EmergencyForm {
    #[serde(default)]
    patient: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /emergency`: breaks the glass (recorded on chain, the patient told at once),
/// then shows the emergency set.
pub(crate) async fn open(
    State(state): State<AppState>,
    Form(form): Form<EmergencyForm>,
) -> PageResult {
    let (Some(clinician), Some(viewer)) = (state.clinician().await, state.viewer().await) else {
        return Ok(Redirect::to("/unlock").into_response());
    };
    let outcome = async {
        let patient = care::patient(&form.patient)?;
        let reason = care::reason(&form.reason)?;
        if form.confirm != "yes" {
            return Err(
                "Confirm that this is an emergency: breaking the glass is recorded on the chain and shown to the patient.".to_owned(),
            );
        }
        let group = match form.group.trim() {
            "" => None,
            g => Some(g.parse::<u64>().map_err(|_| "Choose one of your emergency groups.".to_owned())?),
        };
        clinician.break_glass(patient, group, reason).await.map_err(|e| sentence(&e))
    }
    .await;
    match outcome {
        Ok(glass) => {
            let all = medrec_client::care::groups(viewer.chain()).await.unwrap_or_default();
            state.tell(
                false,
                format!(
                    "You broke the glass for patient {} as a member of \"{}\" because {}: recorded on the chain (transaction {}), and the patient is told. The opening ends at {}.",
                    glass.patient,
                    care::group_name(&all, glass.group),
                    glass.reason,
                    medrec_client::timeline::short_hash(glass.tx),
                    date(glass.expires_at)
                ),
            );
            if let Ok(mut held) = state.glass.lock() {
                *held = Some((glass, Instant::now()));
            }
        }
        Err(e) => state.tell(true, e),
    }
    Ok(Redirect::to("/emergency").into_response())
}
