//! Turning hyper's nested errors into the one-line texts of the attempt log.

use std::io;

/// The io::Error inside nested io::Errors (a TLS failure arrives as Other(InvalidData(..))),
/// which `source()` skips over.
pub(super) fn innermost_io(mut io: &io::Error) -> &io::Error {
    while let Some(inner) = io.get_ref().and_then(|e| e.downcast_ref::<io::Error>()) {
        io = inner;
    }
    io
}

pub(super) fn find_in_chain<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The causes below the client's own error, joined into one line, without hyper's
/// "client error (Connect)" wrappers and repeated messages.
pub(super) fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = std::error::Error::source(err);
    while let Some(e) = current {
        let text = e.to_string();
        let is_wrapper = text.starts_with("client error (");
        if !is_wrapper && !text.is_empty() && parts.last() != Some(&text) {
            parts.push(text);
        }
        current = e.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}
