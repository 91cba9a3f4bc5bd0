//! Account: create a wallet (the recovery phrase shown once, then confirmed), recover
//! one from its phrase, and change the passphrase. Creating and recovering are offered
//! only while the data directory holds no wallet; then the new wallet is unlocked and
//! this browser let in.

use super::Chrome;
use crate::{
    error::{PageError, PageResult, render},
    state::AppState,
};
use askama::Template;
use axum::{
    Form,
    extract::State,
    http::header,
    response::{IntoResponse, Redirect, Response},
};
use medrec_wallet::{Mnemonic, Passphrase, Wallet, WordCount};
use serde::Deserialize;

/// Which words of the phrase the person types back to show they wrote it down.
const CHECKED: [usize; 3] = [3, 7, 11];

#[derive(Template)]
#[template(path = "account_new.html")]
struct NewPage {
    data_dir: String,
    words: Vec<(usize, String)>,
    checked: [usize; 3],
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "account_recover.html")]
struct RecoverPage {
    data_dir: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    data_dir: String,
    error: Option<String>,
}

fn no_wallet_yet(state: &AppState) -> Result<(), PageError> {
    if state.role == crate::Role::Provider {
        return Err(PageError::Failed(
            "A provider's wallet is created with its registration: run `medrec provider init`."
                .to_owned(),
        ));
    }
    if Wallet::exists(&state.data_dir) {
        return Err(PageError::Failed(format!(
            "{} already holds a wallet: unlock it with its passphrase instead.",
            state.data_dir.display()
        )));
    }
    Ok(())
}

/// Two passphrases typed alike, as a [`Passphrase`].
fn chosen(passphrase: String, repeat: &str) -> Result<Passphrase, String> {
    if passphrase != repeat {
        return Err("The two passphrases differ. Type the same passphrase twice.".to_owned());
    }
    if passphrase.chars().count() < 8 {
        return Err("Choose a passphrase of at least 8 characters.".to_owned());
    }
    Passphrase::new(passphrase).map_err(|e| format!("That passphrase cannot be used: {e}."))
}

/// Unlocks the wallet just written and lets this browser in.
async fn enter(state: &AppState, passphrase: Passphrase, sentence: &str) -> PageResult {
    state.unlock(passphrase).await.map_err(PageError::Failed)?;
    state.tell(false, sentence);
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().insert(header::SET_COOKIE, state.key.cookie());
    Ok(response)
}

fn new_page(state: &AppState, phrase: &Mnemonic, error: Option<String>) -> PageResult {
    render(&NewPage {
        data_dir: state.data_dir.display().to_string(),
        words: phrase
            .phrase()
            .split(' ')
            .map(str::to_owned)
            .enumerate()
            .map(|(i, w)| (i + 1, w))
            .collect(),
        checked: CHECKED,
        error,
    })
}

/// `GET /account/new`: a new recovery phrase, shown this once (a reload draws another).
pub(crate) async fn new(State(state): State<AppState>) -> PageResult {
    no_wallet_yet(&state)?;
    let phrase = Mnemonic::generate(WordCount::Twelve)
        .map_err(|e| PageError::Failed(format!("No recovery phrase could be drawn: {e}.")))?;
    let page = new_page(&state, &phrase, None);
    if let Ok(mut pending) = state.pending_phrase.lock() {
        *pending = Some(phrase);
    }
    page
}

/// The confirmation of a new wallet.
#[derive(Deserialize)]
pub(crate) struct CreateForm {
    word3: String,
    word7: String,
    word11: String,
    passphrase: String,
    repeat: String,
}

/// `POST /account/new`: the words typed back match, so the wallet is written and
/// unlocked.
pub(crate) async fn create(
    State(state): State<AppState>,
    Form(form): Form<CreateForm>,
) -> PageResult {
    no_wallet_yet(&state)?;
    let Some(phrase) = state.pending_phrase.lock().ok().and_then(|p| p.clone()) else {
        return Ok(Redirect::to("/account/new").into_response());
    };
    let words: Vec<&str> = phrase.phrase().split(' ').collect();
    let typed = [&form.word3, &form.word7, &form.word11];
    let matches = CHECKED
        .iter()
        .zip(typed)
        .all(|(n, t)| words.get(n - 1).is_some_and(|w| w.eq_ignore_ascii_case(t.trim())));
    if !matches {
        return new_page(&state, &phrase, Some("The words you typed do not match the phrase. Check what you wrote down and type words 3, 7 and 11 again.".to_owned()));
    }
    let passphrase = match chosen(form.passphrase, &form.repeat) {
        Ok(p) => p,
        Err(e) => return new_page(&state, &phrase, Some(e)),
    };
    let (dir, params, sealed) = (state.data_dir.clone(), state.kdf, passphrase.clone());
    tokio::task::spawn_blocking(move || Wallet::recover(&dir, phrase, &sealed, params))
        .await
        .map_err(|_| {
            PageError::Failed("Creating the wallet was interrupted; try again.".to_owned())
        })?
        .map_err(|e| PageError::Failed(format!("The wallet could not be created: {e}.")))?;
    if let Ok(mut pending) = state.pending_phrase.lock() {
        *pending = None;
    }
    enter(&state, passphrase, "Your wallet is created and unlocked. Keep the recovery phrase you wrote down somewhere safe: it is the only way back if you forget the passphrase.").await
}

