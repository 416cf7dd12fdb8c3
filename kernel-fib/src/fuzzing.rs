//! The check the `netlink` fuzz target runs (`fuzz/`), shared with the regression test that
//! replays saved crash inputs (`kernel-fib/tests/fuzz_regressions.rs`). Panics mean a bug.
#![allow(clippy::expect_used, clippy::panic)]

use crate::codec::{
    MsgBuilder, decode_address, decode_error, decode_event, decode_link, decode_route, decode_rule,
    messages,
};

/// Any datagram from a netlink socket: splitting it into messages and parsing each message as
/// every kind (event, route, rule, link, address, error) must not panic. A route or rule we
/// accept and could send must encode and parse back to itself.
pub fn decode_check(data: &[u8]) {
    let mut total = 0usize;
    for msg in messages(data) {
        let Ok(msg) = msg else { break };
        total += msg.payload.len();
        assert!(total <= data.len());
        let _ = decode_event(&msg);
        let _ = decode_link(msg.payload);
        let _ = decode_address(msg.payload);
        let _ = decode_error(msg.payload);
        if let Ok(Some(route)) = decode_route(msg.payload)
            && route.validate().is_ok()
        {
            let mut b = MsgBuilder::new();
            b.new_route(&route, 0, 1, route.onlink);
            let again = messages(b.as_bytes())
                .next()
                .and_then(Result::ok)
                .and_then(|m| decode_route(m.payload).ok().flatten())
                .expect("an encoded route must parse");
            // IPv6 metric 0 is sent as the 1024 the kernel would store.
            let metric = route.effective_metric();
            assert_eq!(again, route.with_metric(metric));
        }
        if let Ok(Some(rule)) = decode_rule(msg.payload) {
            let mut b = MsgBuilder::new();
            b.new_rule(&rule, 1);
            let again = messages(b.as_bytes())
                .next()
                .and_then(Result::ok)
                .and_then(|m| decode_rule(m.payload).ok().flatten())
                .expect("an encoded rule must parse");
            assert_eq!(again, rule);
        }
    }
}
