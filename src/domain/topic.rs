//! Topics: the catalog of event names (`resource:event`), the patterns a webhook may
//! subscribe with (exact topic, `resource:*`, `*`), and how they match.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

/// The catalog compiled into the binary (`topics.txt` at the repo root).
pub const DEFAULT_CATALOG: &str = include_str!("../../topics.txt");

/// Longest topic or pattern accepted anywhere.
pub const MAX_TOPIC_LEN: usize = 100;
/// Most patterns one webhook may subscribe to.
pub const MAX_TOPICS_PER_WEBHOOK: usize = 100;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopicError {
    #[error("topics must not be empty")]
    Empty,
    #[error("topics contain an empty entry")]
    EmptyEntry,
    #[error("topic is longer than {MAX_TOPIC_LEN} characters")]
    TooLong,
    #[error("more than {MAX_TOPICS_PER_WEBHOOK} topics")]
    TooMany,
    #[error("topic '{0}' is not in the catalog")]
    Unknown(String),
    #[error("pattern '{0}' matches no topic in the catalog")]
    PatternMatchesNothing(String),
    #[error("'{0}' is not a topic (expected resource:event, resource:* or *)")]
    Malformed(String),
    #[error("'{0}' is a pattern; a concrete catalog topic is required")]
    PatternNotAllowed(String),
}

#[derive(Debug, thiserror::Error)]
#[error("topic catalog line {line}: {reason}")]
pub struct CatalogError {
    pub line: usize,
    pub reason: String,
}

/// The set of known topics. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Catalog {
    topics: Arc<BTreeSet<String>>,
}

impl Catalog {
    /// Parses a catalog file: one `resource:event` a line; blank lines and `#` comments ignored.
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let mut topics = BTreeSet::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !is_topic_syntax(line) {
                return Err(CatalogError {
                    line: i + 1,
                    reason: format!("'{line}' is not of the form resource:event"),
                });
            }
            topics.insert(line.to_string());
        }
        if topics.is_empty() {
            return Err(CatalogError {
                line: 0,
                reason: "the catalog has no topics".into(),
            });
        }
        Ok(Self {
            topics: Arc::new(topics),
        })
    }

    pub fn default_catalog() -> Self {
        Self::parse(DEFAULT_CATALOG).expect("the embedded catalog is valid")
    }

    /// This catalog and `more` (names of the catalog's syntax; others are left out).
    pub fn with(&self, more: impl IntoIterator<Item = String>) -> Self {
        let mut topics = (*self.topics).clone();
        topics.extend(more.into_iter().filter(|t| is_topic_syntax(t)));
        Self {
            topics: Arc::new(topics),
        }
    }

    pub fn contains(&self, topic: &str) -> bool {
        self.topics.contains(topic)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.topics.iter().map(String::as_str)
    }

    fn has_resource(&self, resource: &str) -> bool {
        self.topics
            .iter()
            .any(|t| t.split_once(':').map(|(r, _)| r) == Some(resource))
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' || b == b'.')
}

fn is_topic_syntax(s: &str) -> bool {
    matches!(s.split_once(':'), Some((r, e)) if is_name(r) && is_name(e))
}

/// A concrete catalog topic, such as `order:created`. Events are published to these.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Topic(String);

