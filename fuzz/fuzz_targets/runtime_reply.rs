#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| whisk_fuzz_checks::runtime_reply(data));
