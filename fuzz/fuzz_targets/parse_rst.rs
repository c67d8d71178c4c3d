//! The .rst parser on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| cabildo_fuzz::parse("rst", bytes));
