//! Share: choose a viewer or a group, which records (pointers named in words) and from
//! when until when; the grants in force with their expiry (a group by its name); Revoke
//! in one action; and the break-glass setting, in words, allowed or refused.

use super::{Chrome, context};
use crate::{
    error::{PageResult, render, sentence},
    state::AppState,
    views::{
        care::{self, GroupChoice, Setting},
        date,
        inbox::key,
        records::pointer_names,
        share::{self, GrantRow, Shareable},
    },
};
use askama::Template;
use axum::{
    Form,
    extract::State,
    response::{IntoResponse, Redirect},
};
use medrec_client::{
    care::{GroupInfo, groups},
    patient::{PatientSession, Target},
    timeline::unix_now,
};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "share.html")]
struct SharePage {
    chrome: Chrome,
    shareable: Vec<(Shareable, String)>,
    grants: Vec<GrantRow>,
    groups: Vec<GroupChoice>,
    /// The break-glass setting (`None` when the chain could not say).
    glass: Option<Setting>,
    /// Why the groups or the setting could not be read.
    notes: Vec<String>,
    meaning: &'static str,
    /// Why this key may not share (a custodian without the share right).
    refusal: Option<String>,
}

/// `GET /share`.
pub(crate) async fn page(State(state): State<AppState>) -> PageResult {
    let cx = context(&state, "share", "Share").await?;
    let pointers = pointer_names(&state.held.read().await.records);
    let shareable = share::shareable(&cx.summaries, &cx.names, &pointers)
        .into_iter()
        .map(|s| {
            let k = key(s.id);
            (s, k)
        })
        .collect();
    let mut notes = Vec::new();
    let groups = care_groups(&cx.session).await.unwrap_or_else(|e| {
        notes.push(format!("The groups cannot be read from the chain right now ({e}); reload to share with a group."));
        Vec::new()
    });
    let glass = match cx.session.break_glass_allowed().await {
        Ok(allowed) => Some(care::setting(allowed)),
        Err(e) => {
            notes.push(format!(
                "Your break-glass setting cannot be read from the chain right now ({}); reload to see it.",
                sentence(&e).trim_end_matches('.')
            ));
            None
        }
    };
    let grants =
        share::grants(&cx.summaries, &cx.names, &pointers, &care::group_names(&groups), unix_now());
    render(&SharePage {
        chrome: cx.chrome,
        shareable,
        grants,
        groups: care::choices(&groups),
        glass,
        notes,
        meaning: care::MEANING,
        refusal: state.may(medrec_contracts::Rights::SHARE, "share records").err(),
    })
}

/// The chain's groups, or why they cannot be read (a sentence without a full stop).
async fn care_groups(session: &PatientSession) -> Result<Vec<GroupInfo>, String> {
    groups(session.chain()).await.map_err(|e| sentence(&e).trim_end_matches('.').to_owned())
}

