//! A webhook's own page (its settings, actions, verification snippet, and its deliveries
//! with a status filter and paging), one delivery's page (body, every attempt, Retry), and
//! the retry action.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::forms::Post;
use super::health::HealthView;
use super::request_headers;
use super::session::Session;
use super::views::{hook_name, notice, pretty_body, statuses, AttemptRow, DeliveryRow, HookView, Nav};
use super::{parse_id, render, Console, PageResult};
use crate::domain::{DeliveryFilter, DeliveryId, DeliverySearch, DeliveryStatus, WebhookId};

/// Deliveries per page.
const PAGE: i64 = 20;

#[derive(Template)]
#[template(path = "webhook.html")]
struct WebhookPage {
    nav: Option<Nav>,
    csrf: String,
    hook: HookView,
    health: HealthView,
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
    // The newest payload whatever the filter (its outcome is the "last outcome").
    let newest = DeliverySearch {
        webhook_id: Some(id.0),
        limit: 1,
        ..Default::default()
    };
    let last = console.app.delivery_search(caller, &newest).await?;
    let health = console.app.webhook_health(caller, id).await?;
    let name = hook_name(&hook.description, id.0);
    let page = WebhookPage {
        nav: Some(session.nav()),
        csrf: session.csrf(),
        hook: HookView::new(&hook, last.first()),
        health: HealthView::new(&health),
        notice: notice(q.msg.as_deref(), q.n),
        rows: found.iter().map(|d| DeliveryRow::new(d, &name)).collect(),
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
    /// Whether it can be sent again (failed or delivered; CONTRACT §7.7).
    resendable: bool,
    body: String,
    attempts: Vec<AttemptRow>,
    /// Each attempt's request headers, in the order of `attempts`.
    headers: Vec<request_headers::Shown>,
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
    let webhook = detail.record.webhook_id;
    // A deleted webhook's payloads stay in the log (canceled); its name is gone with it.
    let hook = match console.app.webhook_get(&session.caller, webhook).await {
        Ok(hook) => Some(hook),
        Err(crate::app::AppError::WebhookNotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let name = hook
        .as_ref()
        .map(|h| hook_name(&h.description, webhook.0))
        .unwrap_or_else(|| format!("deleted webhook {}", webhook.0));
    let extra = hook.as_ref().map(|h| h.extra_headers.as_str()).unwrap_or_default();
    let page = DeliveryPage {
        nav: Some(session.nav()),
        notice: notice(q.msg.as_deref(), None),
        row: DeliveryRow::new(&detail.record, &name),
        webhook_id: webhook.0,
        resendable: matches!(detail.record.status, DeliveryStatus::Failed | DeliveryStatus::Success),
        headers: detail
            .attempts
            .iter()
            .map(|a| request_headers::shown(id.0, a, extra))
            .collect(),
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
