#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| whisk_fuzz_checks::activation_id(data));
