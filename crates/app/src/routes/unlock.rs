//! Unlocking the wallet with its passphrase.

use crate::{
    error::{PageResult, render},
    state::AppState,
};
use askama::Template;
use axum::{
    Form,
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Redirect},
};
use medrec_wallet::Passphrase;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "unlock.html")]
struct UnlockPage {
    data_dir: String,
    error: Option<String>,
    /// What unlocking opens, in words.
    purpose: &'static str,
    /// Whether the folder holds a wallet (else: create or recover one).
    exists: bool,
    /// Whether a wallet can be created here (a provider's comes from `provider init`).
    can_create: bool,
}

fn purpose(state: &AppState) -> &'static str {
    match state.role {
        crate::Role::Patient => "to see your records",
        crate::Role::Viewer => "to see what patients shared with you",
        crate::Role::Researcher => "to mine and redeem your research bounties",
        crate::Role::Provider => "to enroll patients, import records and publish",
    }
}

/// `GET /unlock`: the passphrase form (or home, when already unlocked).
pub(crate) async fn page(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    if state.unlocked().await && state.key.held_by(&headers) {
        return Ok(Redirect::to("/").into_response());
    }
    if state.is_demo() {
        return Err(crate::error::PageError::Failed(
            "This demo app was opened with a development key, not a wallet: open the link `medrec demo` printed to come back, or restart the demo.".to_owned(),
        ));
    }
    render(&UnlockPage {
        data_dir: state.data_dir.display().to_string(),
        error: None,
        purpose: purpose(&state),
        exists: medrec_wallet::Wallet::exists(&state.data_dir),
        can_create: state.role != crate::Role::Provider,
    })
}

/// The unlock form.
#[derive(Deserialize)]
pub(crate) struct UnlockForm {
    passphrase: String,
}

/// `POST /unlock`: the passphrase is checked (even when the app is already unlocked)
/// and the browser gets the app's key as a cookie.
pub(crate) async fn submit(
    State(state): State<AppState>,
    Form(form): Form<UnlockForm>,
) -> PageResult {
    let outcome = match Passphrase::new(form.passphrase) {
        Ok(p) => state.unlock(p).await,
        Err(_) => Err("Type your wallet's passphrase to unlock it.".to_owned()),
    };
    match outcome {
        Ok(()) => {
            state.tell(
                false,
                match state.role {
                    crate::Role::Patient => "Your wallet is unlocked. Your records are being fetched and checked against the chain.",
                    crate::Role::Viewer | crate::Role::Researcher | crate::Role::Provider => {
                        "Your wallet is unlocked."
                    }
                },
            );
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().insert(header::SET_COOKIE, state.key.cookie());
            Ok(response)
        }
        Err(error) => render(&UnlockPage {
            data_dir: state.data_dir.display().to_string(),
            error: Some(error),
            purpose: purpose(&state),
            exists: medrec_wallet::Wallet::exists(&state.data_dir),
            can_create: state.role != crate::Role::Provider,
        }),
    }
}

/// `POST /lock`: forgets the unlocked wallet and the records in memory, and takes the
/// key back from this browser; the passphrase is needed again.
pub(crate) async fn lock(State(state): State<AppState>) -> axum::response::Response {
    if state.is_demo() {
        // There is no passphrase to unlock it again: locking would end the demo's app.
        state.tell(true, "This demo app uses a development key and has no passphrase, so it cannot be locked; stop the demo to close it.");
        return Redirect::to("/").into_response();
    }
    state.lock().await;
    let mut response = Redirect::to("/unlock").into_response();
    response.headers_mut().insert(header::SET_COOKIE, state.key.clear_cookie());
    response
}
