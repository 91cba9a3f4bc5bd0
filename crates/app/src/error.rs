//! Errors shown to a person: always a page with a sentence, never raw JSON or a trace.

use askama::Template;
use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
};

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    sentence: &'a str,
}

/// A page with one sentence and a link home.
pub(crate) fn page(status: StatusCode, sentence: &str) -> Response {
    match (ErrorPage { sentence }).render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, sentence.to_owned()).into_response(),
    }
}

/// Why a page cannot be shown.
#[derive(Debug)]
pub(crate) enum PageError {
    /// The wallet is not unlocked yet: go to the unlock page.
    Locked,
    /// Something failed; the sentence says what.
    Failed(String),
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::Locked => Redirect::to("/unlock").into_response(),
            Self::Failed(sentence) => page(StatusCode::BAD_GATEWAY, &sentence),
        }
    }
}

/// A page's result.
pub(crate) type PageResult = Result<Response, PageError>;

/// Renders a template into a page.
pub(crate) fn render(template: &impl Template) -> PageResult {
    template.render().map(|html| Html(html).into_response()).map_err(|_| {
        PageError::Failed(
            "This page could not be drawn. Reload it; if it persists, restart the app.".to_owned(),
        )
    })
}

/// An error and its causes as one sentence: capitalized, ending with a full stop.
pub(crate) fn sentence(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    let mut chars = text.chars();
    let mut out: String = chars.next().map(|c| c.to_uppercase().collect()).unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("accepting relationship 0x12 failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn errors_read_as_one_sentence() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(sentence(&e), "Accepting relationship 0x12 failed: connection refused.");
    }
}
