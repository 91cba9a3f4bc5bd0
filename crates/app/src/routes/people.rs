//! People & keys: who acts for the patient's account and who can recover it.
//!
//! - Custodians (a spouse, a holder of power of attorney): their keys with their rights
//!   and until-date, read from the chain's key events; added from the acceptance code
//!   the custodian's own app makes (their key's signed consent, so a typo cannot hand
//!   the account away), removed at once.
//! - Acting for someone: this app's key signs an acceptance code for another account.
//! - Guardians: named with a threshold; the chain holds only their commitment, the list
//!   stays in the wallet's folder.
//! - A guardian recovery waiting: a security alert, with its time-lock and the Veto.

use super::{Chrome, context};
use crate::{
    error::{PageResult, render, sentence},
    keys::{self, GuardianList},
    state::AppState,
    views::date,
};
use alloy::primitives::Address;
use askama::Template;
use axum::{
    Form,
    extract::State,
    response::{IntoResponse, Redirect},
};
use medrec_client::{
    patient::keys::{Acceptance, Guardians},
    timeline::short_address,
};
use medrec_contracts::Rights;
use serde::Deserialize;

/// A custodian's key as the page shows it.
pub(crate) struct CustodianRow {
    key: String,
    name: String,
    rights: String,
    until: String,
    standing: &'static str,
    active: bool,
    since: u64,
}

/// A waiting recovery.
pub(crate) struct RecoveryRow {
    new_key: String,
    ready: String,
    left: String,
    ready_now: bool,
}

#[derive(Template)]
#[template(path = "people.html")]
struct PeoplePage {
    chrome: Chrome,
    account: String,
    /// This app's key is the account's own (it manages keys and guardians).
    owner: bool,
    recovery: Option<RecoveryRow>,
    custodians: Vec<CustodianRow>,
    guardians: Vec<(String, String)>,
    threshold: u8,
    guardians_on_chain: bool,
    code: Option<String>,
    notes: Vec<String>,
}

/// `GET /people`.
pub(crate) async fn page(State(state): State<AppState>) -> PageResult {
    show(&state, None).await
}

async fn show(state: &AppState, code: Option<String>) -> PageResult {
    let cx = context(state, "people", "People & keys").await?;
    let chain = cx.session.chain();
    let account = cx.session.address();
    let mut notes = Vec::new();
    let now = chain.now().await.unwrap_or_else(|_| medrec_client::timeline::unix_now());
    let recovery = match chain.recovery(account).await {
        Ok(w) if !w.new_key.is_zero() => Some(RecoveryRow {
            new_key: w.new_key.to_string(),
            ready: date(w.ready_at),
            left: hours_left(w.ready_at, now),
            ready_now: now >= w.ready_at,
        }),
        Ok(_) => None,
        Err(e) => {
            notes.push(format!(
                "Whether a recovery is waiting cannot be read right now: {}",
                sentence(&e)
            ));
            None
        }
    };
    let names = keys::custodian_names(&state.data_dir);
    let custodians = match chain.account_keys(account).await {
        Ok(slots) => slots
            .iter()
            .rev()
            .filter(|k| !k.owner() && k.key != account)
            .map(|k| CustodianRow {
                key: k.key.to_string(),
                name: names.get(&k.key).cloned().unwrap_or_else(|| short_address(k.key)),
                rights: Rights(k.rights).to_string(),
                until: if k.until == 0 { "until removed".to_owned() } else { date(k.until) },
                standing: if k.rights == 0 {
                    "removed"
                } else if k.active(now) {
                    "acting"
                } else {
                    "powers ended"
                },
                active: k.active(now),
                since: k.block,
            })
            .collect(),
        Err(e) => {
            notes.push(format!("The account's keys cannot be read right now: {}", sentence(&e)));
            Vec::new()
        }
    };
    let kept = keys::guardians(&state.data_dir);
    let guardians_on_chain =
        chain.relationships().hasGuardians(account).call().await.unwrap_or(false);
    let (guardians, threshold) = kept.map_or((Vec::new(), 0), |g| {
        let rows = g
            .guardians
            .guardians
            .iter()
            .map(|a| (a.to_string(), g.names.get(a).cloned().unwrap_or_default()))
            .collect();
        (rows, g.guardians.threshold)
    });
    render(&PeoplePage {
        chrome: cx.chrome,
        account: account.to_string(),
        owner: state.acting().is_none(),
        recovery,
        custodians,
        guardians,
        threshold,
        guardians_on_chain,
        code,
        notes,
    })
}