impl Topic {
    pub fn parse(s: &str, catalog: &Catalog) -> Result<Self, TopicError> {
        match TopicPattern::parse(s, catalog)? {
            TopicPattern::Exact(t) => Ok(Self(t)),
            _ => Err(TopicError::PatternNotAllowed(s.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The subscription keys that match this topic: itself, `resource:*` and `*`.
    /// Stores index subscriptions by these keys, so matching is a keyed lookup.
    pub fn match_keys(&self) -> [String; 3] {
        let resource = self.0.split_once(':').map(|(r, _)| r).unwrap_or(&self.0);
        [self.0.clone(), format!("{resource}:*"), "*".to_string()]
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One entry of a webhook's topic list.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TopicPattern {
    /// `order:created`
    Exact(String),
    /// `order:*` (holds `order`)
    Resource(String),
    /// `*`
    All,
}

impl TopicPattern {
    pub fn parse(s: &str, catalog: &Catalog) -> Result<Self, TopicError> {
        if s.is_empty() {
            return Err(TopicError::Empty);
        }
        if s.len() > MAX_TOPIC_LEN {
            return Err(TopicError::TooLong);
        }
        if s == "*" {
            return Ok(Self::All);
        }
        let Some((resource, event)) = s.split_once(':') else {
            return Err(TopicError::Malformed(s.to_string()));
        };
        if !is_name(resource) || !(event == "*" || is_name(event)) {
            return Err(TopicError::Malformed(s.to_string()));
        }
        if event == "*" {
            if !catalog.has_resource(resource) {
                return Err(TopicError::PatternMatchesNothing(s.to_string()));
            }
            return Ok(Self::Resource(resource.to_string()));
        }
        if !catalog.contains(s) {
            return Err(TopicError::Unknown(s.to_string()));
        }
        Ok(Self::Exact(s.to_string()))
    }

    /// The key stored in the subscription index (the pattern as written).
    pub fn key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(t) => f.write_str(t),
            Self::Resource(r) => write!(f, "{r}:*"),
            Self::All => f.write_str("*"),
        }
    }
}

/// A webhook's non-empty list of patterns, in the order given, duplicates removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicList(Vec<TopicPattern>);

impl TopicList {
    /// Parses the entries of a comma-separated string or of an array.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>, catalog: &Catalog) -> Result<Self, TopicError> {
        let mut list: Vec<TopicPattern> = Vec::new();
        for entry in entries {
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(TopicError::EmptyEntry);
            }
            let pattern = TopicPattern::parse(entry, catalog)?;
            if !list.contains(&pattern) {
                list.push(pattern);
            }
            if list.len() > MAX_TOPICS_PER_WEBHOOK {
                return Err(TopicError::TooMany);
            }
        }
        if list.is_empty() {
            return Err(TopicError::Empty);
        }
        Ok(Self(list))
    }

    pub fn parse_joined(s: &str, catalog: &Catalog) -> Result<Self, TopicError> {
        if s.trim().is_empty() {
            return Err(TopicError::Empty);
        }
        Self::parse(s.split(','), catalog)
    }

    pub fn patterns(&self) -> &[TopicPattern] {
        &self.0
    }

    /// The stored and listed form: comma-separated, no spaces.
    pub fn joined(&self) -> String {
        self.0.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Catalog {
        Catalog::default_catalog()
    }

    #[test]
    fn default_catalog_has_the_spec_topics() {
        let c = cat();
        assert!(c.contains("order:created"));
        assert!(c.contains("test:ping"));
        assert!(c.contains("webhook:disabled"), "CONTRACT §6.2: hookd's own event");
        assert_eq!(c.iter().count(), 53);
    }

    #[test]
    fn patterns_parse_and_print_back() {
        for s in ["order:created", "order:*", "*"] {
            assert_eq!(TopicPattern::parse(s, &cat()).unwrap().to_string(), s);
        }
    }

    #[test]
    fn bad_patterns_say_why() {
        let c = cat();
        assert_eq!(
            TopicPattern::parse("order:nosuch", &c),
            Err(TopicError::Unknown("order:nosuch".into()))
        );
        assert_eq!(
            TopicPattern::parse("nosuch:*", &c),
            Err(TopicError::PatternMatchesNothing("nosuch:*".into()))
        );
        assert_eq!(
            TopicPattern::parse("order", &c),
            Err(TopicError::Malformed("order".into()))
        );
        assert_eq!(
            TopicPattern::parse("or*der:x", &c),
            Err(TopicError::Malformed("or*der:x".into()))
        );
        assert_eq!(TopicPattern::parse(&"a".repeat(101), &c), Err(TopicError::TooLong));
        assert_eq!(TopicPattern::parse("", &c), Err(TopicError::Empty));
    }

    #[test]
    fn lists_trim_dedupe_and_join_without_spaces() {
        let l = TopicList::parse_joined("order:created, order:*,order:created", &cat()).unwrap();
        assert_eq!(l.joined(), "order:created,order:*");
        assert_eq!(TopicList::parse(Vec::<&str>::new(), &cat()), Err(TopicError::Empty));
        assert_eq!(
            TopicList::parse_joined("order:created,", &cat()),
            Err(TopicError::EmptyEntry)
        );
    }

    #[test]
    fn published_topics_must_be_concrete() {
        assert!(Topic::parse("order:created", &cat()).is_ok());
        assert_eq!(
            Topic::parse("order:*", &cat()),
            Err(TopicError::PatternNotAllowed("order:*".into()))
        );
        let t = Topic::parse("order:created", &cat()).unwrap();
        assert_eq!(
            t.match_keys(),
            ["order:created".to_string(), "order:*".into(), "*".into()]
        );
    }

    #[test]
    fn catalog_rejects_malformed_lines() {
        let err = Catalog::parse("a:b\nnot a topic\n").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
