//! W3C Trace Context (`traceparent`, CONTRACT §7.6): `VERSION-TRACEID-PARENTID-FLAGS` in
//! lowercase hex. An event carries one from `event.publish` (or a fresh one) to every attempt
//! of its payloads: each attempt's request gets the event's trace id with a span id of its own.

use std::fmt;

/// The longest `traceparent` value looked at; a longer header is ignored, not parsed.
pub const MAX_HEADER_LEN: usize = 512;

/// A valid traceparent, kept as its parts (the text form is made on demand).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    /// Parses a header value. None for anything not W3C-valid: version `ff`, upper case,
    /// all-zero ids, wrong lengths; version 00 must be exactly 55 characters, a later version
    /// may go on after a `-` (its extra fields are dropped, as the spec asks).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim_matches([' ', '\t']);
        if text.len() < 55 || text.len() > MAX_HEADER_LEN || !text.is_ascii() {
            return None;
        }
        let b = text.as_bytes();
        let version = hex_byte(&text[0..2])?;
        if version == 0xff || (version == 0 && text.len() != 55) || (text.len() > 55 && b[55] != b'-') {
            return None;
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        hex_into(&text[3..35], &mut trace_id)?;
        hex_into(&text[36..52], &mut span_id)?;
        let flags = hex_byte(&text[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// A new trace (random ids), marked sampled so the receiver's tracing may record it.
    pub fn fresh() -> Self {
        Self {
            trace_id: nonzero(rand::random::<u128>()).to_be_bytes(),
            span_id: nonzero_64(rand::random::<u64>()).to_be_bytes(),
            flags: 1,
        }
    }

    /// The same trace, with `span_id` as the parent (e.g. an attempt's own span).
    pub fn child(&self, span_id: [u8; 8]) -> Self {
        Self { span_id, ..*self }
    }

    /// The same trace with a random span id (an attempt's, when no tracer gives one).
    pub fn random_child(&self) -> Self {
        self.child(nonzero_64(rand::random::<u64>()).to_be_bytes())
    }

    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }
}

impl fmt::Display for TraceParent {
    /// Always version 00, the form this hookd writes.
    /// Written into one stack buffer: this runs for every delivery attempt.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
        let hex_ok = hex::encode_to_slice(self.trace_id, &mut out[3..35]).is_ok()
            && hex::encode_to_slice(self.span_id, &mut out[36..52]).is_ok()
            && hex::encode_to_slice([self.flags], &mut out[53..55]).is_ok();
        debug_assert!(hex_ok, "the buffer fits the W3C form exactly");
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

fn nonzero(n: u128) -> u128 {
    n.max(1)
}

fn nonzero_64(n: u64) -> u64 {
    n.max(1)
}

/// Lowercase hex only (the spec forbids upper case).
fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

fn hex_byte(s: &str) -> Option<u8> {
    let mut out = [0u8; 1];
    hex_into(s, &mut out)?;
    Some(out[0])
}

fn hex_into(s: &str, out: &mut [u8]) -> Option<()> {
    if !is_lower_hex(s) {
        return None;
    }
    hex::decode_to_slice(s, out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_round_trips() {
        let t = TraceParent::parse(GOOD).unwrap();
        assert_eq!(t.to_string(), GOOD);
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.flags, 1);
        let child = t.random_child();
        assert_eq!(child.trace_id, t.trace_id);
        assert_ne!(child.span_id, t.span_id);
    }

    #[test]
    fn a_later_version_keeps_its_first_fields() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let t = TraceParent::parse(later).unwrap();
        assert_eq!(t.to_string(), GOOD);
    }

    #[test]
    fn invalid_headers_are_refused() {
        for bad in [
            "",
            "garbage",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "0é-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
        assert_eq!(TraceParent::parse(&format!("cc-{}", "a".repeat(600))), None);
    }

    #[test]
    fn fresh_traces_differ_and_are_valid() {
        let (a, b) = (TraceParent::fresh(), TraceParent::fresh());
        assert_ne!(a.trace_id, b.trace_id);
        assert_eq!(TraceParent::parse(&a.to_string()), Some(a));
    }
}
