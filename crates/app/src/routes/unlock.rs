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
}

/// `GET /unlock`: the passphrase form (or home, when already unlocked).
pub(crate) async fn page(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    if state.session().await.is_some() && state.key.held_by(&headers) {
        return Ok(Redirect::to("/").into_response());
    }
    render(&UnlockPage { data_dir: state.data_dir.display().to_string(), error: None })
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
            state.tell(false, "Your wallet is unlocked. Your records are being fetched and checked against the chain.");
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().insert(header::SET_COOKIE, state.key.cookie());
            Ok(response)
        }
        Err(error) => render(&UnlockPage {
            data_dir: state.data_dir.display().to_string(),
            error: Some(error),
        }),
    }
}

/// `POST /lock`: forgets the unlocked wallet and the records in memory, and takes the
/// key back from this browser; the passphrase is needed again.
pub(crate) async fn lock(State(state): State<AppState>) -> axum::response::Response {
    state.lock().await;
    let mut response = Redirect::to("/unlock").into_response();
    response.headers_mut().insert(header::SET_COOKIE, crate::session::Key::clear_cookie());
    response
}
