#![no_main]

// The parsers behind `backlogctl::fuzzing::tracefs` (its doc says which); the corpus replay in
// tests/fuzz_corpus.rs calls the same function.
libfuzzer_sys::fuzz_target!(|data: &[u8]| backlogctl::fuzzing::tracefs(data));
