//! Logging in and out of the console. A login is `App::login` (the same key check, the same
//! throttling, the same 24 h sessions as the API's `login`); its session id lives in an
//! HttpOnly, SameSite=Strict cookie scoped to `/console`.
//!
//! CSRF: a session's token is derived from its id (SHA-256 under a fixed label), so it needs
//! no storage, holds on every node and dies with the session; a page from another origin
//! can neither read the cookie nor compute the token. The login form itself, before there is
//! a session, is tied to a random cookie of its own (double submit).

use askama::Template;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::forms::{read_form, same_secret, Post};
use super::views::Nav;
use super::{app_message, app_status, render, Console};
use crate::app::{AppError, Caller};
use crate::server::Client;

const SESSION_COOKIE: &str = "hookd_session";
const LOGIN_COOKIE: &str = "hookd_login";
/// Longest user name and API key the login form takes.
const MAX_NAME: usize = 200;
const MAX_KEY: usize = 500;

/// A logged-in user of the console.
pub struct Session {
    id: String,
    pub caller: Caller,
}

impl Session {
    /// The session behind the request's cookie; a redirect to the login page otherwise.
    pub async fn from_headers(headers: &HeaderMap, console: &Console) -> Result<Session, Response> {
        let to_login = |expired: bool| {
            let to = if expired {
                "/console/login?expired=1"
            } else {
                "/console/login"
            };
            Redirect::to(to).into_response()
        };
        let Some(id) = cookie(headers, SESSION_COOKIE).filter(|id| id.len() <= 64) else {
            return Err(to_login(false));
        };
        match console.app.console_caller_from_session(id).await {
            Ok(caller) => Ok(Session {
                id: id.to_string(),
                caller,
            }),
            Err(AppError::SessionExpired) => Err(to_login(true)),
            Err(e) => Err(super::PageError::from(e).into_response()),
        }
    }

    /// The token every form of this session carries.
    pub fn csrf(&self) -> String {
        csrf_token(&self.id)
    }

    pub fn csrf_matches(&self, given: &str) -> bool {
        same_secret(&self.csrf(), given)
    }

    /// What the page header shows: who is logged in, and the logout form's token.
    pub fn nav(&self) -> Nav {
        let user = match self.caller.portal {
            Some(_) => "portal".to_string(),
            None => self.caller.user.name.clone(),
        };
        Nav {
            user,
            merchant: self.caller.user.merchant_code.clone().unwrap_or_default(),
            admin: self.caller.is_admin(),
            csrf: self.csrf(),
            read_only: self.caller.read_only(),
        }
    }

    /// Refuses (403, a page that says why) when this session is read-only.
    pub fn may_change(&self) -> Result<(), super::PageError> {
        if self.caller.read_only() {
            return Err(super::PageError::new(
                StatusCode::FORBIDDEN,
                "This is a read-only session: it shows everything and changes nothing. Nothing was changed.",
            ));
        }
        Ok(())
    }
}

impl FromRequestParts<Console> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Self::Rejection> {
        Session::from_headers(&parts.headers, console).await
    }
}

fn csrf_token(session_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"hookd console csrf\0");
    h.update(session_id.as_bytes());
    hex::encode(h.finalize())
}

/// The value of cookie `name`, if the request has it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Sets a cookie with the console's attributes: SameSite=Strict, or SameSite=None; Secure
/// when the console may be framed by other origins (a framed page's cookies are third-party);
/// `Secure` too whenever the client reached us over HTTPS (directly or through a trusted
/// proxy), so a browser never sends it in clear. Over plain HTTP (local use) it is not, or
/// the browser would not send it back at all.
fn set_cookie(
    console: &Console,
    response: &mut Response,
    client: Client,
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
) {
    let attributes = if console.framing.framed() {
        "SameSite=None; Secure"
    } else if client.https {
        "SameSite=Strict; Secure"
    } else {
        "SameSite=Strict"
    };
    let text = format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; {attributes}");
    if let Ok(v) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Option<Nav>,
    csrf: String,
    username: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    expired: Option<String>,
}

/// The login page, with a fresh login token (and its cookie) each time.
pub async fn login_page(State(console): State<Console>, client: Client, Query(q): Query<LoginQuery>) -> Response {
    let notice = q
        .expired
        .map(|_| "Your session has expired or was not found. Please log in again.");
    login_form(&console, client, StatusCode::OK, String::new(), None, notice)
}

pub(super) fn login_form(
    console: &Console,
    client: Client,
    status: StatusCode,
    username: String,
    error: Option<String>,
    notice: Option<&'static str>,
) -> Response {
    let token = hex::encode(rand::thread_rng().gen::<[u8; 16]>());
    let page = LoginPage {
        nav: None,
        csrf: token.clone(),
        username,
        error,
        notice,
    };
    let mut response = render(status, &page);
    set_cookie(
        console,
        &mut response,
        client,
        LOGIN_COOKIE,
        &token,
        "/console/login",
        3600,
    );
    response
}

/// `POST /console/login`: `App::login`, then the session cookie and the webhook list.
pub async fn login(State(console): State<Console>, request: Request) -> Response {
    // The peer, or the client behind a trusted proxy (`server::Client`).
    let client = request.extensions().get::<Client>().copied().unwrap_or_default();
    let expected = cookie(request.headers(), LOGIN_COOKIE).map(str::to_string);
    let fields = match read_form(&console, request).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let username = fields.get("username").unwrap_or_default().trim().to_string();
    let key = fields.get("api_key").unwrap_or_default().trim();
    let token_ok = expected.is_some_and(|t| same_secret(&t, fields.get("csrf").unwrap_or_default()));
    if !token_ok {
        let why = "This login form has expired or your browser did not send its cookie \
                   (the console needs cookies): please try again.";
        return login_form(
            &console,
            client,
            StatusCode::FORBIDDEN,
            username,
            Some(why.into()),
            None,
        );
    }
    if username.is_empty() || key.is_empty() || username.len() > MAX_NAME || key.len() > MAX_KEY {
        let why = "Enter your user name and API key (as given by `hookd user add`).";
        return login_form(
            &console,
            client,
            StatusCode::BAD_REQUEST,
            username,
            Some(why.into()),
            None,
        );
    }
    match console.app.console_login(&username, key, client.ip).await {
        Ok(id) => {
            let mut response = Redirect::to("/console/").into_response();
            let ttl = console.app.settings.session_ttl.as_secs();
            set_cookie(&console, &mut response, client, SESSION_COOKIE, &id, "/console", ttl);
            set_cookie(&console, &mut response, client, LOGIN_COOKIE, "", "/console/login", 0);
            response
        }
        Err(e) => {
            let status = app_status(&e);
            login_form(&console, client, status, username, Some(app_message(e)), None)
        }
    }
}

/// `POST /console/logout`: ends the session (on the server, so a copied cookie is dead
/// too) and forgets its cookie in this browser.
pub async fn logout(State(console): State<Console>, client: Client, post: Post) -> Response {
    if let Err(e) = console.app.logout(&post.session.id).await {
        return super::PageError::from(e).into_response();
    }
    let mut response = Redirect::to("/console/login").into_response();
    set_cookie(&console, &mut response, client, SESSION_COOKIE, "", "/console", 0);
    response
}

/// The session cookie for a new session `id` on `response`.
pub(super) fn set_session_cookie(console: &Console, response: &mut Response, client: Client, id: &str) {
    let ttl = console.app.settings.session_ttl.as_secs();
    set_cookie(console, response, client, SESSION_COOKIE, id, "/console", ttl);
}
