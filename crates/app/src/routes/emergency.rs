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
use medrec_client::{care::GroupInfo, timeline::unix_now};
use serde::Deserialize;

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
    // The clinician's latest opening still in force, as the chain records it (the one
    // just broken from this page, or one from before the app started).
    let latest = clinician
        .openings()
        .await
        .ok()
        .and_then(|all| all.into_iter().rev().find(|o| o.expires_at > unix_now()));
    let mut chrome = Chrome::new(&state, "emergency", "Emergency", clinician.address().to_string());
    chrome.emergency = !groups.is_empty();
    let (mut opened, mut providers, mut records_error) = (None, Vec::new(), None);
    if let Some(o) = latest {
        let all = medrec_client::care::groups(viewer.chain()).await.unwrap_or_default();
        let in_force = o.expires_at > unix_now();
        opened = Some(Opened {
            patient: o.patient.to_string(),
            group: care::group_name(&all, o.group),
            reason: o.reason.to_string(),
            until: date(o.expires_at),
            in_force,
        });
        if in_force {
            // The library asks a gatekeeper that has not followed the opening's block
            // yet again for a few seconds.
            match clinician.emergency_records(o.patient).await.map_err(|e| sentence(&e)) {
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
        }
        Err(e) => state.tell(true, e),
    }
    Ok(Redirect::to("/emergency").into_response())
}
