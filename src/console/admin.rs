//! The admin's page: publish an event (topic, merchant, JSON message) through `App::publish`,
//! which only an admin may call, exactly as the API's `event.publish`.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

use super::forms::Post;
use super::session::Session;
use super::views::Nav;
use super::{app_message, app_status, render, Console, PageResult};
use crate::app::events::{PublishOptions, MAX_IDEMPOTENCY_KEY_LEN};
use crate::app::AppError;

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    nav: Option<Nav>,
    topics: Vec<String>,
    merchants: Vec<String>,
    topic: String,
    merchant: String,
    message: String,
    idempotency_key: String,
    error: Option<String>,
    /// After a publish: what it made.
    published: Option<String>,
}

impl AdminPage {
    async fn new(console: &Console, session: &Session) -> Result<Self, AppError> {
        let merchants = console.app.merchant_codes(&session.caller).await?;
        Ok(Self {
            nav: Some(session.nav()),
            topics: console.app.topic_list(),
            merchant: merchants.first().cloned().unwrap_or_default(),
            merchants,
            topic: String::new(),
            message: "{\n  \"id\": 1\n}".to_string(),
            idempotency_key: String::new(),
            error: None,
            published: None,
        })
    }
}

/// `GET /console/admin` (admins only).
pub async fn page(State(console): State<Console>, session: Session) -> PageResult {
    let page = AdminPage::new(&console, &session).await?;
    Ok(render(StatusCode::OK, &page))
}

/// `POST /console/admin`: `event.publish`; the page again with what it made or why not.
pub async fn publish(State(console): State<Console>, post: Post) -> PageResult {
    let Post { session, fields } = post;
    // The API's rule: only an admin publishes (checked here, as the rpc layer does).
    session.caller.require_admin()?;
    let mut page = AdminPage::new(&console, &session).await?;
    page.topic = fields.text("topic", 200)?;
    page.merchant = fields.text("merchant_code", 100)?;
    page.message = fields.text("message", console.app.settings.max_message_bytes)?;
    page.idempotency_key = fields.text("idempotency_key", MAX_IDEMPOTENCY_KEY_LEN)?;
    let result = match serde_json::from_str::<Value>(&page.message) {
        Err(e) => Err(AppError::InvalidData(format!("message is not JSON: {e}"))),
        Ok(message) => {
            let options = PublishOptions {
                merchant_code: Some(page.merchant.clone()).filter(|m| !m.is_empty()),
                idempotency_key: Some(page.idempotency_key.clone()).filter(|k| !k.is_empty()),
                ..Default::default()
            };
            console.app.publish(&page.topic, &message, &options).await
        }
    };
    let status = match result {
        Ok(done) => {
            let again = if done.replayed {
                " (a repeat of an earlier publish: nothing new was made)"
            } else {
                ""
            };
            page.published = Some(format!(
                "Event {} published: {} payload(s){again}.",
                done.event_id, done.payloads
            ));
            StatusCode::OK
        }
        Err(e) => {
            let status = app_status(&e);
            page.error = Some(app_message(e));
            status
        }
    };
    Ok(render(status, &page))
}
