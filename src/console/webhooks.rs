//! The webhook pages: the list (an admin's: every merchant's, filterable), the create and
//! edit form, and the actions on one webhook (status, delete after a confirmation page,
//! test ping, secret rotation, recovery of failed payloads). Each action is one `App` call;
//! its refusal is shown with the API's message and changes nothing.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::forms::{check_len, Fields, Post};
use super::session::Session;
use super::views::{notice, HookView, Nav};
use super::{app_message, app_status, parse_id, render, Console, PageError, PageResult};
use crate::app::AppError;
use crate::domain::{StatusTarget, WebhookId};
use crate::time::now_millis;

/// Field caps of the webhook form (the domain types check the content).
const MAX_URL: usize = 2048;
const MAX_HEADERS: usize = 8192;
const MAX_SECRET: usize = 512;
const MAX_TOPIC: usize = 200;
const MAX_TOPICS: usize = 500;
const MAX_RATE_TEXT: usize = 32;
const MAX_FILTER: usize = crate::domain::steering::MAX_FILTER_BYTES;

/// Webhooks per page of the list (a merchant may have a thousand; an admin sees all).
const PAGE: usize = 50;

#[derive(Template)]
#[template(path = "webhooks.html")]
struct ListPage {
    nav: Option<Nav>,
    hooks: Vec<HookView>,
    merchants: Vec<String>,
    merchant: String,
    notice: Option<String>,
    admin: bool,
    /// Links to the first page (on a later one) and to the next (when there are more), with
    /// the merchant filter kept.
    first_href: Option<String>,
    next_href: Option<String>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    merchant: Option<String>,
    /// Where the page starts: after this webhook id (keyset paging). Read as text so a bad
    /// value gets the console's error page rather than the extractor's plain refusal.
    after: Option<String>,
    msg: Option<String>,
}

/// The list's address with the merchant filter (when set) and, when given, a page start.
fn list_href(merchant: &str, after: Option<WebhookId>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if !merchant.is_empty() {
        query.append_pair("merchant", merchant);
    }
    if let Some(after) = after {
        query.append_pair("after", &after.0.to_string());
    }
    let query = query.finish();
    if query.is_empty() {
        "/console/".to_string()
    } else {
        format!("/console/?{query}")
    }
}

/// `GET /console/`: a page of the caller's webhooks with their latest outcome (`?after=ID`
/// for the next; an admin's `?merchant=CODE` keeps to one merchant).
pub async fn list(State(console): State<Console>, session: Session, Query(q): Query<ListQuery>) -> PageResult {
    let app = &console.app;
    let caller = &session.caller;
    let merchant = q.merchant.unwrap_or_default();
    let after = match q.after.as_deref() {
        None | Some("") => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(id) if id >= 0 => Some(WebhookId(id)),
            _ => {
                return Err(PageError::new(
                    StatusCode::BAD_REQUEST,
                    "The page to show (after) must be a webhook id.",
                ))
            }
        },
    };
    let merchants = if caller.is_admin() {
        app.merchant_codes(caller).await?
    } else {
        Vec::new()
    };
    let filter = Some(merchant.as_str()).filter(|m| !m.is_empty());
    let page = app.webhook_page(caller, filter, after, PAGE).await?;
    let page = ListPage {
        nav: Some(session.nav()),
        hooks: page
            .hooks
            .iter()
            .map(|(hook, last)| HookView::new(hook, last.as_ref()))
            .collect(),
        first_href: after.map(|_| list_href(&merchant, None)),
        next_href: page.next_after.map(|next| list_href(&merchant, Some(next))),
        merchants,
        merchant,
        notice: notice(q.msg.as_deref(), None),
        admin: caller.is_admin(),
    };
    Ok(render(StatusCode::OK, &page))
}

/// A topic of the catalog, ticked or not.
struct TopicChoice {
    name: String,
    checked: bool,
}

/// The catalog's topics of one resource (`order` for `order:created`), in catalog order:
/// the pickers group by resource so 50 topics read as a few short lists.
struct TopicGroup {
    resource: String,
    topics: Vec<TopicChoice>,
}

