//! The researcher's app: Overview (admission, the privacy budget spent, the bounties
//! owned with Redeem), Mining (start and stop, blocks sealed) and Results (each
//! released aggregate as bars per group).

use super::Chrome;
use crate::{
    error::{PageError, PageResult, render},
    research::{Mining, ResearcherSession},
    state::AppState,
    views::{
        Names,
        researcher::{self, BountyRow, Budget},
    },
};
use askama::Template;
use axum::{
    Form,
    extract::State,
    response::{IntoResponse, Redirect},
};
use serde::Deserialize;
use std::sync::atomic::Ordering;

#[derive(Template)]
#[template(path = "researcher_overview.html")]
struct OverviewPage {
    chrome: Chrome,
    admitted: bool,
    bounties: Vec<BountyRow>,
    redeemed: usize,
    budgets: Vec<Budget>,
}

#[derive(Template)]
#[template(path = "researcher_mining.html")]
struct MiningPage {
    chrome: Chrome,
    running: bool,
    sealed: u64,
    last: u64,
    minutes: u64,
    failure: Option<String>,
}

#[derive(Template)]
#[template(path = "researcher_results.html")]
struct ResultsPage {
    chrome: Chrome,
    results: Vec<researcher::Result>,
}

fn failed(what: &str, e: &medrec_client::Error) -> PageError {
    PageError::Failed(format!(
        "{what} ({}). Check that the chain is running, then reload.",
        crate::error::sentence(e).trim_end_matches('.')
    ))
}

async fn session(state: &AppState) -> Result<ResearcherSession, PageError> {
    state.researcher.read().await.clone().ok_or(PageError::Locked)
}

/// How the providers of `ids`' relationships are named.
async fn names(
    state: &AppState,
    session: &ResearcherSession,
    providers: impl Iterator<Item = alloy::primitives::Address>,
) -> Names {
    for p in providers {
        let known = state.names.read().await.endpoints.contains_key(&p);
        if !known && let Ok(url) = session.chain().endpoint(p).await {
            state.names.write().await.endpoints.insert(p, url);
        }
    }
    state.names.read().await.clone()
}

/// `GET /`.
pub(crate) async fn overview(State(state): State<AppState>) -> PageResult {
    let session = session(&state).await?;
    let admitted = session
        .admitted()
        .await
        .map_err(|e| failed("Your admission cannot be read from the chain", &e))?;
    let owned = session
        .owned()
        .await
        .map_err(|e| failed("Your bounties cannot be read from the chain", &e))?;
    let answers = session.answers().map_err(|e| PageError::Failed(crate::error::sentence(&e)))?;
    let providers = session.providers(&answers);
    let names = names(&state, &session, providers.values().copied()).await;
    let bounties = researcher::bounties(&owned, &answers.by_bounty, &providers, &names);
    let chrome = Chrome::new(&state, "overview", "Overview", session.address().to_string());
    render(&OverviewPage {
        chrome,
        admitted,
        redeemed: bounties.iter().filter(|b| b.epsilon.is_some()).count(),
        bounties,
        budgets: researcher::budgets(&answers.by_bounty, &providers, &names),
    })
}

/// The Redeem form.
#[derive(Deserialize)]
pub(crate) struct RedeemForm {
    bounty: String,
}

/// `POST /bounties/redeem`: redeems one bounty at its provider's gatekeeper.
pub(crate) async fn redeem(
    State(state): State<AppState>,
    Form(form): Form<RedeemForm>,
) -> PageResult {
    let session = session(&state).await?;
    match session.redeem(&form.bounty).await {
        Ok(answer) => {
            let replayed = answer["replayed"] == true;
            let provider = match answer["provider"].as_str().and_then(|p| p.parse().ok()) {
                Some(p) => names(&state, &session, std::iter::once(p)).await.provider(p),
                None => "the provider".to_owned(),
            };
            // The chain does not say who posted a bounty: the app asked the directory's
            // gatekeepers, and the one holding the relationship answered.
            let found = "found by asking the network's gatekeepers, since the chain does not name who posted it";
            state.tell(
                false,
                if replayed {
                    format!("Redeemed at {provider} ({found}): it gave the answer it released before (no budget spent again). See Results.")
                } else {
                    format!(
                        "Redeemed at {provider} ({found}): it released an aggregate for ε = {}. See Results.",
                        crate::views::chart::number(answer["epsilon"].as_f64().unwrap_or(0.0))
                    )
                },
            );
        }
        Err(e) => {
            state.tell(true, format!("The bounty was not redeemed. {}", crate::error::sentence(&e)))
        }
    }
    Ok(Redirect::to("/").into_response())
}

/// `GET /mining`.
pub(crate) async fn mining(State(state): State<AppState>) -> PageResult {
    let session = session(&state).await?;
    let page = {
        let guard = state.mining.lock().map_err(|_| {
            PageError::Failed("The miner's state is unreadable; restart the app.".to_owned())
        })?;
        let chrome = Chrome::new(&state, "mining", "Mining", session.address().to_string());
        match guard.as_ref() {
            Some(m) => MiningPage {
                chrome,
                running: m.running(),
                sealed: m.sealed.load(Ordering::Relaxed),
                last: m.last.load(Ordering::Relaxed),
                minutes: m.started.elapsed().as_secs() / 60,
                failure: m.failure.lock().ok().and_then(|f| f.clone()),
            },
            None => {
                MiningPage { chrome, running: false, sealed: 0, last: 0, minutes: 0, failure: None }
            }
        }
    };
    render(&page)
}

/// The Mining form.
#[derive(Deserialize)]
pub(crate) struct MineForm {
    action: String,
}

/// `POST /mining`: starts or stops the miner.
pub(crate) async fn mine(State(state): State<AppState>, Form(form): Form<MineForm>) -> PageResult {
    let session = session(&state).await?;
    let Ok(mut slot) = state.mining.lock() else {
        return Err(PageError::Failed(
            "The miner's state is unreadable; restart the app.".to_owned(),
        ));
    };
    match form.action.as_str() {
        "start" => {
            if slot.as_ref().is_some_and(Mining::running) {
                state.tell(false, "The miner is already running.");
            } else {
                *slot =
                    Some(Mining::start(session.chain().rpc_url().to_owned(), session.address()));
                state.tell(false, "Mining started: the blocks you seal name you as their miner, so you own the bounties they hold.");
            }
        }
        "stop" => {
            if let Some(m) = slot.take() {
                let sealed = m.sealed.load(Ordering::Relaxed);
                m.stop();
                state.tell(
                    false,
                    format!(
                        "Mining stopped after {}.",
                        medrec_client::plural(sealed as usize, "block")
                    ),
                );
            }
        }
        _ => state.tell(true, "Choose Start mining or Stop mining."),
    }
    drop(slot);
    Ok(Redirect::to("/mining").into_response())
}

/// `GET /results`.
pub(crate) async fn results(State(state): State<AppState>) -> PageResult {
    let session = session(&state).await?;
    let answers = session.answers().map_err(|e| PageError::Failed(crate::error::sentence(&e)))?;
    let providers = session.providers(&answers);
    let names = names(&state, &session, providers.values().copied()).await;
    let chrome = Chrome::new(&state, "results", "Results", session.address().to_string());
    render(&ResultsPage {
        chrome,
        results: researcher::results(&answers.by_bounty, &providers, &names),
    })
}
