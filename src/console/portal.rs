//! Opening a portal link (CONTRACT §7.1) and framing the console.
//!
//! `GET /console/portal/{token}` consumes the link (`App::portal_open`), sets the session
//! cookie and redirects to `/console/portal`, a clean URL, so the token never sits in the
//! address bar or a Referer. That page forwards to the webhooks with a meta refresh: a
//! navigation the console's own page starts, so a SameSite=Strict cookie set during a
//! navigation from the platform's site is sent with it.

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::session::{login_form, set_session_cookie};
use super::views::Nav;
use super::{render, Console};
use crate::app::portal::OpenError;
use crate::app::AppError;
use crate::server::Client;

/// The console's policy for being framed (`HOOKD_CONSOLE_FRAME_ANCESTORS`).
pub struct Framing {
    /// The whole Content-Security-Policy header.
    csp: HeaderValue,
    framed: bool,
}

/// Everything but `frame-ancestors`: scripts, styles, images and forms from this origin
/// only, no inline code.
const CSP_BASE: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                        form-action 'self'; base-uri 'none'; object-src 'none'";

impl Framing {
    /// `origins` were validated by the configuration (scheme, host, port only).
    pub fn new(origins: &[String]) -> Self {
        let ancestors = if origins.is_empty() {
            "'none'".to_string()
        } else {
            origins.join(" ")
        };
        let csp = format!("{CSP_BASE}; frame-ancestors {ancestors}");
        Self {
            csp: HeaderValue::from_str(&csp)
                .unwrap_or(HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'")),
            framed: !origins.is_empty(),
        }
    }

    pub fn csp(&self) -> HeaderValue {
        self.csp.clone()
    }

    /// Whether some origin may frame the console (then no X-Frame-Options, and cookies
    /// are SameSite=None; Secure).
    pub fn framed(&self) -> bool {
        self.framed
    }
}

/// `GET /console/portal/{token}`.
pub async fn open(State(console): State<Console>, Path(token): Path<String>, request: Request) -> Response {
    // A HEAD (link previews, checkers) answers without using the link up.
    if request.method() == Method::HEAD {
        return StatusCode::OK.into_response();
    }
    // The peer, or the client behind a trusted proxy (`server::Client`).
    let client = request.extensions().get::<Client>().copied().unwrap_or_default();
    match console.app.portal_open(&token, client.ip).await {
        Ok(session) => {
            let mut response = Redirect::to("/console/portal").into_response();
            set_session_cookie(&console, &mut response, client, &session);
            response
        }
        Err(e) => {
            let status = match &e {
                OpenError::Invalid => StatusCode::FORBIDDEN,
                OpenError::Expired => StatusCode::GONE,
                OpenError::App(AppError::Throttled(_)) => StatusCode::TOO_MANY_REQUESTS,
                OpenError::App(e) => super::app_status(e),
            };
            let message = match e {
                OpenError::App(e) => super::app_message(e),
                other => other.to_string(),
            };
            login_form(&console, client, status, String::new(), Some(message), None)
        }
    }
}

#[derive(Template)]
#[template(path = "portal.html")]
struct Landing {
    nav: Option<Nav>,
}

/// `GET /console/portal`: where an opened link lands, forwarding to the webhooks.
pub async fn landing() -> Response {
    render(StatusCode::OK, &Landing { nav: None })
}
