//! Route verification (issue 15): datagrams on the verification socket from anybody, ICMPv6
//! messages, time passing and used addresses, in any order. Nothing may panic, every table
//! stays within its bound, and nobody past a link can make the router send
//! (`daemon::fuzzing::verification`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| daemon::fuzzing::verification::verification_check(data));
