//! Carrying out: the engine's outputs (packets, kernel routes, monitor lines, the state
//! files) and the decisions' [`Action`]s, and the kernel snapshots they are taken from.

use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;

use babel_core::{Destination, Event, Input, Instant};
use babel_wire::RouterId;
use daemon::actions::Action;
use daemon::pacing::{offer_transmits, send_dumps};
use daemon::redistribute::{redistributed_tables, redistribution};
use daemon::state::Daemon;

use crate::control_socket::ControlServer;
use crate::kernel::{DumpRequest, KernelCmd, Snapshot};

use crate::run::Io;

/// Writes the state file durably, or says why it could not.
pub fn persist_seqno(p: &Path, id: RouterId, seqno: u16) {
    if let Err(e) = daemon::statefile::write(p, id, seqno) {
        tracing::warn!("state file {}: {e}", p.display());
    }
}

/// The link-local address an interface with a key signs from.
pub fn signing_address(d: &Daemon, ifindex: u32) -> Option<Ipv6Addr> {
    d.ifaces
        .iter()
        .find(|i| i.ifindex == Some(ifindex))
        .filter(|i| d.config.interface_options(&i.name).key.is_some())
        .and_then(|i| i.link_local)
}

/// Drains the engine: packets out, routes to the kernel, events to monitors and the state file.
pub async fn flush_outputs(d: &mut Daemon, io: &mut Io, ctl: &mut ControlServer, now: Instant) {
    // A new seqno reaches the disk before the first packet that carries it (RFC 8966 §3.5.1).
    let seqno = d.engine.seqno();
    if seqno != io.persisted_seqno {
        if let Some(p) = &io.state_file {
            persist_seqno(p, d.engine.router_id(), seqno);
        }
        io.persisted_seqno = seqno;
    }
    // Likewise each Hello seqno, for a restart after a crash (see `statefile::HelloFile`).
    if let Some(h) = &mut io.hellos
        && let Err(e) = h.update(d.engine.hello_seqnos())
    {
        tracing::debug!("Hello seqno file: {e}");
    }
    // Paced per interface (issue 11: a full table must not overflow a babeld neighbour's
    // socket); packets the pacer holds go out on later turns of the loop. A periodic dump is
    // made a part at a time as its interface's queue drains (`pacing::send_dumps`).
    let wall = clock::now();
    let mut ready = Vec::new();
    for (_, t) in io.pacer.due(wall) {
        ready.push(t);
    }
    // Signed packets keep their order (the receiver refuses a packet counter that goes
    // back), so authenticated interfaces are not paced.
    let keyed: Vec<u32> = d
        .ifaces
        .iter()
        .filter_map(|i| i.ifindex)
        .filter(|&ix| signing_address(d, ix).is_some())
        .collect();
    let unpaced = |ix: u32| keyed.contains(&ix);
    let mut out = d.engine.drain();
    let transmits = std::mem::take(&mut out.transmits);
    offer_transmits(&mut io.pacer, transmits, wall, unpaced, &mut ready);
    let mut rest = send_dumps(&mut d.engine, &mut io.pacer, now, wall, unpaced, &mut ready);
    out.routes.append(&mut rest.routes);
    out.events.append(&mut rest.events);
    for t in ready {
        let dst = match t.dst {
            Destination::Multicast => io.group,
            Destination::Unicast(IpAddr::V6(a)) => a,
            Destination::Unicast(IpAddr::V4(_)) => continue,
        };
        // A signed packet's MAC covers its source address: send it from the link-local address
        // the engine signed with, not one the kernel might pick among several.
        let src = signing_address(d, t.ifindex).unwrap_or(Ipv6Addr::UNSPECIFIED);
        if let Err(e) = io.socket.send_from(&t.bytes, src, dst, t.ifindex).await {
            tracing::debug!("send on {}: {e}", d.ifname(t.ifindex));
        }
    }
    // The engine already applied the `install` filter's allow/deny (a refused route is not
    // installed); here it chooses the table and preferred source of an added route. The
    // changes go to the route thread in parts of at most `APPLY_BATCH` (one input can change
    // every route of a full table: no second copy of all of them is built here), and at most
    // `PARTS_AHEAD` of them wait for the route thread (the loop waits for it here).
    let changed = !out.routes.is_empty();
    // One allocation of the part's size: a part grown by doubling left its smaller buffers
    // as holes among the tables the same burst was filling.
    let part = |left: usize| Vec::with_capacity(left.min(kernel_fib::APPLY_BATCH));
    let mut left = out.routes.len();
    let mut changes = part(left);
    for c in out.routes {
        let (table, pref_src) =
            io.placements
                .place(&d.config.filters, &c, &d.ifname_ref(c.ifindex));
        changes.push((c, table, pref_src));
        left -= 1;
        if changes.len() == kernel_fib::APPLY_BATCH {
            send_changes(io, std::mem::replace(&mut changes, part(left))).await;
        }
    }
    if changed || out.events.iter().any(|e| matches!(e, Event::Route { .. })) {
        // Only the tunnels' meters and the exit read the table; without them (no other holder
        // of it) it would be a copy of every installed route, rebuilt on every batch.
        if std::sync::Arc::strong_count(&io.prices) > 1 {
            crate::pay::publish_prices(d, now, &io.prices);
        }
        if let Some(e) = &io.exits {
            crate::exit::publish_routes(d, now, e);
        }
    }
    send_changes(io, changes).await;
    // Building a line means looking the object up; skip it when nobody listens. (Our seqno was
    // persisted above, before the packets went out; it has no line.)
    if ctl.monitoring() {
        let mut text = String::new();
        d.write_monitor_lines(now, &out.events, &mut text);
        if !text.is_empty() {
            ctl.broadcast(text.into_bytes());
        }
    } else {
        for e in &out.events {
            d.forget_monitored(e);
        }
    }
    choose_route_events(d, io, ctl);
}