/// `GET /account/recover`.
pub(crate) async fn recover_page(State(state): State<AppState>) -> PageResult {
    no_wallet_yet(&state)?;
    render(&RecoverPage { data_dir: state.data_dir.display().to_string(), error: None })
}

/// The recovery form.
#[derive(Deserialize)]
pub(crate) struct RecoverForm {
    phrase: String,
    passphrase: String,
    repeat: String,
}

/// `POST /account/recover`: the wallet of a recovery phrase, written and unlocked.
pub(crate) async fn recover(
    State(state): State<AppState>,
    Form(form): Form<RecoverForm>,
) -> PageResult {
    no_wallet_yet(&state)?;
    let again = |error: String| {
        render(&RecoverPage { data_dir: state.data_dir.display().to_string(), error: Some(error) })
    };
    let words = form.phrase.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let phrase = match Mnemonic::parse(&words) {
        Ok(p) => p,
        Err(e) => return again(format!("That is not a valid recovery phrase: {e}.")),
    };
    let passphrase = match chosen(form.passphrase, &form.repeat) {
        Ok(p) => p,
        Err(e) => return again(e),
    };
    let (dir, params, sealed) = (state.data_dir.clone(), state.kdf, passphrase.clone());
    tokio::task::spawn_blocking(move || Wallet::recover(&dir, phrase, &sealed, params))
        .await
        .map_err(|_| {
            PageError::Failed("Recovering the wallet was interrupted; try again.".to_owned())
        })?
        .map_err(|e| PageError::Failed(format!("The wallet could not be recovered: {e}.")))?;
    enter(&state, passphrase, "Your wallet is recovered and unlocked.").await
}

async fn account_page(state: &AppState, error: Option<String>) -> PageResult {
    let address = Wallet::read_address(&state.data_dir).map_err(|_| PageError::Locked)?;
    let chrome = Chrome::new(state, "account", "Account", address.to_string());
    render(&AccountPage { chrome, data_dir: state.data_dir.display().to_string(), error })
}

/// `GET /account`: the wallet, and the form to change its passphrase.
pub(crate) async fn page(State(state): State<AppState>) -> PageResult {
    if state.is_demo() {
        return Err(PageError::Failed("This demo identity is a development key, not a wallet: it has no passphrase or recovery phrase.".to_owned()));
    }
    account_page(&state, None).await
}

/// The change of passphrase.
#[derive(Deserialize)]
pub(crate) struct ChangeForm {
    current: String,
    passphrase: String,
    repeat: String,
}

/// `POST /account/passphrase`: the current passphrase opens the wallet, which is then
/// sealed under the new one.
pub(crate) async fn change(
    State(state): State<AppState>,
    Form(form): Form<ChangeForm>,
) -> Response {
    let outcome = async {
        let new = chosen(form.passphrase, &form.repeat)?;
        let current = Passphrase::new(form.current)
            .map_err(|_| "Type your current passphrase.".to_owned())?;
        let (dir, kdf) = (state.data_dir.clone(), state.kdf);
        tokio::task::spawn_blocking(move || {
            let wallet = Wallet::open(&dir, &current).map_err(|e| {
                if e.is_wrong_passphrase() {
                    "Your current passphrase is not that one: nothing was changed.".to_owned()
                } else {
                    format!("The wallet cannot be opened: {e}.")
                }
            })?;
            wallet
                .change_passphrase(&new, kdf)
                .map_err(|e| format!("The passphrase could not be changed: {e}."))
        })
        .await
        .map_err(|_| "Changing the passphrase was interrupted; try again.".to_owned())?
    }
    .await;
    match outcome {
        Ok(()) => {
            state.tell(false, "Your passphrase is changed: use the new one from now on.");
            Redirect::to("/account").into_response()
        }
        Err(error) => account_page(&state, Some(error)).await.into_response(),
    }
}
