//! The web console: server-rendered pages for merchants and admins at `/console/`
//! (CONTRACT §6.3), served by the same binary with its templates and assets compiled in.
//!
//! The one idea to know: every page calls the same `App` operations as the JSON-RPC API,
//! with the same caller, scope, validation, throttling and error texts; the console only
//! adds a cookie session (`session`), a CSRF token on every form (`forms::Post` refuses a
//! POST without the right one before its handler runs) and strict response headers.
//!
//! Pages: `session` (login, logout), `portal` (opening a portal link; framing),
//! `webhooks` (list, create, edit, status, delete, test,
//! rotate, recover), `deliveries` (a webhook's page and its deliveries, one delivery,
//! retry), `log` (every delivery of the caller's webhooks, searchable), `health` (a
//! webhook's last 24 hours as a chart), `admin` (publish an event).

mod admin;
mod deliveries;
mod forms;
mod health;
mod log;
mod portal;
mod request_headers;
mod session;
mod topics;
mod views;
mod webhooks;

use std::sync::Arc;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::app::{App, AppError};
use crate::rpc::error::{from_app, Operation};
use crate::rpc::BodyLimits;

/// The console's shared state: the application, the request body limits of the API and
/// who may frame it.
#[derive(Clone)]
struct Console {
    app: App,
    body: BodyLimits,
    framing: Arc<portal::Framing>,
}

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

pub fn router(app: App, body: BodyLimits) -> Router {
    let framing = Arc::new(portal::Framing::new(&app.settings.portal.frame_ancestors));
    let console = Console { app, body, framing };
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(webhooks::list))
        .route("/console/login", get(session::login_page).post(session::login))
        .route("/console/logout", post(session::logout))
        .route("/console/portal", get(portal::landing))
        .route("/console/portal/{token}", get(portal::open))
        .route(
            "/console/assets/console.css",
            get(|| asset("text/css; charset=utf-8", CSS)),
        )
        .route(
            "/console/assets/console.js",
            get(|| asset("text/javascript; charset=utf-8", JS)),
        )
        .route("/console/webhooks/new", get(webhooks::new_page).post(webhooks::create))
        .route("/console/webhooks/{id}", get(deliveries::webhook_page))
        .route(
            "/console/webhooks/{id}/edit",
            get(webhooks::edit_page).post(webhooks::update),
        )
        .route("/console/webhooks/{id}/status", post(webhooks::set_status))
        .route(
            "/console/webhooks/{id}/delete",
            get(webhooks::delete_page).post(webhooks::delete),
        )
        .route("/console/webhooks/{id}/test", post(webhooks::test))
        .route("/console/webhooks/{id}/rotate", post(webhooks::rotate))
        .route("/console/webhooks/{id}/recover", post(webhooks::recover))
        .route("/console/deliveries", get(log::page))
        .route("/console/deliveries/{id}", get(deliveries::delivery_page))
        .route("/console/deliveries/{id}/retry", post(deliveries::retry))
        .route("/console/admin", get(admin::page).post(admin::publish))
        .route("/console/topics", get(topics::page))
        .layer(middleware::from_fn_with_state(console.clone(), security_headers))
        .with_state(console)
}

async fn asset(content_type: &'static str, text: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], text).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}

/// Headers on every console answer: the policy, no sniffing, no referrer, no framing
/// (unless origins are allowed to: then the policy's frame-ancestors says which, and
/// X-Frame-Options, which cannot, is left out), and pages (which show secrets) kept out
/// of caches.
async fn security_headers(State(console): State<Console>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, console.framing.csp());
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !console.framing.framed() {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A rendered page with its status.
fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a console page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

/// A page that could not be shown or an action that did not happen: a short page that says
/// why (the API's message for the same error) with a way back.
#[derive(Debug)]
struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "There is nothing at this address.")
    }
}

/// The API's text for an error, so the console and the API say the same thing.
fn app_message(err: AppError) -> String {
    from_app(err, Operation::Other).message
}

/// The HTTP status a page answers with for an application error.
fn app_status(err: &AppError) -> StatusCode {
    match err {
        AppError::AccessDenied | AppError::Throttled(_) | AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::SessionExpired => StatusCode::UNAUTHORIZED,
        AppError::WebhookNotFound
        | AppError::DeliveryNotFound
        | AppError::NoSuchMerchant(_)
        | AppError::NoSuchUser(_) => StatusCode::NOT_FOUND,
        AppError::Exists(_) => StatusCode::CONFLICT,
        AppError::InvalidData(_) | AppError::StatusNotChanged(_) | AppError::SchemaMismatch(_) => {
            StatusCode::BAD_REQUEST
        }
        AppError::NotCreated(_) | AppError::NotRetried(_) | AppError::Busy => StatusCode::CONFLICT,
        AppError::RecoverLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        AppError::Store(_) | AppError::KeyHashing(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<AppError> for PageError {
    fn from(err: AppError) -> Self {
        let status = app_status(&err);
        Self::new(status, app_message(err))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav: Option<views::Nav>,
    status: u16,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::UNAUTHORIZED {
            return Redirect::to("/console/login?expired=1").into_response();
        }
        let page = ErrorPage {
            nav: None,
            status: self.status.as_u16(),
            message: &self.message,
        };
        render(self.status, &page)
    }
}

/// A path id (`/console/webhooks/{id}`): anything but a positive integer is a missing page.
fn parse_id(raw: &str) -> Result<i64, PageError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(PageError::not_found)
}

type PageResult = Result<Response, PageError>;
