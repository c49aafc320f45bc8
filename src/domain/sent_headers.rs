//! What an attempt's request carried that cannot be derived later, kept with the attempt so a
//! delivery's page shows the headers as sent (CONTRACT §7.7), not as the webhook has them now.
//!
//! The one idea to know: most headers follow from the payload and the attempt itself
//! (`Content-Type`, `webhook-id` from the payload id, `webhook-timestamp`, which the dispatcher
//! signs as the attempt's logged second), and signatures are never shown, so they are not kept.
//! What is left is the webhook's extra headers at the time and whether a previous key signed
//! too. Most webhooks have neither, so the common value is the empty string: the hot path
//! binds one empty text per attempt and builds nothing (a `Target` renders its two possible
//! values once, when it is loaded).
//!
//! The text: empty, or a first line (`previous` when a previous key signed, else empty)
//! followed by one `name:value` line per extra header, exactly as sent (names hold no `:` and
//! values no CR/LF, so this reads back unambiguously).

/// The stored form, see the module comment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SentHeaders {
    /// A previous key signed too (`X-Plugin-Hmac-Sha256-Previous` was sent).
    pub previous: bool,
    /// The extra headers, as sent.
    pub extra: Vec<(String, String)>,
}

const PREVIOUS: &str = "previous";

impl SentHeaders {
    /// The stored text.
    pub fn encode(previous: bool, extra: &[(String, String)]) -> String {
        if !previous && extra.is_empty() {
            return String::new();
        }
        let mut text = String::from(if previous { PREVIOUS } else { "" });
        for (name, value) in extra {
            text.push('\n');
            text.push_str(name);
            text.push(':');
            text.push_str(value);
        }
        text
    }

    /// Reads the stored text back; a line without `:` (never written) is skipped.
    pub fn decode(text: &str) -> Self {
        let mut lines = text.split('\n');
        let previous = lines.next() == Some(PREVIOUS);
        let extra = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Self { previous, extra }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn nothing_beyond_the_derivable_is_stored_as_the_empty_string() {
        assert_eq!(SentHeaders::encode(false, &[]), "");
        assert_eq!(SentHeaders::decode(""), SentHeaders::default());
    }

    #[test]
    fn extra_headers_and_the_previous_key_read_back_exactly() {
        let extra = pairs(&[("X-Shop", "a: b "), ("X-Empty", ""), ("X-Shop", "twice")]);
        for previous in [false, true] {
            let text = SentHeaders::encode(previous, &extra);
            assert_eq!(
                SentHeaders::decode(&text),
                SentHeaders {
                    previous,
                    extra: extra.clone()
                }
            );
        }
        assert_eq!(SentHeaders::encode(true, &[]), "previous");
        assert_eq!(
            SentHeaders::decode("previous"),
            SentHeaders {
                previous: true,
                extra: vec![]
            }
        );
    }
}
