//! Extra headers a webhook sends with every delivery, given as `Name: value` lines.
//! They are kept exactly as given (that is what `webhook.list` returns) and parsed into
//! pairs that are safe to put on the wire: valid names, no CR/LF in values, and none of
//! the headers hookd itself controls.

/// Limits that keep one webhook from bloating every request.
pub const MAX_EXTRA_HEADERS: usize = 50;
pub const MAX_EXTRA_HEADERS_LEN: usize = 8 * 1024;

/// Headers hookd sets itself (signatures, framing) or that only make sense hop by hop.
const RESERVED: &[&str] = &[
    "x-plugin-hmac-sha256",
    "x-plugin-hmac-sha256-previous",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadersError {
    #[error("extra_headers is longer than {MAX_EXTRA_HEADERS_LEN} bytes")]
    TooLong,
    #[error("extra_headers has more than {MAX_EXTRA_HEADERS} headers")]
    TooMany,
    #[error("extra_headers line {0} is not of the form 'Name: value'")]
    MissingColon(usize),
    #[error("extra_headers line {0}: '{1}' is not a valid header name")]
    BadName(usize, String),
    #[error("extra_headers line {0}: the value of '{1}' contains a control character")]
    BadValue(usize, String),
    #[error("extra_headers line {0}: a lone carriage return is not a line break")]
    LoneCarriageReturn(usize),
    #[error("extra_headers line {0}: '{1}' is set by hookd and cannot be overridden")]
    Reserved(usize, String),
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ExtraHeaders {
    raw: String,
    pairs: Vec<(String, String)>,
}

impl ExtraHeaders {
    pub fn parse(raw: &str) -> Result<Self, HeadersError> {
        if raw.len() > MAX_EXTRA_HEADERS_LEN {
            return Err(HeadersError::TooLong);
        }
        let mut pairs = Vec::new();
        for (i, line) in raw.split('\n').enumerate() {
            let n = i + 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.contains('\r') {
                return Err(HeadersError::LoneCarriageReturn(n));
            }
            if line.trim().is_empty() {
                continue;
            }
            let (name, value) = line.split_once(':').ok_or(HeadersError::MissingColon(n))?;
            if !is_token(name) {
                return Err(HeadersError::BadName(n, name.to_string()));
            }
            if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(HeadersError::Reserved(n, name.to_string()));
            }
            let value = value.trim_matches(|c| c == ' ' || c == '\t');
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(HeadersError::BadValue(n, name.to_string()));
            }
            pairs.push((name.to_string(), value.to_string()));
            if pairs.len() > MAX_EXTRA_HEADERS {
                return Err(HeadersError::TooMany);
            }
        }
        Ok(Self {
            raw: raw.to_string(),
            pairs,
        })
    }

    /// The text exactly as the client gave it.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// RFC 9110 `token`: the characters allowed in a header name.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_line_endings_and_keeps_the_raw_text() {
        let raw = "X-One: 1\r\nX-Two:  two words \nAuthorization: Bearer abc\n";
        let h = ExtraHeaders::parse(raw).unwrap();
        assert_eq!(h.raw(), raw);
        assert_eq!(
            h.pairs(),
            &[
                ("X-One".to_string(), "1".to_string()),
                ("X-Two".into(), "two words".into()),
                ("Authorization".into(), "Bearer abc".into())
            ]
        );
        assert!(ExtraHeaders::parse("").unwrap().pairs().is_empty());
    }

    #[test]
    fn refuses_injection_and_reserved_names() {
        assert_eq!(
            ExtraHeaders::parse("X-A: 1\rX-B: 2"),
            Err(HeadersError::LoneCarriageReturn(1))
        );
        assert_eq!(ExtraHeaders::parse("no colon here"), Err(HeadersError::MissingColon(1)));
        assert_eq!(
            ExtraHeaders::parse("Bad Name: x"),
            Err(HeadersError::BadName(1, "Bad Name".into()))
        );
        assert_eq!(
            ExtraHeaders::parse("X-A: a\u{0}b"),
            Err(HeadersError::BadValue(1, "X-A".into()))
        );
        assert_eq!(
            ExtraHeaders::parse("X-A: 1\nhost: evil"),
            Err(HeadersError::Reserved(2, "host".into()))
        );
        assert_eq!(
            ExtraHeaders::parse("X-Plugin-Hmac-Sha256: forged"),
            Err(HeadersError::Reserved(1, "X-Plugin-Hmac-Sha256".into()))
        );
        let many: String = (0..51).map(|i| format!("X-{i}: v\n")).collect();
        assert_eq!(ExtraHeaders::parse(&many), Err(HeadersError::TooMany));
        assert_eq!(ExtraHeaders::parse(&"x".repeat(9000)), Err(HeadersError::TooLong));
    }
}
