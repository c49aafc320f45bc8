//! `/console/deliveries`: every delivery of the caller's webhooks, newest first, paged by
//! keyset (`before`, a delivery id: the page goes on after it), with filters (status, topic,
//! webhook, a time range) and a search by `event_id` (CONTRACT §7.7). An admin's view adds a
//! merchant filter.
//!
//! The one idea to know: the page is `delivery.list` (the same `DeliverySearch`, the same
//! scope), so a merchant sees exactly what the API would give it and nothing of another
//! merchant's; every filter is parsed before anything is read, and a bad one answers 400
//! with the reason.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::session::Session;
use super::views::{hook_name, statuses, DeliveryRow, Nav};
use super::{render, Console, PageError, PageResult};
use crate::app::AppError;
use crate::domain::{DeliverySearch, DeliveryStatus, WebhookId};
use crate::time::{parse_timestamp, Millis};

/// Deliveries per page.
const PAGE: i64 = 50;
/// The longest topic or merchant code a filter may name.
const MAX_TEXT: usize = 200;

#[derive(Deserialize)]
pub struct LogQuery {
    status: Option<String>,
    topic: Option<String>,
    webhook: Option<String>,
    event_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    merchant: Option<String>,
    before: Option<String>,
}

#[derive(Template)]
#[template(path = "deliveries.html")]
struct LogPage {
    nav: Option<Nav>,
    admin: bool,
    rows: Vec<DeliveryRow>,
    statuses: Vec<String>,
    merchants: Vec<String>,
    /// The filters as given (kept in the form).
    status: String,
    topic: String,
    webhook: String,
    event_id: String,
    since: String,
    until: String,
    merchant: String,
    filtered: bool,
    paged: bool,
    next_href: Option<String>,
    first_href: String,
}

fn bad(message: &str) -> PageError {
    PageError::new(StatusCode::BAD_REQUEST, message)
}

/// A given, non-empty filter value.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn id_filter(v: &Option<String>, what: &str) -> Result<Option<i64>, PageError> {
    given(v)
        .map(|s| {
            s.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(&format!("The {what} must be a positive whole number.")))
        })
        .transpose()
}

/// A time from the form's `datetime-local` input (taken as UTC) or an ISO-8601 time.
fn time_filter(v: &Option<String>, what: &str) -> Result<Option<Millis>, PageError> {
    given(v)
        .map(|s| {
            let full = match s.len() {
                16 => format!("{s}:00+00:00"),
                19 => format!("{s}+00:00"),
                _ => s.to_string(),
            };
            parse_timestamp(&full)
                .ok_or_else(|| bad(&format!("The {what} time must look like 2026-12-01T12:30 (UTC).")))
        })
        .transpose()
}

fn text_filter<'a>(v: &'a Option<String>, what: &str) -> Result<Option<&'a str>, PageError> {
    match given(v) {
        Some(s) if s.chars().count() > MAX_TEXT || s.chars().any(char::is_control) => {
            Err(bad(&format!("The {what} filter is too long or not one line.")))
        }
        other => Ok(other),
    }
}

/// `GET /console/deliveries`.
pub async fn page(State(console): State<Console>, session: Session, Query(q): Query<LogQuery>) -> PageResult {
    let app = &console.app;
    let caller = &session.caller;
    let status = match given(&q.status) {
        None => None,
        Some(s) => Some(
            DeliveryStatus::parse(s)
                .ok_or_else(|| bad("The status must be one of pending, retrying, success, failed, canceled."))?,
        ),
    };
    let filter = DeliverySearch {
        status,
        topic: text_filter(&q.topic, "topic")?.map(str::to_string),
        event_id: id_filter(&q.event_id, "event id")?,
        webhook_id: id_filter(&q.webhook, "webhook id")?,
        since: time_filter(&q.since, "from")?,
        until: time_filter(&q.until, "to")?,
        before: id_filter(&q.before, "page start (before)")?,
        limit: PAGE + 1,
    };
    let merchant = text_filter(&q.merchant, "merchant")?;
    let merchants = if caller.is_admin() {
        app.merchant_codes(caller).await?
    } else {
        Vec::new()
    };
    let mut found = app.delivery_log(caller, merchant, &filter).await?;
    let next_before = if found.len() as i64 > PAGE {
        found.truncate(PAGE as usize);
        found.last().map(|d| d.id.0)
    } else {
        None
    };
    // Each webhook of the page once (at most PAGE reads, each in the caller's scope).
    let mut names: HashMap<i64, String> = HashMap::new();
    for d in &found {
        let id = d.webhook_id.0;
        if names.contains_key(&id) {
            continue;
        }
        let name = match app.webhook_get(caller, WebhookId(id)).await {
            Ok(h) => hook_name(&h.description, id),
            Err(AppError::WebhookNotFound) => format!("deleted webhook {id}"),
            Err(e) => return Err(e.into()),
        };
        names.insert(id, name);
    }
    let keep = |v: &Option<String>| given(v).unwrap_or_default().to_string();
    let base = query_of(&q, None);
    let page = LogPage {
        nav: Some(session.nav()),
        admin: caller.is_admin(),
        rows: found
            .iter()
            .map(|d| DeliveryRow::new(d, &names[&d.webhook_id.0]))
            .collect(),
        statuses: statuses(),
        merchants,
        status: keep(&q.status),
        topic: keep(&q.topic),
        webhook: keep(&q.webhook),
        event_id: keep(&q.event_id),
        since: keep(&q.since),
        until: keep(&q.until),
        merchant: keep(&q.merchant),
        filtered: [
            &q.status,
            &q.topic,
            &q.webhook,
            &q.event_id,
            &q.since,
            &q.until,
            &q.merchant,
        ]
        .iter()
        .any(|v| given(v).is_some()),
        paged: filter.before.is_some(),
        next_href: next_before.map(|b| query_of(&q, Some(b))),
        first_href: base,
    };
    Ok(render(StatusCode::OK, &page))
}

/// The page's address with its filters and, when given, a page start.
fn query_of(q: &LogQuery, before: Option<i64>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("status", &q.status),
        ("topic", &q.topic),
        ("webhook", &q.webhook),
        ("event_id", &q.event_id),
        ("since", &q.since),
        ("until", &q.until),
        ("merchant", &q.merchant),
    ] {
        if let Some(v) = given(v) {
            query.append_pair(k, v);
        }
    }
    if let Some(b) = before {
        query.append_pair("before", &b.to_string());
    }
    let query = query.finish();
    if query.is_empty() {
        "/console/deliveries".to_string()
    } else {
        format!("/console/deliveries?{query}")
    }
}
