//! Prometheus metrics (OpenMetrics text, by the `prometheus-client` crate): the engine's
//! counters, neighbours with their costs, routes with metrics and prices, our fee, and tunnel
//! bytes. Served by the control socket's `metrics` command and, with `metrics-port N`, over
//! HTTP on `[::1]:N` (`GET /metrics`). Built from the daemon's state at each scrape, so nothing
//! is kept in step by hand.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::state::Daemon;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, String)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn gauge_family() -> Family<Labels, Gauge> {
    Family::default()
}

fn float_family() -> Family<Labels, Gauge<f64, AtomicU64>> {
    Family::default()
}

fn counter_family() -> Family<Labels, Counter> {
    Family::default()
}

/// The metrics text of the daemon at `now`.
pub fn render(d: &Daemon, now: babel_core::Instant) -> String {
    let mut reg = Registry::with_prefix("babel");

    let engine = counter_family();
    for (name, v) in d.engine.counters().named() {
        engine
            .get_or_create(&labels(&[("name", name.to_string())]))
            .inc_by(v);
    }
    reg.register(
        "engine_events",
        "Engine counters (`dump counters`): packets, messages, refusals",
        engine,
    );

    let fee = Gauge::<i64>::default();
    fee.set(i64::from(d.engine.fee()));
    reg.register("fee", "Our fee per unit of traffic (Althea)", fee);

    let neighbours = d.engine.neighbours(now);
    let count = Gauge::<i64>::default();
    count.set(i64::try_from(neighbours.len()).unwrap_or(i64::MAX));
    reg.register("neighbours", "Neighbours heard from", count);
    let (cost, rxcost, txcost, rtt) = (
        gauge_family(),
        gauge_family(),
        gauge_family(),
        float_family(),
    );
    for n in &neighbours {
        let l = labels(&[
            ("interface", d.ifname(n.ifindex)),
            ("address", n.address.to_string()),
        ]);
        cost.get_or_create(&l).set(i64::from(n.cost.0));
        rxcost.get_or_create(&l).set(i64::from(n.rxcost.0));
        txcost.get_or_create(&l).set(i64::from(n.txcost.0));
        if let Some(r) = n.rtt {
            rtt.get_or_create(&l).set(r.as_secs_f64());
        }
    }
    for (name, help, family) in [
        (
            "neighbour_cost",
            "Link cost (RFC 8966 §3.4.3; 65535 unreachable)",
            cost,
        ),
        ("neighbour_rxcost", "Receive cost we advertise", rxcost),
        ("neighbour_txcost", "Transmit cost from its IHUs", txcost),
    ] {
        reg.register(name, help, family);
    }
    reg.register(
        "neighbour_rtt_seconds",
        "Smoothed round-trip time (RFC 9616)",
        rtt,
    );

    let routes = d.engine.routes(now);
    let (total, metric, price) = (gauge_family(), gauge_family(), gauge_family());
    for installed in [true, false] {
        total
            .get_or_create(&labels(&[("installed", installed.to_string())]))
            .set(
                i64::try_from(routes.iter().filter(|r| r.installed == installed).count())
                    .unwrap_or(i64::MAX),
            );
    }
    for r in routes.iter().filter(|r| r.installed) {
        let l = labels(&[
            ("prefix", r.prefix.to_string()),
            (
                "from",
                r.src_prefix.map(|s| s.to_string()).unwrap_or_default(),
            ),
            ("via", r.via.to_string()),
            ("interface", d.ifname(r.ifindex)),
        ]);
        metric.get_or_create(&l).set(i64::from(r.metric.0));
        price.get_or_create(&l).set(i64::from(r.price));
    }
    reg.register("routes", "Routes in the table", total);
    reg.register(
        "route_metric",
        "Metric of each installed route (65535: held)",
        metric,
    );
    reg.register(
        "route_price",
        "Total price of each installed route (received price plus our fee)",
        price,
    );
    let xroutes = Gauge::<i64>::default();
    xroutes.set(i64::try_from(d.engine.xroutes().len()).unwrap_or(i64::MAX));
    reg.register("xroutes", "Local routes we announce", xroutes);

    let (rx, tx, handshakes) = (counter_family(), counter_family(), counter_family());
    for t in &d.tunnels {
        let Ok(t) = t.lock() else { continue };
        for p in &t.peers {
            let l = labels(&[("tunnel", t.name.clone()), ("peer", p.public_key.clone())]);
            rx.get_or_create(&l).inc_by(p.rx_bytes);
            tx.get_or_create(&l).inc_by(p.tx_bytes);
            handshakes.get_or_create(&l).inc_by(p.handshakes);
        }
    }
    for (name, help, family) in [
        ("tunnel_rx_bytes", "Plaintext bytes received per peer", rx),
        ("tunnel_tx_bytes", "Plaintext bytes sent per peer", tx),
        (
            "tunnel_handshakes",
            "Completed tunnel handshakes per peer",
            handshakes,
        ),
    ] {
        reg.register(name, help, family);
    }

    // Payments (spec/payments.md): counters of the payment loop, when it runs.
    if d.payments
        .running
        .load(std::sync::atomic::Ordering::Relaxed)
        && let Ok(c) = d.payments.counters.lock()
    {
        let pay = counter_family();
        for (name, v) in [
            ("sent", c.sent),
            ("received", c.received),
            ("refused", c.refused),
            ("cut_offs", c.cut_offs),
            ("dropped", c.dropped),
        ] {
            pay.get_or_create(&labels(&[("name", name.to_string())]))
                .inc_by(v);
        }
        reg.register(
            "payments",
            "Payments sent, received, refused; neighbours cut off; datagrams dropped",
            pay,
        );
    }

    if let Some(v) = &d.verification {
        verification(d, now, v, &mut reg);
    }

    let mut out = String::new();
    if let Err(e) = encode(&mut out, &reg) {
        tracing::warn!("encoding metrics: {e}");
    }
    out
}

