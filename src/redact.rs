//! Keeping the database credentials out of everything hookd prints: logs (its own lines
//! and its dependencies', sqlx's warnings included), error messages, command output.
//!
//! The one idea: a URL is shown only through `database_url` (userinfo password and
//! secret-looking query parameters as `***`; a URL that does not parse is not shown at all),
//! and as a backstop the credentials' literal values are registered once (`register`) and
//! masked by `mask` in every line the log writer writes and in the final error message,
//! whatever error text happened to quote them.

use std::borrow::Cow;
use std::sync::RwLock;

/// What a credential is replaced with.
pub const MASK: &str = "***";

/// What a database URL that does not parse is shown as.
pub const UNPARSEABLE: &str = "<unparseable database URL>";

/// Shorter values are not masked in free text (a one- or two-letter password would turn
/// every such letter of a log line into `***`); `database_url` masks them all the same.
const MIN_MASKED_LEN: usize = 4;

/// The credential values `mask` replaces, registered from the configured database URL.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Whether a query parameter of that name carries a secret (`password`, `sslpassword`,
/// `passwd`, `pwd`, `secret`, `token`, `api_key`, `sslkey`…).
fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "pwd", "secret", "token", "key", "auth", "credential"]
        .iter()
        .any(|word| name.contains(word))
}

/// Whether a query parameter of a listed URL (a webhook's) looks like it carries a
/// credential: the names `secret_name` catches, and signatures (`sig`, `signature`…); not
/// a broker URL's `routing_key` (CONTRACT §7.5), which only names a route.
fn credential_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let credential = secret_name(&lower) || lower == "sig" || lower.ends_with("_sig") || lower.contains("signature");
    credential && lower != "routing_key"
}

/// A URL fit for a listing (`hookd webhook list`): without userinfo (user and password),
/// credential-looking query values as `***`; a URL that does not parse is not shown.
/// The API keeps returning URLs exactly as given; this is only for what the CLI prints.
pub fn listed_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<unparseable URL>".to_string();
    };
    if parsed.has_authority() && (!parsed.username().is_empty() || parsed.password().is_some()) {
        let cleared = parsed.set_password(None).is_ok() && parsed.set_username("").is_ok();
        if !cleared {
            return "<unparseable URL>".to_string();
        }
    }
    mask_query_values(&mut parsed, credential_name);
    parsed.to_string()
}

/// A URL fit for a page (the console's webhook views): the userinfo (a broker's user and
/// password) cut out, the rest exactly as written, so the page escapes the text the merchant
/// typed and not a re-encoded form of it. The edit form keeps the whole URL.
pub fn shown_url(url: &str) -> Cow<'_, str> {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return Cow::Borrowed(url);
    };
    let authority_end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
    match url[start..authority_end].rfind('@') {
        Some(at) => Cow::Owned(format!("{}{}", &url[..start], &url[start + at + 1..])),
        None => Cow::Borrowed(url),
    }
}

/// Replaces with `***` the value of every query parameter whose name `masked` picks.
fn mask_query_values(parsed: &mut url::Url, masked: fn(&str) -> bool) {
    if !parsed.query_pairs().any(|(name, _)| masked(&name)) {
        return;
    }
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(name, value)| {
            let value = if masked(&name) { MASK.into() } else { value.into_owned() };
            (name.into_owned(), value)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
}

/// A database URL fit to print: the userinfo password and the values of secret-looking
/// query parameters as `***`; a URL that does not parse becomes `<unparseable database URL>`.
pub fn database_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return UNPARSEABLE.to_string();
    };
    if parsed.password().is_some() && parsed.set_password(Some(MASK)).is_err() {
        return UNPARSEABLE.to_string();
    }
    mask_query_values(&mut parsed, secret_name);
    parsed.to_string()
}

/// The literal credential values in a database URL, as written and percent-decoded: the
/// userinfo password, secret-looking query parameters, and the whole URL when it does not
/// parse. Read off the text itself, so a URL the `url` crate refuses gives them too.
pub fn secrets_of(url: &str) -> Vec<String> {
    secrets_named(url, secret_name)
}

/// The credential values of a listed URL (a webhook's), as `listed_url` hides them, for
/// masking them in text that may quote the URL (a delivery's last error).
pub fn listed_url_secrets(url: &str) -> Vec<String> {
    secrets_named(url, credential_name)
}

/// `text` with each of `secrets` replaced by `***`.
pub fn mask_secrets<'a>(text: &'a str, secrets: &[String]) -> Cow<'a, str> {
    mask_with(text, secrets)
}