fn grouped(catalog: Vec<TopicChoice>) -> Vec<TopicGroup> {
    let mut groups: Vec<TopicGroup> = Vec::new();
    for t in catalog {
        let resource = t.name.split(':').next().unwrap_or_default().to_string();
        match groups.iter_mut().find(|g| g.resource == resource) {
            Some(g) => g.topics.push(t),
            None => groups.push(TopicGroup {
                resource,
                topics: vec![t],
            }),
        }
    }
    groups
}

#[derive(Template)]
#[template(path = "hook_form.html")]
struct FormPage {
    nav: Option<Nav>,
    /// None: a new webhook.
    hook_id: Option<i64>,
    /// Shown as the webhook's name (CONTRACT §7.7).
    description: String,
    url: String,
    catalog: Vec<TopicGroup>,
    /// Entries that are not catalog topics (patterns such as `order:*`), comma-separated.
    typed_topics: String,
    extra_headers: String,
    ordered: bool,
    max_rate: String,
    filter: String,
    /// `signature_scheme`: true for "hmac+ed25519".
    ed25519: bool,
    /// For an admin creating a webhook: the merchants to choose from.
    merchants: Vec<String>,
    merchant: String,
    error: Option<String>,
}

impl FormPage {
    fn new(console: &Console, session: &Session, hook_id: Option<i64>, topics: &[String]) -> Self {
        let catalog: Vec<TopicChoice> = console
            .app
            .topic_list()
            .into_iter()
            .map(|name| TopicChoice {
                checked: topics.contains(&name),
                name,
            })
            .collect();
        let typed: Vec<&str> = topics
            .iter()
            .filter(|t| !catalog.iter().any(|c| &c.name == *t))
            .map(String::as_str)
            .collect();
        Self {
            nav: Some(session.nav()),
            hook_id,
            description: String::new(),
            url: String::new(),
            catalog: grouped(catalog),
            typed_topics: typed.join(","),
            extra_headers: String::new(),
            ordered: false,
            max_rate: String::new(),
            filter: String::new(),
            ed25519: false,
            merchants: Vec::new(),
            merchant: String::new(),
            error: None,
        }
    }
}

/// `GET /console/webhooks/new`.
pub async fn new_page(State(console): State<Console>, session: Session) -> PageResult {
    session.may_change()?;
    let mut page = FormPage::new(&console, &session, None, &[]);
    if session.caller.is_admin() {
        page.merchants = console.app.merchant_codes(&session.caller).await?;
    }
    Ok(render(StatusCode::OK, &page))
}

/// The topics of a posted form: every `topics` value (ticked boxes, typed text), split on
/// commas, trimmed, without repeats.
fn posted_topics(fields: &Fields) -> Result<Vec<String>, PageError> {
    let mut topics: Vec<String> = Vec::new();
    for entry in fields.all("topics").flat_map(|v| v.split(',')) {
        let entry = entry.trim();
        check_len("topics", entry, MAX_TOPIC)?;
        if !entry.is_empty() && !topics.iter().any(|t| t == entry) {
            topics.push(entry.to_string());
        }
    }
    if topics.len() > MAX_TOPICS {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Too many topics: nothing was changed.",
        ));
    }
    Ok(topics)
}

/// The webhook object of a posted form, as the API's `webhook.create`/`update` take it.
fn posted_data(fields: &Fields, topics: &[String], creating: bool) -> Result<Map<String, Value>, PageError> {
    let mut data = Map::new();
    // The domain says what is wrong with a long one (at most 200 characters); this bound
    // only keeps a huge field from being carried along.
    data.insert("description".into(), fields.text("description", 2000)?.trim().into());
    data.insert("url".into(), fields.text("url", MAX_URL)?.trim().into());
    data.insert("topics".into(), json!(topics));
    data.insert(
        "extra_headers".into(),
        fields.text("extra_headers", MAX_HEADERS)?.into(),
    );
    if creating {
        let secret = fields.text("secret_key", MAX_SECRET)?;
        if !secret.is_empty() {
            data.insert("secret_key".into(), secret.into());
        }
    }
    // Steering: the form always says all three, so an emptied field removes the setting.
    data.insert("ordered".into(), (fields.get("ordered") == Some("1")).into());
    let max_rate = fields.text("max_rate", MAX_RATE_TEXT)?;
    let max_rate = max_rate.trim();
    let max_rate = match max_rate.parse::<f64>() {
        _ if max_rate.is_empty() => Value::Null,
        // The domain's own message for a number out of range; a word stays a string, which
        // the domain refuses as the wrong type.
        Ok(n) => serde_json::Number::from_f64(n).map_or(Value::String(max_rate.into()), Value::Number),
        Err(_) => Value::String(max_rate.into()),
    };
    data.insert("max_rate".into(), max_rate);
    let filter = fields.text("filter", MAX_FILTER)?;
    let filter = if filter.trim().is_empty() {
        Value::Null
    } else {
        Value::String(filter)
    };
    data.insert("filter".into(), filter);
    // Absent (an older form) keeps the scheme; anything else is the domain's to refuse.
    if let Some(scheme) = fields.get("signature_scheme") {
        data.insert(
            "signature_scheme".into(),
            scheme.chars().take(64).collect::<String>().into(),
        );
    }
    Ok(data)
}

