//! The web console: one page and its script and style, compiled into the
//! binary, served at `/admin/` (where ActiveMQ's console is). The page holds
//! no data; its script reads the API with the credentials the operator
//! gives it, so these files are served without credentials.
//!
//! Every answer of the endpoint carries [`security_headers`]: scripts and
//! styles from this origin only (no inline script can run, whatever a value
//! holds), no framing (`X-Frame-Options: DENY`, `frame-ancestors 'none'`),
//! no content sniffing.

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::status::Endpoint;

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// The policy of every page: nothing but this origin's script, style and
/// API; SVG sparklines are drawn by the script.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// The console's routes (open: see the module).
pub(crate) fn routes() -> Router<Arc<Endpoint>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/admin/") }))
        .route("/admin", get(|| async { Redirect::to("/admin/") }))
        .route(
            "/admin/",
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/admin/console.js",
            get(|| async { page(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/admin/console.css",
            get(|| async { page(STYLE, "text/css; charset=utf-8") }),
        )
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Adds the security headers to every answer (a layer on the whole endpoint).
pub async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
