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

/// The topics of one resource (`order` for `order:created`), in catalog order.
struct ResourceView {
    resource: String,
    topics: Vec<TopicView>,
}

#[derive(Template)]
#[template(path = "topics.html")]
struct TopicsPage {
    nav: Option<Nav>,
    groups: Vec<ResourceView>,
}

/// `GET /console/topics`.
pub async fn page(State(console): State<Console>, session: Session) -> PageResult {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let topics: Vec<TopicView> = console
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
    let mut groups: Vec<ResourceView> = Vec::new();
    for t in topics {
        let resource = t.topic.split(':').next().unwrap_or_default().to_string();
        match groups.iter_mut().find(|g| g.resource == resource) {
            Some(g) => g.topics.push(t),
            None => groups.push(ResourceView {
                resource,
                topics: vec![t],
            }),
        }
    }
    let page = TopicsPage {
        nav: Some(session.nav()),
        groups,
    };
    Ok(render(StatusCode::OK, &page))
}
