//! `medrec patient offers`, `accept` and `reject`: a provider's offer waits at its
//! gatekeeper until the patient takes it, which creates the relationship on chain from
//! the patient's own key with the provider's name encrypted for the patient; `accept`
//! and `reject` answer a provider's pending update on a relationship that exists.

use super::{PatientArgs, Status, Target, acted_as, session};
use crate::output;
use alloy::primitives::Address;
use anyhow::bail;
use medrec_client::patient::{
    PatientSession,
    offers::{Offer, Offers},
};
use serde_json::{Value, json};
use std::process::ExitCode;

/// An offer as JSON.
pub(crate) fn offer_json(o: &Offer) -> Value {
    json!({
        "relationship": o.view.relationship.0,
        "provider": o.view.provider,
        "delegate": o.view.delegate,
        "account": o.view.account,
        "data_hash": o.view.data_hash,
        "endpoint": o.endpoint,
        "status": "offered",
    })
}

/// Tells the person about gatekeepers that could not be asked.
pub(crate) fn tell_problems(found: &Offers) {
    for (provider, why) in &found.problems {
        output::note(&format!("note: the offers of provider {provider} cannot be read: {why}"));
    }
}

/// Runs `medrec patient offers`.
pub(crate) async fn list(p: &PatientArgs) -> anyhow::Result<ExitCode> {
    let session = session(p).await?;
    let found = session.offers().await?;
    tell_problems(&found);
    if p.json {
        let list: Vec<Value> = found.offers.iter().map(offer_json).collect();
        output::result(&json!({"account": session.address(), "offers": list}).to_string());
        return Ok(ExitCode::SUCCESS);
    }
    if found.offers.is_empty() {
        output::note("no offers are waiting for you");
    }
    for o in &found.offers {
        output::result(&format!(
            "relationship {} offered by provider {} (gatekeeper {}): take it with `medrec patient accept --relationship {}`",
            o.view.relationship.0, o.view.provider, o.endpoint, o.view.relationship.0
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// The one waiting offer `target` names, if it names one (an id prefix of an offer and
/// of no relationship on chain, or a provider with one offer and no relationship
/// waiting for an answer).
async fn offer_named(
    session: &PatientSession,
    target: &Target,
) -> anyhow::Result<(Option<Offer>, Offers)> {
    let found = session.offers().await?;
    let mine = session.relationships().await?;
    let chosen: Vec<&Offer> = match (&target.relationship, target.provider) {
        (Some(text), _) => {
            let text = text.trim().trim_start_matches("0x").to_lowercase();
            let on_chain = mine.keys().any(|id| hex_of(id.0).starts_with(&text));
            if on_chain {
                Vec::new()
            } else {
                found
                    .offers
                    .iter()
                    .filter(|o| hex_of(o.view.relationship.0).starts_with(&text))
                    .collect()
            }
        }
        (None, Some(provider)) => {
            let pending = mine.values().any(|s| {
                s.provider == Some(provider)
                    && s.status.is_some_and(|st| st == Status::UpdatePending)
            });
            let offered: Vec<&Offer> =
                found.offers.iter().filter(|o| o.view.provider == provider).collect();
            if pending && !offered.is_empty() {
                bail!(
                    "provider {provider} has an offer and a pending update waiting for you: name one with --relationship ({})",
                    ids(&offered)
                );
            }
            offered
        }
        (None, None) => bail!("say which relationship: --relationship ID or --provider ADDRESS"),
    };
    match chosen.as_slice() {
        [] => Ok((None, found)),
        [one] => Ok((Some((*one).clone()), found)),
        many => bail!("{} offers match; name one with --relationship ({})", many.len(), ids(many)),
    }
}

fn hex_of(b: alloy::primitives::B256) -> String {
    alloy::hex::encode(b)
}

fn ids(offers: &[&Offer]) -> String {
    offers.iter().map(|o| o.view.relationship.0.to_string()).collect::<Vec<_>>().join(", ")
}

/// Runs `medrec patient accept`: takes the offer named, or accepts a pending update.
pub(crate) async fn accept(p: &PatientArgs, target: &Target) -> anyhow::Result<ExitCode> {
    let session = session(p).await?;
    let (offer, found) = offer_named(&session, target).await?;
    let Some(offer) = offer else {
        if target.provider.is_some() {
            tell_problems(&found);
        }
        return super::transition(p, target, Status::Accepted).await;
    };
    let (id, receipt) = session.take(&offer).await?;
    if p.json {
        output::result(
            &json!({
                "relationship": id.0,
                "provider": offer.view.provider,
                "delegate": offer.view.delegate,
                "status": Status::Accepted.to_string(),
                "taken": true,
                "block": receipt.block_number,
                "tx": receipt.transaction_hash,
                "actor": session.signer().address(),
            })
            .to_string(),
        );
    } else {
        output::result(&format!(
            "took the offer of provider {}: relationship {} is on chain, accepted, created by your key{} (the chain names the provider only encrypted for you)",
            offer.view.provider,
            id.0,
            acted_as(&session)
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `medrec patient reject`: an offer needs nothing on chain; a pending update is
/// rejected (the relationship closes).
pub(crate) async fn reject(p: &PatientArgs, target: &Target) -> anyhow::Result<ExitCode> {
    let session = session(p).await?;
    let (offer, _) = offer_named(&session, target).await?;
    let Some(offer) = offer else {
        return super::transition(p, target, Status::Rejected).await;
    };
    let sentence = format!(
        "nothing to send: the offer of relationship {} by provider {} is not on chain, and only your key can create it; leave it, and it never reaches the chain",
        offer.view.relationship.0, offer.view.provider
    );
    if p.json {
        output::result(
            &json!({
                "relationship": offer.view.relationship.0,
                "provider": offer.view.provider,
                "status": "offered",
                "sent": false,
                "note": sentence,
            })
            .to_string(),
        );
    } else {
        output::result(&sentence);
    }
    Ok(ExitCode::SUCCESS)
}

/// The provider of a relationship in words: its address, or "(encrypted)".
pub(crate) fn provider_text(provider: Option<Address>) -> String {
    provider.map_or_else(|| "(encrypted)".to_owned(), |a| a.to_string())
}
