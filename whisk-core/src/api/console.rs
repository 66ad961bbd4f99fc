//! The built-in web console: `GET /console` and its assets under `/console/...`.
//!
//! A small single-page app in plain JavaScript (no build step), compiled into the binary with
//! `include_str!`. It talks only to the platform's own REST API (`/api/v1/namespaces/_/...`,
//! HTTP Basic with a key the user types, kept in `sessionStorage`) and reads the live charts'
//! data from the Prometheus text at `GET /metrics`. Charts are drawn with uPlot (MIT), vendored
//! from npm under `console/vendor/`.
//!
//! The page itself needs no authentication: it holds no data, only the code that asks the API
//! with the user's key.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One static file of the console: its name under `/console/`, content type and body.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// The console's files. `index.html` is also served at `/console` itself.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("console/index.html"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/console.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("console/console.css"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/vendor/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("console/vendor/uPlot.min.css"),
    },
    Asset {
        name: "uPlot.LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_str!("console/vendor/uPlot.LICENSE"),
    },
];

/// Scripts, styles, images and requests only from this origin; no framing; no inline script.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /console`: the page.
pub(crate) async fn index() -> Response {
    serve("index.html")
}

/// `GET /console/{file}`: an asset (`/console/` alone is the page too).
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    serve(&file)
}

/// The asset called `name` (an empty name is the page), or 404.
fn serve(name: &str) -> Response {
    let name = if name.is_empty() { "index.html" } else { name };
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut resp = a.body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    // The console is compiled in: a new binary may bring new files under the same names.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_page_and_assets_and_404s_the_rest() {
        let page = index().await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            page.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(page.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        for a in ASSETS {
            let r = asset(Path(a.name.to_string())).await;
            assert_eq!(r.status(), StatusCode::OK, "{}", a.name);
            assert_eq!(r.headers()[header::CONTENT_TYPE], a.content_type);
        }
        assert_eq!(
            asset(Path(String::new())).await.status(),
            StatusCode::OK,
            "/console/ is the page"
        );
        for missing in ["nope.js", "../Cargo.toml", "console"] {
            let r = asset(Path(missing.to_string())).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{missing}");
        }
    }

    #[test]
    fn the_page_refers_only_to_served_assets() {
        let page = ASSETS[0].body;
        for r in [
            "console.js",
            "console.css",
            "uPlot.iife.min.js",
            "uPlot.min.css",
        ] {
            assert!(page.contains(&format!("\"/console/{r}\"")), "{r}");
        }
        // No inline script: the CSP forbids it.
        assert!(!page.contains("<script>"));
    }
}
