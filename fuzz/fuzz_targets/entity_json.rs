#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| whisk_fuzz_checks::entity_json(data));
