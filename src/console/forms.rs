//! Reading a posted form: the body under the API's size limit and read timeout, decoded as
//! `application/x-www-form-urlencoded`, each field under a length cap; and `Post`, the
//! extractor of every form but login, which refuses a request without a session, from a
//! read-only session (logout aside) or with a wrong CSRF token before any handler runs.

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};

use super::session::Session;
use super::{Console, PageError};
use crate::rpc::{read_body, BodyError};

/// The decoded fields of a form, in order (a name may repeat: checkboxes).
#[derive(Debug, Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The first value of `name` ("" when absent), refused beyond `max` characters.
    pub fn text(&self, name: &str, max: usize) -> Result<String, PageError> {
        let value = self.get(name).unwrap_or_default();
        check_len(name, value, max)?;
        Ok(value.to_string())
    }
}

/// A field longer than `max` characters is refused with a message naming it.
pub fn check_len(name: &str, value: &str, max: usize) -> Result<(), PageError> {
    if value.chars().count() > max {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            format!("The field '{name}' is longer than {max} characters: nothing was changed."),
        ));
    }
    Ok(())
}

/// Reads and decodes a form body.
pub async fn read_form(console: &Console, request: Request) -> Result<Fields, PageError> {
    let (parts, body) = request.into_parts();
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(PageError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The console accepts forms only (application/x-www-form-urlencoded).",
        ));
    }
    let bytes = read_body(body, &parts.headers, console.body)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => PageError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "The form is larger than the {}-byte limit: nothing was changed.",
                    console.body.max_bytes
                ),
            ),
            BodyError::TimedOut | BodyError::Broken(_) => PageError::new(
                StatusCode::BAD_REQUEST,
                "The form did not arrive whole: nothing was changed.",
            ),
        })?;
    Ok(Fields(
        url::form_urlencoded::parse(&bytes)
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect(),
    ))
}

/// A posted form from a logged-in user whose CSRF token matched.
pub struct Post {
    pub session: Session,
    pub fields: Fields,
}

impl FromRequest<Console> for Post {
    type Rejection = axum::response::Response;

    async fn from_request(request: Request, console: &Console) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let session = Session::from_headers(request.headers(), console)
            .await
            .map_err(IntoResponse::into_response)?;
        // A read-only session may post nothing but its logout, and is refused before its
        // form is even read.
        if request.uri().path() != "/console/logout" {
            session.may_change().map_err(IntoResponse::into_response)?;
        }
        let fields = read_form(console, request).await.map_err(IntoResponse::into_response)?;
        let given = fields.get("csrf").unwrap_or_default();
        if !session.csrf_matches(given) {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "This form did not come from your console session (its CSRF token is missing or wrong): \
                 nothing was changed. Reload the page and try again.",
            )
            .into_response());
        }
        Ok(Post { session, fields })
    }
}

/// Equal strings, compared in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