/// `POST /share`: the form's fields as pairs (`pointer` repeats, one per box ticked).
pub(crate) async fn share(
    State(state): State<AppState>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let Some(session) = state.session().await else {
        return Ok(Redirect::to("/unlock").into_response());
    };
    if let Err(why) = state.may(medrec_contracts::Rights::SHARE, "share records") {
        state.tell(true, why);
        return Ok(Redirect::to("/share").into_response());
    }
    let field = |name: &str| {
        fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default()
    };
    let pointers: Vec<u8> =
        fields.iter().filter(|(k, _)| k == "pointer").filter_map(|(_, v)| v.parse().ok()).collect();
    let outcome = async {
        // A group, when one is chosen (the chain's groups, by id), else the viewer.
        let group = if field("group").trim().is_empty() {
            None
        } else {
            let groups = care_groups(&session).await?;
            care::chosen_group(field("group"), &groups)?
                .map(|id| (id, care::group_name(&groups, id)))
        };
        // Either a group (by id) or a viewer (Err: the viewer's address).
        let with: Result<u64, _> = match (&group, field("viewer").trim().is_empty()) {
            (Some(_), false) => {
                return Err(
                    "Choose either a viewer (code or address) or a group, not both.".to_owned()
                );
            }
            (Some((id, _)), true) => Ok(*id),
            (None, _) => Err(share::viewer(field("viewer"))?),
        };
        if pointers.is_empty() {
            return Err("Tick at least one set of records to share.".to_owned());
        }
        let duration: u64 = field("duration").parse().unwrap_or(7 * 86_400);
        let window = share::window(field("from"), field("until"), duration)?;
        let target = Target::Id(field("relationship").to_owned());
        let grant = match with {
            Ok(id) => session.share_with_group(&target, id, Some(&pointers), window).await,
            Err(viewer) => session.share(&target, viewer, Some(&pointers), window).await,
        };
        grant.map(|g| (g, group.map(|(_, name)| name))).map_err(|e| sentence(&e))
    }
    .await;
    match outcome {
        Ok((g, group)) => state.tell(
            false,
            format!(
                "{} may now see {} of {} from {} until {}.",
                group.map_or_else(
                    || g.viewer.to_string(),
                    |name| format!("Every member of the group \"{name}\"")
                ),
                medrec_client::plural(g.pointers.len(), "set of records")
                    .replace("set of recordss", "sets of records"),
                share::relationship_words(g.relationship.0),
                if g.not_before == 0 { "now".to_owned() } else { date(g.not_before) },
                date(g.expires_at)
            ),
        ),
        Err(e) => state.tell(true, e),
    }
    Ok(Redirect::to("/share").into_response())
}

/// The revoke form.
#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    relationship: String,
    viewer: String,
}

/// `POST /share/revoke`: withdraws everything the viewer may see of the relationship.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Form(form): Form<RevokeForm>,
) -> PageResult {
    let Some(session) = state.session().await else {
        return Ok(Redirect::to("/unlock").into_response());
    };
    if let Err(why) = state.may(medrec_contracts::Rights::SHARE, "revoke a grant") {
        state.tell(true, why);
        return Ok(Redirect::to("/share").into_response());
    }
    let outcome = async {
        let viewer = share::viewer(&form.viewer)?;
        let (id, receipt) = session
            .revoke(&Target::Id(form.relationship), viewer)
            .await
            .map_err(|e| sentence(&e))?;
        Ok::<_, String>(format!(
            "{viewer} can no longer see anything of {}, from block {} on.",
            share::relationship_words(id.0),
            receipt.block_number.unwrap_or_default()
        ))
    }
    .await;
    match outcome {
        Ok(text) => state.tell(false, text),
        Err(e) => state.tell(true, e),
    }
    Ok(Redirect::to("/share").into_response())
}

/// The break-glass form.
#[derive(Deserialize)]
pub(crate) struct BreakGlassForm {
    allowed: String,
}

/// `POST /share/break-glass`: allows (`allowed=true`) or refuses break-glass.
pub(crate) async fn break_glass(
    State(state): State<AppState>,
    Form(form): Form<BreakGlassForm>,
) -> PageResult {
    let Some(session) = state.session().await else {
        return Ok(Redirect::to("/unlock").into_response());
    };
    if let Err(why) = state.may(medrec_contracts::Rights::DECIDE, "change the break-glass setting")
    {
        state.tell(true, why);
        return Ok(Redirect::to("/share").into_response());
    }
    let allowed = match form.allowed.as_str() {
        "true" => true,
        "false" => false,
        _ => {
            state.tell(true, "Choose Allow or Refuse.");
            return Ok(Redirect::to("/share").into_response());
        }
    };
    match session.set_break_glass(allowed).await {
        Ok(sent) => state.tell(false, care::setting_changed(allowed, sent.is_some())),
        Err(e) => state.tell(true, sentence(&e)),
    }
    Ok(Redirect::to("/share").into_response())
}