/// The form again, with what was typed and why it was refused (an admin's create form
/// with its merchants to choose from).
async fn refused(
    console: &Console,
    session: &Session,
    hook_id: Option<i64>,
    fields: &Fields,
    err: AppError,
) -> PageResult {
    let topics = posted_topics(fields)?;
    let mut page = FormPage::new(console, session, hook_id, &topics);
    page.description = kept(fields, "description", 2000);
    page.url = kept(fields, "url", MAX_URL);
    page.extra_headers = kept(fields, "extra_headers", MAX_HEADERS);
    page.merchant = kept(fields, "merchant_code", 100);
    page.ordered = fields.get("ordered") == Some("1");
    page.max_rate = kept(fields, "max_rate", MAX_RATE_TEXT);
    page.filter = kept(fields, "filter", MAX_FILTER);
    page.ed25519 = fields.get("signature_scheme") == Some("hmac+ed25519");
    if hook_id.is_none() && session.caller.is_admin() {
        page.merchants = console.app.merchant_codes(&session.caller).await?;
    }
    let status = app_status(&err);
    page.error = Some(app_message(err));
    Ok(render(status, &page))
}

/// What was typed in `name`, at most `max` characters of it.
fn kept(fields: &Fields, name: &str, max: usize) -> String {
    fields.get(name).unwrap_or_default().chars().take(max).collect()
}

