//! A minimal browser for the console's HTTP tests: it keeps the cookies the console sets,
//! follows no redirect by itself (tests look at them), and posts forms with the page's
//! CSRF token unless told otherwise.

#![allow(dead_code)]

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

use crate::helpers::*;

/// One answer: status, headers, body text.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// Every Set-Cookie line.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// The value of the first `name="csrf" value="..."` on the page.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a CSRF field on the page") + marker.len();
        let len = self.body[start..].find('"').unwrap();
        self.body[start..start + len].to_string()
    }
}

pub struct ConsoleClient {
    base: String,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
    /// The session's CSRF token, once logged in.
    pub csrf: String,
}

impl ConsoleClient {
    pub fn new(app: &TestApp) -> Self {
        Self {
            base: format!("http://{}", app.addr),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
            csrf: String::new(),
        }
    }

    /// Logged in as `name`: panics unless the console accepts the key.
    pub async fn logged_in(app: &TestApp, name: &str, key: &str) -> Self {
        let mut client = Self::new(app);
        let page = client.login(name, key).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "login refused: {}", page.body);
        let list = client.get("/console/").await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.body);
        client.csrf = list.csrf();
        client
    }

    /// A new merchant user of `code`, logged in.
    pub async fn merchant(app: &TestApp, code: &str) -> Self {
        let (name, key) = app.create_merchant_user(code).await;
        Self::logged_in(app, &name, &key).await
    }

    /// The login form, filled and posted.
    pub async fn login(&mut self, name: &str, key: &str) -> Page {
        let form = self.get("/console/login").await;
        let token = form.csrf();
        self.post_raw(
            "/console/login",
            &[("csrf", &token), ("username", name), ("api_key", key)],
        )
        .await
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// Posts `fields` with the session's CSRF token added.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf.clone();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Posts exactly `fields`.
    pub async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            body.append_pair(k, v);
        }
        self.post_body(path, body.finish()).await
    }

    /// Posts `body` as a form.
    pub async fn post_body(&mut self, path: &str, body: String) -> Page {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let request = if cookie.is_empty() {
            request
        } else {
            request.header(COOKIE, cookie.join("; "))
        };
        let response = request.send().await.expect("the console answers");
        let page = Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        };
        for line in page.set_cookies() {
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        page
    }
}

/// The id in a `/console/webhooks/{id}?...` redirect.
pub fn webhook_id_from(location: &str) -> i64 {
    let rest = location.strip_prefix("/console/webhooks/").expect("a webhook page");
    rest.split(['?', '/']).next().unwrap().parse().unwrap()
}

/// The ids of the webhooks a list page shows, in page order.
pub fn listed_webhook_ids(body: &str) -> Vec<i64> {
    let marker = "<a class=\"name\" href=\"/console/webhooks/";
    body.match_indices(marker)
        .map(|(at, _)| {
            let rest = &body[at + marker.len()..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

/// The address of the link whose text is `text` (as the page writes it), unescaped.
pub fn link_to(body: &str, text: &str) -> Option<String> {
    let end = body.find(&format!("\">{text}</a>"))?;
    let start = body[..end].rfind("href=\"")? + "href=\"".len();
    Some(body[start..end].replace("&#38;", "&").replace("&amp;", "&"))
}

/// The `<li class="hook">` block of webhook `id` on a list page.
pub fn listed_hook(body: &str, id: i64) -> &str {
    let start = body
        .find(&format!("href=\"/console/webhooks/{id}\""))
        .unwrap_or_else(|| panic!("webhook {id} not on the page: {body}"));
    let end = body[start..].find("</li>").map_or(body.len(), |e| start + e);
    &body[start..end]
}
