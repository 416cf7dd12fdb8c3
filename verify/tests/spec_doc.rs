//! `spec/verify.md` and the code must agree: the defaults of §7 are those of
//! `VerifyConfig::default()`, and the sizes and constants it states are the code's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use verify::{CorrectionConfig, VerifyConfig};

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/verify.md")).unwrap()
}

fn table() -> Vec<(String, String)> {
    let d = doc();
    let start = d.find("## 7. Configuration").unwrap();
    d[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let c: Vec<String> = l
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_owned())
                .collect();
            (c[0].clone(), c[1].clone())
        })
        .collect()
}

fn dur(s: &str) -> Duration {
    if let Some(ms) = s.strip_suffix(" ms") {
        Duration::from_millis(ms.parse().unwrap())
    } else {
        Duration::from_secs(s.strip_suffix(" s").unwrap().parse().unwrap())
    }
}

#[test]
fn defaults_table_matches_code() {
    let c = VerifyConfig::default();
    let t = table();
    assert_eq!(t.len(), 66, "{t:?}");
    for (k, v) in &t {
        let ok = match k.as_str() {
            "hop_cost" => c.cost.hop_cost.to_string() == *v,
            "loss_in_metric" => c.cost.loss_in_metric.to_string() == *v,
            "z" => v.parse::<f64>().unwrap() == c.cost.z,
            "cycle" => dur(v) == c.schedule.cycle,
            "probes" => c.schedule.probes.to_string() == *v,
            "probe_interval" => dur(v) == c.schedule.probe_interval,
            "answer_wait" => dur(v) == c.schedule.answer_wait,
            "used_window" => dur(v) == c.schedule.used_window,
            "recheck_after" => dur(v) == c.schedule.recheck_after,
            "unanswered_rechecks" => c.schedule.unanswered_rechecks.to_string() == *v,
            "prefer_suspicious" => c.schedule.prefer_suspicious.to_string() == *v,
            "late_start" => c.schedule.late_start.to_string() == *v,
            "sessions_per_neighbour" => c.schedule.sessions_per_neighbour.to_string() == *v,
            "evidence_window" => dur(v) == c.schedule.evidence_window,
            "black_hole_window" => dur(v) == c.score.black_hole_window,
            "confirm_within" => dur(v) == c.score.confirm_within,
            "black_holes_evict" => c.score.black_holes_evict.to_string() == *v,
            "attribution" => c.score.attribution.to_string() == *v,
            "returned_blame" => c.score.returned_blame.to_string() == *v,
            "origin_at_both_ends" => c.score.origin_at_both_ends.to_string() == *v,
            "trace_depth" => c.score.trace_depth.to_string() == *v,
            "hop_bound" => c.score.hop_bound.to_string() == *v,
            "fallen_claim" => c.score.fallen_claim.to_string() == *v,
            "passing_origin" => c.score.passing_origin.to_string() == *v,
            "through_us" => c.score.through_us.to_string() == *v,
            "verified_next_hop" => c.score.verified_next_hop.to_string() == *v,
            "progress" => c.score.progress.to_string() == *v,
            "progress_on_accuracy" => c.score.progress_on_accuracy.to_string() == *v,
            "unknown_breadth" => c.score.unknown_breadth.to_string() == *v,
            "justification" => c.score.justification.to_string() == *v,
            "unjustified_origin_evicts" => c.score.unjustified_origin_evicts.to_string() == *v,
            "unjustified_unknown_evicts" => c.score.unjustified_unknown_evicts.to_string() == *v,
            "unjustified_through_us_evicts" => {
                c.score.unjustified_through_us_evicts.to_string() == *v
            }
            "loop_through_us" => c.score.loop_through_us.to_string() == *v,
            "justify_on_rise" => c.score.justify_on_rise.to_string() == *v,
            "reask_moved_claim" => c.score.reask_moved_claim.to_string() == *v,
            "confirmed_awaits_justification" => {
                c.score.confirmed_awaits_justification.to_string() == *v
            }
            "reask_infinite_claim" => c.score.reask_infinite_claim.to_string() == *v,
            "reask_refused_claim" => c.score.reask_refused_claim.to_string() == *v,
            "correction_meets_next_hop" => c.score.correction_meets_next_hop.to_string() == *v,
            "correction_near_measured" => c.score.correction_near_measured.to_string() == *v,
            "withdrawn_origin_evicts" => c.score.withdrawn_origin_evicts.to_string() == *v,
            "audit_claims" => c.score.audit_claims.to_string() == *v,
            "audit_signers_only" => c.score.audit_signers_only.to_string() == *v,
            "asked_rises_evict" => c.score.asked_rises_evict.to_string() == *v,
            "asked_rise_window" => dur(v) == c.score.asked_rise_window,
            "asked_rises_apart" => c.score.asked_rises_apart.to_string() == *v,
            "asked_rise_lowest_floor" => c.score.asked_rise_lowest_floor.to_string() == *v,
            "fall_back_evicts" => c.score.fall_back_evicts.to_string() == *v,
            "stable_evidence" => c.score.stable_evidence.to_string() == *v,
            "per_neighbour" => c.schedule.per_neighbour.to_string() == *v,
            "check_requests" => c.schedule.check_requests.to_string() == *v,
            "max_sessions" => c.schedule.max_sessions.to_string() == *v,
            "max_factor" => v.parse::<f64>().unwrap() == c.correction.max_factor,
            "scale_advertised" => c.correction.scale_advertised.to_string() == *v,
            "follow_claims" => c.correction.follow_claims.to_string() == *v,
            "threshold" => v.parse::<f64>().unwrap() == c.score.threshold,
            "window" => dur(v) == c.score.window,
            "hold" => dur(v) == c.score.hold,
            "max_hold" => dur(v) == c.score.max_hold,
            "c1" => v.parse::<f64>().unwrap() == c.correction.c1,
            "c2" => v.parse::<f64>().unwrap() == c.correction.c2,
            "tolerance" => v.parse::<f64>().unwrap() == c.correction.tolerance,
            "first" => dur(v) == c.correction.first,
            "min" => dur(v) == c.correction.min,
            "max" => dur(v) == c.correction.max,
            other => panic!("unknown option {other}"),
        };
        assert!(ok, "{k} = {v}");
    }
    // §4.2: the second recheck of a failed route comes after the confirmation window, and
    // every recheck within `confirm_within` of the failure before it.
    assert!(c.schedule.recheck_after * 2 >= c.score.window);
    assert!(c.schedule.recheck_after + c.schedule.cycle <= c.score.confirm_within);
}