/// `in 71 h`, `in 12 min`, `now`.
fn hours_left(at: u64, now: u64) -> String {
    let left = at.saturating_sub(now);
    match left {
        0 => "now: anyone can complete it".to_owned(),
        l if l >= 3_600 => format!("in {} h", l / 3_600),
        l => format!("in {} min", l.div_ceil(60)),
    }
}

/// Only the account's own key manages keys.
fn owner_only(state: &AppState, what: &str) -> Result<(), String> {
    match state.acting() {
        Some(a) => Err(format!(
            "You cannot {what} for {}: only the patient's own key manages the account's keys and guardians.",
            a.account
        )),
        None => Ok(()),
    }
}

/// The Add custodian form.
#[derive(Deserialize)]
pub(crate) struct AddForm {
    code: String,
    name: String,
}

/// `POST /people/custodians`: the custodian's acceptance code, checked and sent.
pub(crate) async fn add_custodian(
    State(state): State<AppState>,
    Form(form): Form<AddForm>,
) -> PageResult {
    let Some(session) = state.session().await else {
        return Ok(Redirect::to("/unlock").into_response());
    };
    let outcome = async {
        owner_only(&state, "add a custodian")?;
        let acceptance = Acceptance::parse(&form.code).map_err(|e| sentence(&e))?;
        let receipt =
            session.add_accepted_custodian(&acceptance).await.map_err(|e| sentence(&e))?;
        let name = form.name.trim();
        let name = if name.is_empty() { short_address(acceptance.key) } else { name.to_owned() };
        keys::name_custodian(&state.data_dir, acceptance.key, &name)
            .map_err(|e| format!("The custodian was added, but their name could not be kept: {e}."))?;
        Ok::<_, String>(format!(
            "{name} (key {}) now acts for your account with the rights: {}, {}{}. Everything they do is recorded on the chain as done by their key.",
            short_address(acceptance.key),
            Rights(acceptance.rights),
            if acceptance.until == 0 { "until you remove them".to_owned() } else { format!("until {}", date(acceptance.until)) },
            receipt.block_number.map(|b| format!(" (block {b})")).unwrap_or_default()
        ))
    }

    .await;
    match outcome {
        Ok(text) => state.tell(false, text),
        Err(e) => state.tell(true, e),
    }
    Ok(Redirect::to("/people").into_response())
}

/// The Remove form.
#[derive(Deserialize)]
pub(crate) struct RemoveForm {
    key: String,
}

/// `POST /people/custodians/remove`: the key stops acting at once.
pub(crate) async fn remove_custodian(
    State(state): State<AppState>,
    Form(form): Form<RemoveForm>,
) -> PageResult {
    let Some(session) = state.session().await else {
        return Ok(Redirect::to("/unlock").into_response());
    };
    let outcome = async {
        owner_only(&state, "remove a custodian")?;
        let key: Address =
            form.key.trim().parse().map_err(|_| "That is not a key's address.".to_owned())?;
        session.remove_custodian(key).await.map_err(|e| sentence(&e))?;
        let name = keys::custodian_names(&state.data_dir)
            .get(&key)
            .cloned()
            .unwrap_or_else(|| short_address(key));
        Ok::<_, String>(format!(
            "{name} no longer acts for your account: their key was retired from this block on."
        ))
    }
    .await;
    match outcome {
        Ok(text) => state.tell(false, text),
        Err(e) => state.tell(true, e),
    }
    Ok(Redirect::to("/people").into_response())
}

/// The Act-for-someone form: which account, which rights, until when.
#[derive(Deserialize)]
pub(crate) struct AcceptForm {
    account: String,
    #[serde(default)]
    see: Option<String>,
    #[serde(default)]
    share: Option<String>,
    #[serde(default)]
    decide: Option<String>,
    #[serde(default)]
    until: String,
}

