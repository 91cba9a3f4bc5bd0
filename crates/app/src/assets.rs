//! The app's CSS and JavaScript, embedded in the binary (no files are read at run time
//! and no Node is needed to build).

use axum::{
    extract::Path,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "assets/"]
struct Assets;

/// `GET /assets/{file}`.
pub(crate) async fn get(Path(file): Path<String>) -> Response {
    let Some(found) = Assets::get(&file) else {
        return crate::error::page(StatusCode::NOT_FOUND, "There is no such page in the app.")
            .into_response();
    };
    let kind = match file.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], found.data.into_owned())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stylesheet_and_script_are_embedded() {
        let css = Assets::get("app.css").expect("app.css is embedded");
        assert!(std::str::from_utf8(&css.data).unwrap().contains("@media"));
        let js = Assets::get("app.js").expect("app.js is embedded");
        assert!(std::str::from_utf8(&js.data).unwrap().contains("EventSource"));
    }
}
