//! The .json parser on arbitrary bytes: an error is fine, a panic or a hang is not.
#![no_main]

use std::path::Path;

use cabildo_ingestors::{parse_file, IngestDefaults};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let defaults = IngestDefaults {
        jurisdiction: Some("CL".into()),
        ..IngestDefaults::default()
    };
    let _ = parse_file(Path::new("fuzz/input.json"), bytes, &defaults);
});