#[test]
fn stated_constants_and_examples() {
    let d = doc();
    assert!(d.contains(&format!("type {}", verify::REPORT_SUB_TLV)));
    assert!(d.contains(&format!("length {}", verify::REPORT_LEN)));
    assert!(d.contains(&format!(
        "`DERIVED_MIN_BITS` = {}",
        verify::DERIVED_MIN_BITS
    )));
    assert!(d.contains(&format!("`HOP_LIMIT` = {}", verify::HOP_LIMIT)));
    assert!(d.contains(&format!(
        "`JUSTIFY_WAIT` ({} s)",
        verify::JUSTIFY_WAIT.as_secs()
    )));
    assert!(d.contains(&format!("`CLAIM_SIGN_RATE` ({})", verify::CLAIM_SIGN_RATE)));
    assert!(d.contains(&format!("`TRACE_HOP_LIMIT` = {}", verify::TRACE_HOP_LIMIT)));
    assert!(d.contains(&format!("`BOUND_PROBES` = {}", verify::BOUND_PROBES)));
    // §1.4's example: 384 on wired links allows 5.
    assert_eq!(verify::bound_hop_limit(384, 96, 0.8, 1), Some(5));
    assert!(d.contains("5 for `m` = 384 on wired links"));
    assert!(d.contains(&format!(
        "`NEXT_HOP_TRUST` = {} s",
        verify::NEXT_HOP_TRUST.as_secs()
    )));
    let cc = CorrectionConfig::default();
    for (since, stated) in [(60u64, 164u64), (30, 465), (10, 2415)] {
        let got = cc
            .duration(Some(Duration::from_secs(since)))
            .as_secs_f64()
            .round() as u64;
        assert_eq!(got, stated, "d = {since} s");
        assert!(d.contains(&format!("{since} s after")) || since == 60);
    }
    // §2.4 sizes: 46/98 and 167/219 octets.
    let hello = babel_wire::Message::RemoteHello(babel_wire::RemoteHello {
        seqno: 1,
        interval: 25,
        origin: babel_wire::RouterId([1; 8]),
        via: babel_wire::RouterId([2; 8]),
        prefix: "fd00::1/128".parse().unwrap(),
        timestamp: Some(5),
    });
    let pkts =
        babel_wire::encode(&[hello], &babel_wire::EncodeOptions::for_link_mtu(1500)).unwrap();
    assert_eq!(pkts[0].len(), 4 + 46);
    assert!(d.contains("a Remote Hello is a 46-octet TLV, 98 octets"));
    let ihu_tlv = 2 + 22 + 16 + 10 + 2 + verify::REPORT_LEN;
    assert_eq!(ihu_tlv, 167);
    assert!(d.contains("a Remote IHU is a 167-octet TLV, 219 octets"));
    assert_eq!(20 * (46 + 52) + 6 * (167 + 52), 3274);
    assert!(d.contains("20·98 + 6·219 = 3274 octets"));
}