/// `POST /console/webhooks/new`: `webhook.create`, then the new webhook's page.
pub async fn create(State(console): State<Console>, post: Post) -> PageResult {
    let Post { session, fields } = post;
    let topics = posted_topics(&fields)?;
    let mut data = posted_data(&fields, &topics, true)?;
    let merchant = fields.text("merchant_code", 100)?;
    if session.caller.is_admin() && !merchant.is_empty() {
        data.insert("merchant_code".into(), merchant.into());
    }
    match console.app.webhook_create(&session.caller, &Value::Object(data)).await {
        Ok(id) => Ok(Redirect::to(&format!("/console/webhooks/{id}?msg=created")).into_response()),
        Err(e @ (AppError::InvalidData(_) | AppError::NotCreated(_))) => {
            refused(&console, &session, None, &fields, e).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /console/webhooks/{id}/edit`.
pub async fn edit_page(State(console): State<Console>, session: Session, Path(id): Path<String>) -> PageResult {
    session.may_change()?;
    let hook = console
        .app
        .webhook_get(&session.caller, WebhookId(parse_id(&id)?))
        .await?;
    let topics: Vec<String> = hook.topics.split(',').map(str::to_string).collect();
    let mut page = FormPage::new(&console, &session, Some(hook.id.0), &topics);
    page.description = hook.description;
    page.url = hook.url;
    page.extra_headers = hook.extra_headers;
    page.ordered = hook.ordered;
    page.max_rate = hook.max_rate.map(|r| r.to_string()).unwrap_or_default();
    page.filter = hook.filter.unwrap_or_default();
    page.ed25519 = hook.signature_scheme.has_key_pair();
    Ok(render(StatusCode::OK, &page))
}

/// `POST /console/webhooks/{id}/edit`: `webhook.update`.
pub async fn update(State(console): State<Console>, Path(id): Path<String>, post: Post) -> PageResult {
    let Post { session, fields } = post;
    let id = parse_id(&id)?;
    let topics = posted_topics(&fields)?;
    let data = posted_data(&fields, &topics, false)?;
    match console
        .app
        .webhook_update(&session.caller, WebhookId(id), &Value::Object(data))
        .await
    {
        Ok(()) => Ok(Redirect::to(&format!("/console/webhooks/{id}?msg=updated")).into_response()),
        Err(e @ AppError::InvalidData(_)) => refused(&console, &session, Some(id), &fields, e).await,
        Err(e) => Err(e.into()),
    }
}

/// `POST /console/webhooks/{id}/status` with `active` 1 or 0.
pub async fn set_status(State(console): State<Console>, Path(id): Path<String>, post: Post) -> PageResult {
    let id = parse_id(&id)?;
    let active = match post.fields.get("active") {
        Some("1") => true,
        Some("0") => false,
        _ => return Err(PageError::new(StatusCode::BAD_REQUEST, "The status must be 1 or 0.")),
    };
    let target = Some(StatusTarget::Id(WebhookId(id)));
    console
        .app
        .webhook_update_status(&post.session.caller, target, active)
        .await?;
    let msg = if active { "activated" } else { "deactivated" };
    Ok(Redirect::to(&format!("/console/webhooks/{id}?msg={msg}")).into_response())
}

#[derive(Template)]
#[template(path = "delete.html")]
struct DeletePage {
    nav: Option<Nav>,
    hook: HookView,
}

/// `GET /console/webhooks/{id}/delete`: the confirmation step.
pub async fn delete_page(State(console): State<Console>, session: Session, Path(id): Path<String>) -> PageResult {
    session.may_change()?;
    let hook = console
        .app
        .webhook_get(&session.caller, WebhookId(parse_id(&id)?))
        .await?;
    let page = DeletePage {
        nav: Some(session.nav()),
        hook: HookView::new(&hook, None),
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /console/webhooks/{id}/delete` with `confirm=yes` (from the confirmation page).
pub async fn delete(State(console): State<Console>, Path(id): Path<String>, post: Post) -> PageResult {
    let id = parse_id(&id)?;
    if post.fields.get("confirm") != Some("yes") {
        return Ok(Redirect::to(&format!("/console/webhooks/{id}/delete")).into_response());
    }
    console.app.webhook_delete(&post.session.caller, WebhookId(id)).await?;
    Ok(Redirect::to("/console/?msg=deleted").into_response())
}

/// `POST /console/webhooks/{id}/test`: a `test:ping` sent now; its delivery page shows how it went.
pub async fn test(State(console): State<Console>, Path(id): Path<String>, post: Post) -> PageResult {
    let id = parse_id(&id)?;
    let result = console.app.webhook_test(&post.session.caller, WebhookId(id)).await?;
    let to = format!("/console/deliveries/{}?msg=test", result.delivery_id);
    Ok(Redirect::to(&to).into_response())
}

/// `POST /console/webhooks/{id}/rotate` with `overlap` (how long the old secret still signs).
pub async fn rotate(State(console): State<Console>, Path(id): Path<String>, post: Post) -> PageResult {
    let id = parse_id(&id)?;
    let overlap = post.fields.text("overlap", 20)?;
    let options = json!({ "overlap": if overlap.is_empty() { "24h".to_string() } else { overlap } });
    console
        .app
        .webhook_rotate_secret(&post.session.caller, WebhookId(id), Some(&options))
        .await?;
    Ok(Redirect::to(&format!("/console/webhooks/{id}?msg=rotated")).into_response())
}

/// `POST /console/webhooks/{id}/recover` with `hours`: failed payloads of that many hours back, again.
pub async fn recover(State(console): State<Console>, Path(id): Path<String>, post: Post) -> PageResult {
    let id = parse_id(&id)?;
    let hours: i64 = match post.fields.get("hours").and_then(|h| h.parse().ok()) {
        Some(h @ 1..=8760) => h,
        _ => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "Choose how far back to recover.",
            ))
        }
    };
    let since = now_millis() - hours * 3_600_000;
    let recovered = console
        .app
        .webhook_recover(&post.session.caller, WebhookId(id), since)
        .await?;
    let (n, msg) = match recovered.remaining {
        0 => (recovered.requeued, "recovered"),
        _ => (recovered.requeued, "recovered_some"),
    };
    Ok(Redirect::to(&format!("/console/webhooks/{id}?msg={msg}&n={n}")).into_response())
}