/// Sends route changes to the kernel route thread, in order, once it has room for them.
async fn send_changes(io: &Io, changes: Vec<crate::kernel::Placed>) {
    if !changes.is_empty() && io.kernel.apply(changes).await.is_err() {
        tracing::error!("kernel route thread is gone");
    }
}

/// Asks the engine for route events only while something reads them: monitors, the price
/// table's holders and the exit (see [`flush_outputs`]). Without them, a neighbour whose cost
/// changes would queue a copy of each of its routes (100,000 in a full table) only to be
/// dropped here. Call after anything that may start a monitor, before the next input.
pub fn choose_route_events(d: &mut Daemon, io: &Io, ctl: &ControlServer) {
    let read =
        ctl.monitoring() || std::sync::Arc::strong_count(&io.prices) > 1 || io.exits.is_some();
    let which = if read {
        babel_core::RouteEvents::All
    } else {
        d.unmonitored_route_events()
    };
    d.engine.set_route_events(which);
}

/// Something in the kernel changed: asks the dump thread for links, addresses and the
/// redistributed tables, one snapshot at a time ([`daemon::resync::Resync`]).
pub fn request_snapshot(d: &Daemon, io: &mut Io) {
    if io.resync.wanted() {
        ask_snapshot(d, io);
    }
}

/// Sends the request for a snapshot to the dump thread.
pub fn ask_snapshot(d: &Daemon, io: &mut Io) {
    let tables = redistributed_tables(&d.config.globals.import_tables);
    if io.dumps.send(DumpRequest::Snapshot(tables)).is_err() {
        tracing::error!("kernel dump thread is gone");
        return;
    }
    io.resync.asked();
}

/// A snapshot was answered (or failed): finish the mesh events that waited for it, and ask
/// for the next one if something changed meanwhile.
pub fn snapshot_done(d: &mut Daemon, io: &mut Io) {
    let (finished, again) = io.resync.done();
    for ev in finished {
        crate::mesh::after_sync(d, &ev);
    }
    if again {
        ask_snapshot(d, io);
    }
}

/// Brings the interfaces and the redistributed routes in line with a new reading of the kernel.
pub fn apply_snapshot(d: &mut Daemon, io: &mut Io, now: Instant, snapshot: Snapshot) {
    d.links = snapshot.links;
    d.addrs = snapshot.addrs;
    sync_interfaces(d, io, now);
    let (wanted, actions) = redistribution(
        &d.config.filters,
        &d.links,
        &d.addrs,
        &snapshot.routes,
        &io.announced,
    );
    io.announced = wanted;
    execute(d, io, now, actions);
}

/// Brings configured interfaces up or down in the engine to match the links and addresses as
/// last read ([`daemon::iface_sync`]).
pub fn sync_interfaces(d: &mut Daemon, io: &mut Io, now: Instant) {
    let actions =
        daemon::iface_sync::sync_interfaces(&mut d.ifaces, &d.links, &d.addrs, io.link_detect);
    execute(d, io, now, actions);
}

/// Carries out the decisions' side effects ([`Action`]), in order.
pub fn execute(d: &mut Daemon, io: &mut Io, now: Instant, actions: Vec<Action>) {
    for action in actions {
        match action {
            Action::StartInterface { ifindex } => {
                let Some(iface) = d.ifaces.iter_mut().find(|i| i.ifindex == Some(ifindex)) else {
                    continue;
                };
                let Some(ll) = iface.link_local else {
                    continue;
                };
                if let Err(e) = io.socket.join(ifindex) {
                    tracing::warn!("joining {} on {}: {e}", io.group, iface.name);
                    iface.running = false;
                    continue;
                }
                let iface = iface.clone();
                let config = d.interface_config(&iface, ll);
                d.input(now, Input::InterfaceUp { ifindex, config });
                tracing::info!("interface {} up (index {ifindex}, {ll})", iface.name);
            }
            Action::ReconfigureInterface { ifindex } => {
                let Some(iface) = d.ifaces.iter().find(|i| i.ifindex == Some(ifindex)) else {
                    continue;
                };
                let Some(ll) = iface.link_local else {
                    continue;
                };
                let config = d.interface_config(iface, ll);
                d.input(now, Input::InterfaceUp { ifindex, config });
            }
            Action::StopInterface { ifindex } => {
                d.input(now, Input::InterfaceDown { ifindex });
                io.socket.leave(ifindex);
                io.pacer.forget(ifindex);
                tracing::info!("interface {} down", d.ifname(ifindex));
            }
            Action::LeaveGroup { ifindex } => io.socket.leave(ifindex),
            Action::Engine(input) => d.input(now, input),
            Action::KernelCheck(every) => {
                if io.kernel.send(KernelCmd::CheckInterval(every)).is_err() {
                    tracing::error!("kernel route thread is gone");
                }
            }
            Action::SyncInterfaces => sync_interfaces(d, io, now),
        }
    }
}
