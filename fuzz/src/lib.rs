//! What the parser targets share: one call into ingest's format dispatch, by extension.

use std::path::Path;

use cabildo_ingestors::{parse_file, IngestDefaults};

/// Parses `bytes` as a file with extension `ext`. An error is a fine outcome for random
/// input; a panic or a hang is the bug the fuzzer looks for.
pub fn parse(ext: &str, bytes: &[u8]) {
    let defaults = IngestDefaults {
        jurisdiction: Some("CL".into()),
        ..IngestDefaults::default()
    };
    let _ = parse_file(Path::new(&format!("fuzz/input.{ext}")), bytes, &defaults);
}