/// Route verification (spec/verify.md): its counters, each neighbour's accuracy and standing,
/// each checked route's measured cost, each bounded table's entries and bound (§6).
fn verification(
    d: &Daemon,
    now: babel_core::Instant,
    v: &crate::verification::Verification,
    reg: &mut Registry,
) {
    let events = counter_family();
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(v.counters()) {
        for (name, x) in m {
            events
                .get_or_create(&labels(&[("name", name)]))
                .inc_by(x.as_u64().unwrap_or(0));
        }
    }
    for (name, x) in v.own_counters() {
        events
            .get_or_create(&labels(&[("name", name.to_owned())]))
            .inc_by(x);
    }
    reg.register(
        "verify_events",
        "Verification counters: sessions, probes sent, answers, drops by reason, checks, corrections, evictions",
        events,
    );
    let (accuracy, evicted, last_resort) = (gauge_family(), gauge_family(), gauge_family());
    let last_eviction = gauge_family();
    for n in v.neighbour_rows(now, &d.verify_engine_side(now)) {
        let l = labels(&[
            ("interface", d.ifname(n.ifindex)),
            ("address", n.neighbour.to_string()),
        ]);
        accuracy.get_or_create(&l).set(i64::from(n.accuracy));
        evicted.get_or_create(&l).set(i64::from(n.evicted));
        last_resort.get_or_create(&l).set(i64::from(n.last_resort));
        if let Some(cause) = n.last_eviction {
            let l = labels(&[
                ("interface", d.ifname(n.ifindex)),
                ("address", n.neighbour.to_string()),
                ("cause", cause.to_owned()),
            ]);
            last_eviction.get_or_create(&l).set(i64::from(n.evicted));
        }
    }
    reg.register(
        "verify_accuracy",
        "Accuracy score of each verified neighbour, per mille",
        accuracy,
    );
    reg.register(
        "verify_evicted",
        "1 while a neighbour is evicted for inaccurate metrics",
        evicted,
    );
    reg.register(
        "verify_last_eviction",
        "The cause of a neighbour's latest eviction (checks, unjustified, audit, asked-rises, fell-back): 1 while it lasts, 0 once it is readmitted",
        last_eviction,
    );
    reg.register(
        "verify_last_resort_routes",
        "Routes installed through an evicted neighbour: no other neighbour offers their destination a feasible route",
        last_resort,
    );
    let cost = gauge_family();
    for r in v.route_rows() {
        if let Some(c) = r.cost {
            let l = labels(&[
                ("prefix", r.prefix.to_string()),
                ("via", r.neighbour.to_string()),
                ("interface", d.ifname(r.ifindex)),
            ]);
            cost.get_or_create(&l).set(i64::from(c));
        }
    }
    reg.register(
        "verify_route_cost",
        "Measured cost c of each route at its last answered check",
        cost,
    );
    let (entries, max) = (gauge_family(), gauge_family());
    for t in v.table_sizes() {
        let l = labels(&[("table", t.name.to_owned())]);
        entries
            .get_or_create(&l)
            .set(i64::try_from(t.len).unwrap_or(i64::MAX));
        max.get_or_create(&l)
            .set(i64::try_from(t.max).unwrap_or(i64::MAX));
    }
    reg.register(
        "verify_table_entries",
        "Entries in each bounded verification table; at its bound the oldest are forgotten",
        entries,
    );
    reg.register(
        "verify_table_max",
        "The bound of each verification table",
        max,
    );
}
