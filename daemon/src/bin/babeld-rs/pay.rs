//! The daemon's side of metering (spec/payments.md, "Metering"): publishes the installed
//! routes' prices to the tunnels' [`daemon::payments::MeteringHook`]s after route changes, so
//! that no packet ever looks into the engine.

use daemon::payments::{PriceTable, Prices};
use daemon::state::Daemon;

/// Republishes the prices of the installed routes (not source-specific ones: the tunnels price
/// by destination only). Called once per batch of engine outputs that changed a route; the
/// table bumps its generation only when a price or a route really changed.
pub fn publish_prices(d: &Daemon, table: &PriceTable) {
    let routes = d.engine.routes(d.now);
    table.publish(
        routes
            .into_iter()
            .filter(|r| r.installed && r.src_prefix.is_none())
            .map(|r| {
                (
                    r.prefix,
                    Prices {
                        ours: r.price,
                        theirs: r.received_price,
                    },
                )
            }),
    );
}
