//! A webhook's own page (its settings, actions, verification snippet, and its deliveries
//! with a status filter and paging), one delivery's page (body, every attempt, Retry), and
//! the retry action.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::forms::Post;
use super::session::Session;
use super::views::{notice, pretty_body, statuses, AttemptRow, DeliveryRow, HookView, Nav};
use super::{parse_id, render, Console, PageResult};
use crate::domain::{DeliveryFilter, DeliveryId, DeliveryStatus, WebhookId};

/// Deliveries per page.
const PAGE: i64 = 20;

#[derive(Template)]
#[template(path = "webhook.html")]
struct WebhookPage {
    nav: Option<Nav>,
    csrf: String,
    hook: HookView,
    notice: Option<String>,
    rows: Vec<DeliveryRow>,
    statuses: Vec<String>,
    /// The status filter ("" for all).
    status: String,
    /// Whether this is a later page (a link back to the first is shown).
    paged: bool,
    /// The `before` of the next page, when there is one.
    next_before: Option<i64>,
}

#[derive(Deserialize)]
pub struct WebhookQuery {
    status: Option<String>,
    before: Option<i64>,
    msg: Option<String>,
    n: Option<u64>,
}

/// `GET /console/webhooks/{id}`.
pub async fn webhook_page(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<WebhookQuery>,
) -> PageResult {
    let id = WebhookId(parse_id(&id)?);
    let caller = &session.caller;
    let hook = console.app.webhook_get(caller, id).await?;
    let status = q.status.as_deref().and_then(DeliveryStatus::parse);
    let filter = DeliveryFilter {
        status,
        before: q.before.filter(|b| *b > 0),
        limit: PAGE + 1,
    };
    let mut found = console.app.deliveries(caller, id, &filter).await?;
    let next_before = if found.len() as i64 > PAGE {
        found.truncate(PAGE as usize);
        found.last().map(|d| d.id.0)
    } else {
        None
    };
    let last = if filter.before.is_none() && status.is_none() {
        found.first()
    } else {
        None
    };
    let page = WebhookPage {
        nav: Some(session.nav()),
        csrf: session.csrf(),
        hook: HookView::new(&hook, last),
        notice: notice(q.msg.as_deref(), q.n),
        rows: found.iter().map(DeliveryRow::new).collect(),
        statuses: statuses(),
        status: status.map(|s| s.as_str().to_string()).unwrap_or_default(),
        paged: filter.before.is_some(),
        next_before,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "delivery.html")]
struct DeliveryPage {
    nav: Option<Nav>,
    notice: Option<String>,
    row: DeliveryRow,
    webhook_id: i64,
    failed: bool,
    body: String,
    attempts: Vec<AttemptRow>,
}

#[derive(Deserialize)]
pub struct DeliveryQuery {
    msg: Option<String>,
}

/// `GET /console/deliveries/{id}`.
pub async fn delivery_page(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<DeliveryQuery>,
) -> PageResult {
    let id = DeliveryId(parse_id(&id)?);
    let detail = console.app.delivery_info(&session.caller, id).await?;
    let page = DeliveryPage {
        nav: Some(session.nav()),
        notice: notice(q.msg.as_deref(), None),
        row: DeliveryRow::new(&detail.record),
        webhook_id: detail.record.webhook_id.0,
        failed: detail.record.status == DeliveryStatus::Failed,
        body: pretty_body(&detail.body),
        attempts: detail
            .attempts
            .iter()
            .enumerate()
            .map(|(i, a)| AttemptRow::new(i + 1, a))
            .collect(),
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /console/deliveries/{id}/retry`: `delivery.retry`, then the delivery again.
pub async fn retry(State(console): State<Console>, Path(id): Path<String>, post: Post) -> PageResult {
    let id = parse_id(&id)?;
    console.app.delivery_retry(&post.session.caller, DeliveryId(id)).await?;
    Ok(Redirect::to(&format!("/console/deliveries/{id}?msg=retried")).into_response())
}
