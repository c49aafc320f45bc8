//! A webhook's `description` (CONTRACT §7.7): free text a merchant gives it, shown as its
//! name in the console and the CLI. At most 200 characters (Unicode scalar values, so a
//! limit a person can count), no control characters (it is shown on one line), default "".

use super::webhook::WebhookDataError;

pub const MAX_CHARS: usize = 200;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookDescription(String);

impl WebhookDescription {
    pub fn parse(s: &str) -> Result<Self, WebhookDataError> {
        let chars = s.chars().count();
        if chars > MAX_CHARS {
            return Err(WebhookDataError::Description(format!(
                "at most {MAX_CHARS} characters, not {chars}"
            )));
        }
        if s.chars().any(char::is_control) {
            return Err(WebhookDataError::Description(
                "control characters are not allowed".into(),
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_to_200_characters_of_one_line() {
        assert_eq!(WebhookDescription::parse("").unwrap().as_str(), "");
        assert!(WebhookDescription::parse(&"é".repeat(200)).is_ok());
        let e = WebhookDescription::parse(&"a".repeat(201)).unwrap_err();
        assert_eq!(e.to_string(), "description: at most 200 characters, not 201");
        assert!(WebhookDescription::parse("two\nlines").is_err());
        assert!(WebhookDescription::parse("nul\0").is_err());
    }
}