fn secrets_named(url: &str, secret_name: fn(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    if url::Url::parse(url).is_err() {
        found.push(url.to_string());
    }
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    if let Some((userinfo, _)) = before_query.rsplit_once('@') {
        if let Some((_, password)) = userinfo.split_once(':') {
            found.push(password.to_string());
        }
    }
    for pair in query.split(['&', '#']) {
        if let Some((name, value)) = pair.split_once('=') {
            if secret_name(name) {
                found.push(value.to_string());
            }
        }
    }
    let decoded: Vec<String> = found
        .iter()
        .map(|s| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
        .chain(
            found
                .iter()
                .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()),
        )
        .collect();
    found.extend(decoded);
    found.retain(|s| s.len() >= MIN_MASKED_LEN);
    // Longest first, so a value containing another is masked whole.
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    found
}

/// Registers the credentials of `url` for `mask` (and so for every log line from now on).
pub fn register(url: &str) {
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for secret in secrets_of(url) {
        if !secrets.contains(&secret) {
            secrets.push(secret);
        }
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered credential replaced by `***`.
pub fn mask(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    mask_with(text, &secrets)
}

fn mask_with<'a>(text: &'a str, secrets: &[String]) -> Cow<'a, str> {
    let mut out = Cow::Borrowed(text);
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    out
}

/// A writer that masks registered credentials in what passes through it (the log writer).
/// A log line is written in one call, so a credential is never split across two.
pub struct Masking<W>(pub W);

impl<W: std::io::Write> std::io::Write for Masking<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        match mask(&text) {
            Cow::Borrowed(_) => self.0.write_all(buf)?,
            Cow::Owned(masked) => self.0.write_all(masked.as_bytes())?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_userinfo_password_is_masked() {
        assert_eq!(
            database_url("postgres://app:hunter2secret@db:5432/hookd"),
            "postgres://app:***@db:5432/hookd"
        );
        assert_eq!(database_url("postgres://app@db/hookd"), "postgres://app@db/hookd");
    }

    #[test]
    fn secret_looking_query_parameters_are_masked_and_the_others_kept() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/x?password=hunter2secret&sslmode=require"),
            "postgres://postgres@127.0.0.1:5432/x?password=***&sslmode=require"
        );
        for name in [
            "PASSWORD",
            "passwd",
            "pwd",
            "sslpassword",
            "secret",
            "auth_token",
            "api_key",
        ] {
            let shown = database_url(&format!("postgres://h/x?{name}=hunter2secret"));
            assert!(!shown.contains("hunter2secret"), "{name}: {shown}");
        }
    }

    #[test]
    fn a_shown_url_loses_only_its_userinfo() {
        assert_eq!(
            shown_url("amqp://guest:hunter2secret@broker:5672/vh?exchange=X&routing_key=a.b"),
            "amqp://broker:5672/vh?exchange=X&routing_key=a.b"
        );
        assert_eq!(shown_url("nats://u:p@h:4222/orders"), "nats://h:4222/orders");
        // An @ after the authority (in the path or query) is text, not userinfo.
        assert_eq!(shown_url("https://h/a@b?x=<y>@z"), "https://h/a@b?x=<y>@z");
        assert_eq!(shown_url("https://a:b@c@h/x"), "https://h/x");
        assert_eq!(shown_url("not a url"), "not a url");
    }

    #[test]
    fn an_unparseable_url_is_not_shown_at_all() {
        assert_eq!(database_url("postgres://u:hunter2secret@host:notaport/x"), UNPARSEABLE);
        assert_eq!(database_url("hunter2secret"), UNPARSEABLE);
    }

    #[test]
    fn listed_urls_lose_their_userinfo_and_credential_query_values() {
        assert_eq!(
            listed_url("https://bob:hunter2secret@example.com/in?token=abc&x=1&Signature=s&sig=t&api_key=k"),
            "https://example.com/in?token=***&x=1&Signature=***&sig=***&api_key=***"
        );
        assert_eq!(
            listed_url("amqp://guest:guest@rabbit:5672/%2f?exchange=X&routing_key=Y"),
            "amqp://rabbit:5672/%2f?exchange=X&routing_key=Y"
        );
        for name in ["access_token", "auth", "password", "secret", "key", "X-Amz-Signature"] {
            let shown = listed_url(&format!("https://h/p?{name}=hunter2secret"));
            assert!(!shown.contains("hunter2secret"), "{name}: {shown}");
        }
        assert_eq!(
            listed_url("https://example.com/in?design=1"),
            "https://example.com/in?design=1"
        );
        assert_eq!(listed_url("not a url"), "<unparseable URL>");
    }

    #[test]
    fn sqlite_urls_show_as_given() {
        assert_eq!(database_url("sqlite://hookd.db"), "sqlite://hookd.db");
    }

    #[test]
    fn every_written_form_of_a_credential_is_masked_in_free_text() {
        let secrets = secrets_of("postgres://u:p%40ss%2Fword@h/x?sslpassword=other+secret&sslmode=require");
        let text = "failed: p%40ss%2Fword, p@ss/word, other+secret, other secret, require";
        assert_eq!(mask_with(text, &secrets), "failed: ***, ***, ***, ***, require");
        let unparseable = "postgres://u:hunter2secret@host:notaport/x";
        let secrets = secrets_of(unparseable);
        assert_eq!(mask_with(&format!("bad url {unparseable}"), &secrets), "bad url ***");
        assert_eq!(
            mask_with("port of u:hunter2secret@host", &secrets),
            "port of u:***@host"
        );
        assert!(
            secrets_of("postgres://u:ab@h/x").is_empty(),
            "too short to mask in free text"
        );
    }
}
