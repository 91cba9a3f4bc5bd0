//! `GET /events`: server-sent events, so a new notice appears on the open pages within
//! a second or two of its block, without reloading.

use crate::state::AppState;
use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::Stream;
use std::convert::Infallible;
use tokio::sync::broadcast::error::RecvError;

/// The stream: one event per notice (`notice`) or refresh (`records`), as JSON.
pub(crate) async fn stream(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = state.live.subscribe();
    let events = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(live) => {
                    let data = serde_json::to_string(&live).unwrap_or_default();
                    return Some((Ok(Event::default().event(live.kind).data(data)), rx));
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
