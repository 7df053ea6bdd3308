//! The console's two assets, embedded in the binary: one stylesheet and one
//! small script of our own (no third-party code, nothing fetched). Each is
//! served under a name with its content's hash, so it may be cached for a
//! year: a new build of either gets a new name.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::render;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

fn hashed(prefix: &str, body: &str, ext: &str) -> String {
    let h = hex::encode(Sha256::digest(body.as_bytes()));
    format!("/assets/{prefix}-{}.{ext}", &h[..16])
}

/// Where the stylesheet is served.
pub static CSS_PATH: LazyLock<String> = LazyLock::new(|| hashed("console", CSS, "css"));
/// Where the script is served.
pub static JS_PATH: LazyLock<String> = LazyLock::new(|| hashed("console", JS, "js"));

/// `GET /assets/{file}`: an asset by its hashed name; any other name 404.
pub async fn serve(Path(file): Path<String>) -> Response {
    let path = format!("/assets/{file}");
    let (body, kind) = if path == *CSS_PATH {
        (CSS, "text/css; charset=utf-8")
    } else if path == *JS_PATH {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return render::problem(StatusCode::NOT_FOUND, "Not found", "no such asset");
    };
    let mut resp = ([(header::CONTENT_TYPE, kind)], body).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    render::secure(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_names_carry_their_hash() {
        assert!(CSS_PATH.starts_with("/assets/console-") && CSS_PATH.ends_with(".css"));
        assert!(JS_PATH.ends_with(".js"));
        assert_ne!(hashed("console", "a", "js"), hashed("console", "b", "js"));
        // Our script only: no remote address, no eval.
        assert!(!JS.contains("http://") && !JS.contains("https://"));
        assert!(!JS.contains("eval(") && !JS.contains("document.write"));
    }
}