/// `POST /people/accept`: this app's key signs its acceptance to act for another
/// account; the page shows the code to hand to that patient.
pub(crate) async fn acceptance(
    State(state): State<AppState>,
    Form(form): Form<AcceptForm>,
) -> PageResult {
    let Some(session) = state.session().await else {
        return Ok(Redirect::to("/unlock").into_response());
    };
    let made = (|| {
        let account: Address = form.account.trim().parse().map_err(|_| {
            format!("'{}' is not an account address (0x and 40 hex digits).", form.account.trim())
        })?;
        let rights = [
            (&form.see, Rights::SEE),
            (&form.share, Rights::SHARE),
            (&form.decide, Rights::DECIDE),
        ]
        .iter()
        .filter(|(on, _)| on.is_some())
        .fold(0u8, |r, (_, bit)| r | bit);
        if rights == 0 {
            return Err("Choose at least one right: see, share or decide.".to_owned());
        }
        let until = match form.until.trim() {
            "" => 0,
            text => day(text).ok_or_else(|| format!("'{text}' is not a date (YYYY-MM-DD)."))?,
        };
        Acceptance::sign(session.chain(), session.signer(), account, rights, until)
            .map(|a| a.code())
            .map_err(|e| sentence(&e))
    })();
    match made {
        Ok(code) => {
            state.tell(false, "Your key signed its acceptance. Send the code below to the patient: they paste it under People & keys to let your key act for them. It only works for the rights and date it names.");
            show(&state, Some(code)).await
        }
        Err(e) => {
            state.tell(true, e);
            Ok(Redirect::to("/people#act-for").into_response())
        }
    }
}

/// Midnight UTC of a `YYYY-MM-DD` date, in unix seconds.
fn day(text: &str) -> Option<u64> {
    let mut parts = text.split('-');
    let (y, m, d) = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse::<u8>().ok()?,
        parts.next()?.parse().ok()?,
    );
    let date = time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()?;
    u64::try_from(date.midnight().assume_utc().unix_timestamp()).ok()
}

/// The Guardians form.
#[derive(Deserialize)]
pub(crate) struct GuardiansForm {
    guardians: String,
    threshold: u8,
}

/// `POST /people/guardians`: names the guardians (their commitment on chain, the list
/// in the wallet's folder).
pub(crate) async fn guardians(
    State(state): State<AppState>,
    Form(form): Form<GuardiansForm>,
) -> PageResult {
    let Some(session) = state.session().await else {
        return Ok(Redirect::to("/unlock").into_response());
    };
    let outcome = async {
        owner_only(&state, "name guardians")?;
        let named = keys::parse_guardians(&form.guardians)?;
        if named.iter().any(|(a, _)| *a == session.address()) {
            return Err("You cannot be your own guardian: name people you trust.".to_owned());
        }
        let list = Guardians::new(named.iter().map(|(a, _)| *a).collect(), form.threshold)
            .map_err(|e| sentence(&e))?;
        session.set_guardians(&list).await.map_err(|e| sentence(&e))?;
        let n = list.guardians.len();
        let threshold = list.threshold;
        keys::keep_guardians(
            &state.data_dir,
            &GuardianList {
                guardians: list,
                names: named.into_iter().filter(|(_, n)| !n.is_empty()).collect(),
            },
        )
        .map_err(|e| format!("The guardians are set on the chain, but their list could not be kept in your folder: {e}. Name them again."))?;
        Ok(format!(
            "{threshold} of your {n} guardians together can now move your account to a new key, after a 72-hour wait during which you can veto. The chain holds only a commitment: who they are stays in this folder."
        ))
    }
    .await;
    match outcome {
        Ok(text) => state.tell(false, text),
        Err(e) => state.tell(true, e),
    }
    Ok(Redirect::to("/people").into_response())
}

/// `POST /people/veto`: stops the waiting recovery.
pub(crate) async fn veto(State(state): State<AppState>) -> PageResult {
    let Some(session) = state.session().await else {
        return Ok(Redirect::to("/unlock").into_response());
    };
    let outcome = async {
        owner_only(&state, "veto a recovery")?;
        session.veto_recovery().await.map_err(|e| sentence(&e))?;
        Ok::<_, String>(
            "You vetoed the recovery: your account stays with your key. Your guardians' approvals of it no longer count; if someone you did not expect started it, name new guardians.".to_owned(),
        )
    }
    .await;
    match outcome {
        Ok(text) => state.tell(false, text),
        Err(e) => state.tell(true, e),
    }
    Ok(Redirect::to("/people").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_time_left_read_as_words() {
        assert_eq!(day("2026-11-30"), Some(1_795_996_800));
        assert_eq!(day("30/11/2026"), None);
        assert_eq!(hours_left(100 + 72 * 3_600, 100), "in 72 h");
        assert_eq!(hours_left(100 + 90, 100), "in 2 min");
        assert_eq!(hours_left(100, 200), "now: anyone can complete it");
    }
}
