//! `/console/topics`: the event catalog (CONTRACT §7.4, §7.7): each topic with its
//! description, schema and example, for merchants writing receivers and for admins. The
//! same entries `topic.describe` gives; templates escape every value.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;

use super::session::Session;
use super::views::Nav;
use super::{render, Console, PageResult};

struct TopicView {
    topic: String,
    description: String,
    /// Pretty-printed JSON, or None.
    schema: Option<String>,
    example: Option<String>,
}

#[derive(Template)]
#[template(path = "topics.html")]
struct TopicsPage {
    nav: Option<Nav>,
    topics: Vec<TopicView>,
}

/// `GET /console/topics`.
pub async fn page(State(console): State<Console>, session: Session) -> PageResult {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let topics = console
        .app
        .topic_describe(None)
        .await?
        .into_iter()
        .map(|e| TopicView {
            schema: e.schema.as_ref().map(pretty),
            example: e.example.as_ref().map(pretty),
            topic: e.topic,
            description: e.description,
        })
        .collect();
    let page = TopicsPage {
        nav: Some(session.nav()),
        topics,
    };
    Ok(render(StatusCode::OK, &page))
}
