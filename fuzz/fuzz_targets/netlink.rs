//! Any datagram from a netlink socket: parsing never panics, and what we accept encodes back to
//! itself (`kernel_fib::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kernel_fib::fuzzing::decode_check(data));
