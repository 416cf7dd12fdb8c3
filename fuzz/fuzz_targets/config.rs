//! Configuration text and command lines: parsing never panics (`daemon::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| daemon::fuzzing::config_check(data));
