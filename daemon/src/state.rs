//! The daemon's view of its engine: interface bookkeeping, runtime configuration, and the
//! `dump`/`monitor` lines of the control protocol. No I/O here; `run.rs` does that.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use babel_core::record::RecordingDriver;
use babel_core::{
    ChangeKind, Event, Input, Instant, InterfaceConfig, InterfaceKind, MacAlgorithm, MacAuth,
    MacKey, Policy, RouteView,
};
use babel_wire::{Flavour, Prefix};
use serde::Serialize;

use crate::config::{ConfiguredKind, DaemonConfig, InterfaceOptions, KeyType, Statement};
use crate::control::{
    Dialect, Handler, NeighbourLine, althea_header, interface_line, line_id, neighbour_line,
    route_line, xroute_line,
};
use crate::monitor::{RouteMonitor, shown_route_line};

/// What the daemon knows about an interface it was asked to run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    /// Name.
    pub name: String,
    /// Kernel index, once the interface exists.
    pub ifindex: Option<u32>,
    /// Its IPv6 link-local address, once it has one.
    pub link_local: Option<Ipv6Addr>,
    /// Its first IPv4 address, for babeld's `ipv4` field and IPv4 next hops.
    pub ipv4: Option<Ipv4Addr>,
    /// MTU.
    pub mtu: usize,
    /// True if the kernel says it is wireless.
    pub wireless: bool,
    /// True if the kernel says it is point-to-point (`IFF_POINTOPOINT`: TUN, WireGuard, GRE):
    /// `type auto` then means `tunnel`.
    pub point_to_point: bool,
    /// Administratively and (with link detection) operationally up.
    pub link_up: bool,
    /// Running in the engine.
    pub running: bool,
}

/// A tunnel's state as last snapshotted by its thread (shown by `dump json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TunnelState {
    /// Interface name.
    pub name: String,
    /// Our public key.
    pub public_key: String,
    /// UDP port.
    pub listen_port: u16,
    /// Peers.
    pub peers: Vec<TunnelPeerState>,
    /// Policy changes for the tunnel's thread to apply (peer public key, policy).
    #[serde(skip)]
    pub pending: Vec<(tunnel::PublicKey, tunnel::ForwardingPolicy)>,
}

/// One tunnel peer's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TunnelPeerState {
    /// Its public key.
    pub public_key: String,
    /// Where it was last heard from.
    pub endpoint: Option<String>,
    /// Plaintext bytes received from it.
    pub rx_bytes: u64,
    /// Plaintext bytes sent to it.
    pub tx_bytes: u64,
    /// Data packets received.
    pub rx_packets: u64,
    /// Data packets sent.
    pub tx_packets: u64,
    /// Completed handshakes.
    pub handshakes: u64,
    /// Seconds since the last handshake.
    pub last_handshake_s: Option<u64>,
    /// Forwarding policy (`Allow`, `Block`, `RateLimit {..}`).
    pub policy: String,
}

/// Global settings the engine does not hold.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Control dialect and wire flavour.
    pub dialect: Dialect,
    /// `-h` in ms.
    pub hello_wireless_ms: Option<u32>,
    /// `-H` in ms.
    pub hello_wired_ms: Option<u32>,
    /// `-w`.
    pub all_wireless: bool,
    /// `-s`.
    pub no_split_horizon: bool,
    /// `kernel-check-interval` as last set.
    pub kernel_check_interval: Option<u32>,
    /// Version string for the banner.
    pub version: String,
    /// The kernel forwards IPv4 through IPv6 next hops and originates ICMPv4 without an IPv4
    /// address (Linux ≥ 5.13), so `v4-via-v6` defaults on, as in babeld.
    pub kernel_safe_v4_via_v6: bool,
}

impl Settings {
    /// babeld's defaults in babeld's dialect (no `-h`, `-H`, `-w`, `-s`) on a kernel that
    /// forwards IPv4 through IPv6 next hops.
    pub fn babeld(version: String) -> Settings {
        Settings {
            dialect: Dialect::Babel,
            hello_wireless_ms: None,
            hello_wired_ms: None,
            all_wireless: false,
            no_split_horizon: false,
            kernel_check_interval: None,
            version,
            kernel_safe_v4_via_v6: true,
        }
    }
}

/// Whether a Linux release string (`/proc/sys/kernel/osrelease`, e.g. `6.1.0-27-amd64`) is at
/// least `major.minor`; an unreadable one counts as older, as babeld's `kernel_older_than`.
pub fn kernel_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

/// The engine plus everything the control protocol shows.
pub struct Daemon {
    /// The protocol engine. Reads go through it as a [`babel_core::Engine`]; every input goes through
    /// [`RecordingDriver::input`] and every output through [`RecordingDriver::drain`], so `--record` sees them all.
    pub engine: RecordingDriver,
    /// The configuration as read and changed at runtime.
    pub config: DaemonConfig,
    /// Interfaces by name, in the order they were named.
    pub ifaces: Vec<Iface>,
    /// Settings.
    pub settings: Settings,
    /// Last line printed per monitored interface, neighbour and xroute, so a `flush` line can
    /// repeat its fields.
    monitor_cache: HashMap<MonitorKey, String>,
    /// The routes a monitor was shown, and the writing of their lines.
    route_monitor: RouteMonitor,
    /// Side effects decided here for the main loop to carry out (multicast groups left by a
    /// client's `flush interface`, a new kernel check interval, interfaces to re-synchronise).
    pub actions: Vec<crate::actions::Action>,
    /// Running tunnels.
    pub tunnels: Vec<std::sync::Arc<std::sync::Mutex<TunnelState>>>,
    /// Mesh interfaces (`type mesh`), as their drivers last saw them.
    pub mesh: Vec<std::sync::Arc<std::sync::Mutex<crate::discovery::MeshView>>>,
    /// What the mesh tunnels metered, per neighbour (spec/payments.md).
    pub meters: crate::payments::MeterBoard,
    /// The payment loop's rows, counters and switches (spec/payments.md).
    pub payments: std::sync::Arc<crate::payments::PayShared>,
    /// The exit role or exit client, if configured (`crate::exit`).
    pub exits: Option<std::sync::Arc<std::sync::Mutex<crate::exit::ExitView>>>,
    /// Route verification, with `verify-enable` (spec/verify.md, "The daemon").
    pub verification: Option<crate::verification::Verification>,
    /// Links and addresses as the kernel was last read (the last snapshot): a control client's
    /// statement is matched against them, never against a new dump.
    pub links: Vec<kernel_fib::LinkInfo>,
    /// See [`Daemon::links`].
    pub addrs: Vec<kernel_fib::AddressInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum MonitorKey {
    Interface(u32),
    Neighbour(u32, IpAddr),
    Xroute(Prefix, Option<Prefix>),
}

impl Daemon {
    /// A daemon around a new engine (nothing fed to it yet).
    pub fn new(
        engine: RecordingDriver,
        config: DaemonConfig,
        ifaces: Vec<Iface>,
        settings: Settings,
    ) -> Self {
        Daemon {
            engine,
            config,
            ifaces,
            settings,
            monitor_cache: HashMap::new(),
            route_monitor: RouteMonitor::default(),
            actions: Vec::new(),
            tunnels: Vec::new(),
            mesh: Vec::new(),
            meters: Default::default(),
            payments: Default::default(),
            exits: None,
            verification: None,
            links: Vec::new(),
            addrs: Vec::new(),
        }
    }

    /// Feeds one input to the engine at `now`; a refusal is logged.
    pub fn input(&mut self, now: Instant, input: Input) {
        if let Err(e) = self.engine.input(now, input) {
            tracing::debug!("engine refused an input: {e}");
        }
    }

    /// The name of an interface index.
    pub fn ifname(&self, ifindex: u32) -> String {
        self.ifname_ref(ifindex).into_owned()
    }

    /// The name of an interface index, borrowed when the interface is configured (no copy per
    /// route when a full table's changes are placed).
    pub fn ifname_ref(&self, ifindex: u32) -> std::borrow::Cow<'_, str> {
        self.ifaces
            .iter()
            .find(|i| i.ifindex == Some(ifindex))
            .map_or_else(
                || std::borrow::Cow::Owned(ifindex.to_string()),
                |i| std::borrow::Cow::Borrowed(i.name.as_str()),
            )
    }

    /// The wire flavour of every interface.
    pub fn flavour(&self) -> Flavour {
        match self.settings.dialect {
            Dialect::Althea => Flavour::Althea,
            Dialect::Babel => Flavour::Standard,
        }
    }

    /// The engine configuration for an interface from its options (babeld's defaults per kind,
    /// `default` options, its own options, and `-h`/`-H`/`-w`/`-s`).
    pub fn interface_config(&self, iface: &Iface, link_local: Ipv6Addr) -> InterfaceConfig {
        let o = self.config.interface_options(&iface.name);
        let mut c = interface_config(&o, iface, link_local, &self.settings, self.flavour());
        match mac_auth(&self.config, &o) {
            Ok(auth) => c.auth = auth,
            // Checked at start-up and for runtime statements; never run an interface that
            // should be authenticated without its key.
            Err(e) => {
                tracing::error!(interface = %iface.name, "{e}; no packet will be accepted");
                c.auth = Some(MacAuth {
                    keys: vec![],
                    accept_bad_signatures: false,
                });
            }
        }
        c
    }

    /// Checks that every interface's `key` names a usable key (babeld refuses the configuration
    /// otherwise).
    pub fn check_keys(&self) -> Result<(), String> {
        for (name, _) in &self.config.interfaces {
            mac_auth(&self.config, &self.config.interface_options(name))
                .map_err(|e| format!("interface {name}: {e}"))?;
        }
        mac_auth(&self.config, &self.config.defaults).map(|_| ())
    }

    fn route_line(&self, c: ChangeKind, r: &RouteView) -> String {
        let ifname = self.ifname(r.ifindex);
        route_line(
            c,
            self.settings.dialect,
            &shown_route_line(r, r.installed, &ifname),
        )
    }

    fn interface_line(&self, c: ChangeKind, i: &Iface) -> String {
        interface_line(c, &i.name, i.running, i.link_local, i.ipv4)
    }

    fn neighbour_lines(&self, now: Instant) -> Vec<((u32, IpAddr), String)> {
        self.engine
            .neighbours(now)
            .iter()
            .map(|n| {
                let ifname = self.ifname(n.ifindex);
                let line = neighbour_line(
                    ChangeKind::Add,
                    &NeighbourLine {
                        id: neighbour_id(n.ifindex, n.address),
                        address: n.address,
                        ifname: &ifname,
                        reach: n.reach,
                        ureach: n.ureach,
                        rxcost: n.rxcost.0,
                        txcost: n.txcost.0,
                        rtt: n.rtt.map(|d| {
                            (
                                u32::try_from(d.as_micros()).unwrap_or(u32::MAX),
                                n.rttcost.0,
                            )
                        }),
                        cost: n.cost.0,
                    },
                );
                ((n.ifindex, n.address), line)
            })
            .collect()
    }

    /// The engine's side of the verification rows: its accuracy threshold and the routes it
    /// has installed through each neighbour.
    pub fn verify_engine_side(&self, now: Instant) -> crate::verification::EngineSide {
        crate::verification::EngineSide::new(
            self.engine.config().accuracy_threshold,
            &self.engine.routes(now),
        )
    }

    /// babeld's `dump`: interfaces, neighbours, xroutes, routes (Althea: fee lines first).
    pub fn dump_lines(&self, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        if self.settings.dialect == Dialect::Althea {
            let mf = match self.engine.policy() {
                Policy::Althea { metric_factor } => metric_factor,
                _ => self.config.globals.metric_factor.unwrap_or(0),
            };
            out.extend(althea_header(self.engine.fee(), mf));
        }
        out.extend(
            self.ifaces
                .iter()
                .map(|i| self.interface_line(ChangeKind::Add, i)),
        );
        out.extend(self.neighbour_lines(now).into_iter().map(|(_, l)| l));
        for x in self.engine.xroutes() {
            out.push(xroute_line(
                ChangeKind::Add,
                &x.prefix,
                x.src_prefix.as_ref(),
                x.metric.0,
            ));
        }
        for r in self.engine.routes(now) {
            out.push(self.route_line(ChangeKind::Add, &r));
        }
        out.extend(crate::discovery::dump_lines(&self.mesh));
        out.extend(crate::payments::dump_lines(&self.meters));
        out.extend(self.payments.dump_lines());
        if let Some(e) = self.exits.as_ref().and_then(|e| e.lock().ok()) {
            out.extend(e.lines());
        }
        if let Ok(b) = self.payments.settlement.lock() {
            out.extend(b.lines.iter().cloned());
        }
        if let Some(v) = &self.verification {
            out.extend(v.dump_lines(now, &self.verify_engine_side(now), |i| self.ifname(i)));
        }
        out
    }

    /// The route events the engine must queue while no client monitors and nothing else reads
    /// them: the flushes of routes a monitor was shown (so they are forgotten), or none.
    pub fn unmonitored_route_events(&self) -> babel_core::RouteEvents {
        if self.route_monitor.remembers() {
            babel_core::RouteEvents::Flushes
        } else {
            babel_core::RouteEvents::Off
        }
    }

    /// Keeps the monitor cache right while no client monitors: a flushed object's line goes.
    pub fn forget_monitored(&mut self, e: &Event) {
        if let Event::Route {
            kind: ChangeKind::Flush,
            route,
        } = e
        {
            self.route_monitor.forget(route);
            return;
        }
        if self.monitor_cache.is_empty() {
            return;
        }
        let key = match e {
            Event::Interface {
                kind: ChangeKind::Flush,
                ifindex,
            } => MonitorKey::Interface(*ifindex),
            Event::Neighbour {
                kind: ChangeKind::Flush,
                ifindex,
                address,
            } => MonitorKey::Neighbour(*ifindex, *address),
            Event::Xroute {
                kind: ChangeKind::Flush,
                prefix,
                src_prefix,
            } => MonitorKey::Xroute(*prefix, *src_prefix),
            _ => return,
        };
        self.monitor_cache.remove(&key);
    }

    /// Appends the monitor lines of the events of one drain of the engine to `out`, each
    /// ending in a newline, in the events' order; returns how many. A line shows its object as
    /// it is after the drain (a route added then installed in one step shows `installed yes`
    /// twice); a route's `flush` line shows its last fields as shown before (`installed` as its
    /// last line said), and only for a route a monitor was shown. Route lines are written from
    /// the routes the events carry: nothing is looked up in the engine.
    pub fn write_monitor_lines(
        &mut self,
        now: Instant,
        events: &[Event],
        out: &mut String,
    ) -> usize {
        // The route lines' state is taken out while `self` writes the other lines.
        let mut routes = std::mem::take(&mut self.route_monitor);
        routes.begin(events);
        // Room for a line per route event at once (a line is about 140 bytes; the daemon
        // hands every drain a fresh buffer), rather than doubling it several times.
        let route_events = events
            .iter()
            .filter(|e| matches!(e, Event::Route { .. }))
            .count();
        out.reserve(route_events * 144);
        let mut lines = 0;
        for (i, e) in events.iter().enumerate() {
            if let Event::Route { .. } = e {
                let ifname = |ix| self.ifname(ix);
                lines +=
                    usize::from(routes.write_line(events, i, self.settings.dialect, &ifname, out));
            } else if let Some(l) = self.monitor_line(now, e) {
                out.push_str(&l);
                out.push('\n');
                lines += 1;
            }
        }
        self.route_monitor = routes;
        lines
    }

    /// The monitor line of an interface, neighbour or xroute event.
    fn monitor_line(&mut self, now: Instant, e: &Event) -> Option<String> {
        let (key, kind, fresh): (MonitorKey, ChangeKind, Option<String>) = match e {
            Event::Interface { kind, ifindex } => {
                let line = self
                    .ifaces
                    .iter()
                    .find(|i| i.ifindex == Some(*ifindex))
                    .map(|i| self.interface_line(ChangeKind::Add, i));
                (MonitorKey::Interface(*ifindex), *kind, line)
            }
            Event::Neighbour {
                kind,
                ifindex,
                address,
            } => {
                let line = self
                    .neighbour_lines(now)
                    .into_iter()
                    .find(|(k, _)| *k == (*ifindex, *address))
                    .map(|(_, l)| l);
                (MonitorKey::Neighbour(*ifindex, *address), *kind, line)
            }
            Event::Xroute {
                kind,
                prefix,
                src_prefix,
            } => {
                let line = self
                    .engine
                    .xroutes()
                    .iter()
                    .find(|x| x.prefix == *prefix && x.src_prefix == *src_prefix)
                    .map(|x| {
                        xroute_line(
                            ChangeKind::Add,
                            &x.prefix,
                            x.src_prefix.as_ref(),
                            x.metric.0,
                        )
                    });
                (MonitorKey::Xroute(*prefix, *src_prefix), *kind, line)
            }
            Event::Route { .. } | Event::SeqnoChanged { .. } => return None,
        };
        let line = match (kind, fresh) {
            (ChangeKind::Flush, _) => self.monitor_cache.remove(&key),
            (_, Some(l)) => {
                self.monitor_cache.insert(key, l.clone());
                Some(l)
            }
            (_, None) => None,
        }?;
        // Stored lines start with "add "; the event decides the first word.
        let rest = line.strip_prefix("add ").unwrap_or(&line);
        let word = match kind {
            ChangeKind::Add => return Some(line),
            ChangeKind::Change => "change",
            ChangeKind::Flush => "flush",
        };
        Some(format!("{word} {rest}"))
    }

    /// Applies a runtime statement (after `Context::Runtime` parsing).
    pub fn apply_runtime(&mut self, now: Instant, s: Statement) -> Result<(), String> {
        match &s {
            Statement::Global(g) => {
                if let Some(fee) = g.fee {
                    self.input(now, Input::SetFee { fee });
                }
                if let Some(metric_factor) = g.metric_factor {
                    self.input(now, Input::SetMetricFactor { metric_factor });
                }
                if let Some(k) = g.kernel_check_interval
                    && self.settings.kernel_check_interval != Some(k)
                {
                    self.settings.kernel_check_interval = Some(k);
                    self.actions.push(crate::actions::Action::KernelCheck(
                        std::time::Duration::from_secs(u64::from(k)),
                    ));
                }
            }
            Statement::Interface(name, o) => {
                mac_auth(&self.config, &self.config.interface_options(name).merged(o))?;
                if !self.ifaces.iter().any(|i| i.name == *name) {
                    self.ifaces.push(Iface {
                        name: name.clone(),
                        ifindex: None,
                        link_local: None,
                        ipv4: None,
                        mtu: 1500,
                        wireless: false,
                        point_to_point: false,
                        link_up: false,
                        running: false,
                    });
                }
                // The interface may exist already.
                self.actions.push(crate::actions::Action::SyncInterfaces);
            }
            Statement::Default(_) | Statement::Key(_) => {}
            Statement::Filter(..) => return Err("filters cannot change at runtime".to_owned()),
            Statement::TunnelPolicy(name, key, policy) => {
                let t = self
                    .tunnels
                    .iter()
                    .find(|t| t.lock().is_ok_and(|t| t.name == *name))
                    .ok_or_else(|| format!("no tunnel {name}"))?;
                let mut t = t.lock().map_err(|_| "tunnel state poisoned".to_owned())?;
                if !t.peers.is_empty() && !t.peers.iter().any(|p| p.public_key == key.to_base64()) {
                    return Err(format!("no such peer on {name}"));
                }
                t.pending.push((*key, *policy));
            }
            Statement::Mesh(m) => {
                let mut next = self.config.mesh.clone();
                next.apply(m.clone());
                for v in &self.mesh {
                    let mut v = v.lock().map_err(|_| "mesh state poisoned".to_owned())?;
                    v.policy = next.policy.clone();
                    v.policy_generation += 1;
                }
            }
            Statement::Exit(_) => return Err("exits cannot change at runtime".to_owned()),
            Statement::Tunnel(..) | Statement::TunnelPeer(..) => {
                return Err("tunnels cannot change at runtime".to_owned());
            }
            Statement::Pay(crate::payments::PayStatement::Withhold(on)) => {
                self.payments
                    .withhold
                    .store(*on, std::sync::atomic::Ordering::Relaxed);
            }
            Statement::Pay(_) => return Err("only pay-withhold changes at runtime".to_owned()),
            Statement::Verify(_) => {
                return Err("verification cannot change at runtime".to_owned());
            }
            Statement::Settlement(words) => {
                // A request, not a setting: it is not kept in the configuration.
                let mut board = self
                    .payments
                    .settlement
                    .lock()
                    .map_err(|_| "settlement state poisoned".to_owned())?;
                return board.request(words.clone());
            }
        }
        self.config.apply(s);
        Ok(())
    }

    /// A JSON document of the dump.
    pub fn dump_json(&self, now: Instant) -> String {
        #[derive(Serialize)]
        struct J<'a> {
            router_id: String,
            seqno: u16,
            fee: u32,
            interfaces: Vec<JIface<'a>>,
            neighbours: Vec<JNeigh>,
            xroutes: Vec<JXroute>,
            routes: Vec<JRoute>,
            tunnels: Vec<TunnelState>,
            mesh: Vec<crate::discovery::MeshView>,
            meters: Vec<crate::payments::MeterRow>,
            payments: Vec<crate::payments::PaymentRow>,
            exits: Option<crate::exit::ExitView>,
            #[serde(skip_serializing_if = "Option::is_none")]
            verify: Option<crate::verification::VerificationReport>,
        }
        #[derive(Serialize)]
        struct JIface<'a> {
            name: &'a str,
            ifindex: Option<u32>,
            up: bool,
            ipv6: Option<Ipv6Addr>,
            ipv4: Option<Ipv4Addr>,
        }
        #[derive(Serialize)]
        struct JNeigh {
            address: IpAddr,
            interface: String,
            reach: u16,
            ureach: u16,
            rxcost: u16,
            txcost: u16,
            rtt_ms: Option<f64>,
            rttcost: u16,
            cost: u16,
        }
        #[derive(Serialize)]
        struct JXroute {
            prefix: String,
            from: Option<String>,
            metric: u16,
        }
        #[derive(Serialize)]
        struct JRoute {
            prefix: String,
            from: Option<String>,
            installed: bool,
            feasible: bool,
            router_id: String,
            metric: u16,
            smoothed_metric: u16,
            refmetric: u16,
            price: u32,
            fee: u32,
            seqno: u16,
            age_s: u64,
            via: IpAddr,
            interface: String,
            full_path_rtt_us: u32,
        }
        let tunnels = self
            .tunnels
            .iter()
            .filter_map(|t| t.lock().ok().map(|t| t.clone()))
            .collect();
        let j = J {
            verify: self
                .verification
                .as_ref()
                .map(|v| v.report(now, &self.verify_engine_side(now), |i| self.ifname(i))),
            tunnels,
            meters: crate::payments::rows(&self.meters),
            payments: self.payments.rows(),
            exits: self
                .exits
                .as_ref()
                .and_then(|e| e.lock().ok().map(|e| e.clone())),
            mesh: self
                .mesh
                .iter()
                .filter_map(|m| m.lock().ok().map(|m| m.clone()))
                .collect(),
            router_id: self.engine.router_id().to_string(),
            seqno: self.engine.seqno(),
            fee: self.engine.fee(),
            interfaces: self
                .ifaces
                .iter()
                .map(|i| JIface {
                    name: &i.name,
                    ifindex: i.ifindex,
                    up: i.running,
                    ipv6: i.link_local,
                    ipv4: i.ipv4,
                })
                .collect(),
            neighbours: self
                .engine
                .neighbours(now)
                .iter()
                .map(|n| JNeigh {
                    address: n.address,
                    interface: self.ifname(n.ifindex),
                    reach: n.reach,
                    ureach: n.ureach,
                    rxcost: n.rxcost.0,
                    txcost: n.txcost.0,
                    // Whole microseconds over 1000, so that the number prints as the text
                    // dump's milliseconds do (1.447, not 1.4469999999999998).
                    rtt_ms: n.rtt.map(|d| d.as_micros() as f64 / 1000.0),
                    rttcost: n.rttcost.0,
                    cost: n.cost.0,
                })
                .collect(),
            xroutes: self
                .engine
                .xroutes()
                .iter()
                .map(|x| JXroute {
                    prefix: x.prefix.to_string(),
                    from: x.src_prefix.map(|p| p.to_string()),
                    metric: x.metric.0,
                })
                .collect(),
            routes: self
                .engine
                .routes(now)
                .iter()
                .map(|r| JRoute {
                    prefix: r.prefix.to_string(),
                    from: r.src_prefix.map(|p| p.to_string()),
                    installed: r.installed,
                    feasible: r.feasible,
                    router_id: r.router_id.to_string(),
                    metric: r.metric.0,
                    smoothed_metric: r.smoothed_metric.0,
                    refmetric: r.refmetric.0,
                    price: r.received_price,
                    fee: r.fee,
                    seqno: r.seqno.0,
                    age_s: r.age.as_secs(),
                    via: r.via,
                    interface: self.ifname(r.ifindex),
                    full_path_rtt_us: r.full_path_rtt,
                })
                .collect(),
        };
        serde_json::to_string(&j).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// The daemon as a control client sees it at one instant: what [`Handler`] answers is read
/// at `now`, which the main loop passes in (the daemon keeps no clock of its own).
pub struct At<'a> {
    /// The daemon.
    pub daemon: &'a mut Daemon,
    /// The engine's time of this message.
    pub now: Instant,
}

impl Daemon {
    /// The daemon at `now`, for a control client's message.
    pub fn at(&mut self, now: Instant) -> At<'_> {
        At { daemon: self, now }
    }
}

impl Handler for At<'_> {
    fn dump(&mut self) -> Vec<String> {
        self.daemon.dump_lines(self.now)
    }

    fn dump_json(&mut self) -> String {
        self.daemon.dump_json(self.now)
    }

    fn counters(&mut self) -> Vec<String> {
        self.daemon
            .engine
            .counters()
            .named()
            .iter()
            .map(|(name, v)| format!("counter {name} {v}"))
            .collect()
    }

    fn metrics(&mut self) -> String {
        crate::metrics::render(self.daemon, self.now)
    }

    fn statement(&mut self, s: Statement) -> Result<(), String> {
        self.daemon.apply_runtime(self.now, s)
    }

    fn flush_interface(&mut self, name: &str) -> Result<(), String> {
        let d = &mut *self.daemon;
        let Some(pos) = d.ifaces.iter().position(|i| i.name == name) else {
            return Err("No such interface".to_owned());
        };
        let i = d.ifaces.remove(pos);
        if let (Some(ix), true) = (i.ifindex, i.running) {
            d.input(self.now, Input::InterfaceDown { ifindex: ix });
            d.actions
                .push(crate::actions::Action::LeaveGroup { ifindex: ix });
        }
        d.config.interfaces.retain(|(n, _)| n != name);
        Ok(())
    }
}

/// RFC 8967 authentication of an interface from its `key` and `accept-bad-signatures` options
/// and the `key` statements: `None` without a key; an error for an unknown key or type `none`.
pub fn mac_auth(config: &DaemonConfig, o: &InterfaceOptions) -> Result<Option<MacAuth>, String> {
    let Some(id) = &o.key else {
        return Ok(None);
    };
    let k = config
        .keys
        .iter()
        .find(|k| k.id == *id)
        .ok_or_else(|| format!("no key {id:?}"))?;
    let algorithm = match k.kind {
        KeyType::HmacSha256 => MacAlgorithm::HmacSha256,
        KeyType::Blake2s128 => MacAlgorithm::Blake2s128,
        KeyType::None => return Err(format!("key {id:?} has type none")),
    };
    let key = MacKey::new(algorithm, &k.value).map_err(|e| format!("key {id:?}: {e}"))?;
    Ok(Some(MacAuth {
        keys: vec![key],
        accept_bad_signatures: o.accept_bad_signatures == Some(true),
    }))
}

/// A stable id for a neighbour line.
pub fn neighbour_id(ifindex: u32, address: IpAddr) -> u64 {
    let a = address.to_string();
    line_id(&[b"neigh", &ifindex.to_be_bytes(), a.as_bytes()])
}

/// RFC 9616 options as babeld 1.12 applies them (`interface.c`): `rtt-decay`, `rtt-min` and
/// `rtt-max` of 0 mean the default (42, 10 ms, 120 ms); an `rtt-max` not above `rtt-min`
/// becomes `rtt-min` + 10 ms; `max-rtt-penalty 0` on a tunnel keeps the tunnel's 96.
fn rtt_options(c: &mut InterfaceConfig, o: &InterfaceOptions) {
    if let Some(d) = o.rtt_decay.filter(|d| *d > 0) {
        c.rtt_decay = d.min(256);
    }
    if let Some(p) = o
        .max_rtt_penalty
        .filter(|p| *p > 0 || c.kind != InterfaceKind::Tunnel)
    {
        c.max_rtt_penalty = p;
    }
    if let Some(us) = o.rtt_min_us.filter(|us| *us > 0) {
        c.rtt_min = Duration::from_micros(u64::from(us));
    }
    if let Some(us) = o.rtt_max_us.filter(|us| *us > 0) {
        c.rtt_max = Duration::from_micros(u64::from(us));
    }
    if c.rtt_max <= c.rtt_min {
        tracing::warn!(
            interface = %c.name,
            "rtt-max is not above rtt-min; using rtt-min + 10 ms, as babeld"
        );
        c.rtt_max = c.rtt_min + Duration::from_millis(10);
    }
    if c.max_rtt_penalty > 0 && !c.timestamps {
        tracing::warn!(
            interface = %c.name,
            "max-rtt-penalty is set but timestamps are disabled"
        );
    }
}

/// babeld's interface defaults per kind, then the options.
pub fn interface_config(
    o: &InterfaceOptions,
    iface: &Iface,
    link_local: Ipv6Addr,
    s: &Settings,
    flavour: Flavour,
) -> InterfaceConfig {
    let kind = match o.kind.unwrap_or_default() {
        ConfiguredKind::Wired => InterfaceKind::Wired,
        ConfiguredKind::Wireless => InterfaceKind::Wireless,
        ConfiguredKind::Tunnel => InterfaceKind::Tunnel,
        // Babel never runs on a mesh interface itself, only on its tunnels.
        ConfiguredKind::Mesh => InterfaceKind::Wired,
        ConfiguredKind::Auto if s.all_wireless || iface.wireless => InterfaceKind::Wireless,
        // Ours: babeld 1.12 only tells wireless from not; a point-to-point device is a tunnel.
        ConfiguredKind::Auto if iface.point_to_point => InterfaceKind::Tunnel,
        ConfiguredKind::Auto => InterfaceKind::Wired,
    };
    let mut c = InterfaceConfig::new(iface.name.clone(), kind, IpAddr::V6(link_local));
    if o.kind.unwrap_or_default() == ConfiguredKind::Auto {
        // babeld applies split horizon only to interfaces declared `type wired`: one it merely
        // did not find to be wireless gets wired costs but sends routes back where they came
        // from (seen in spec/captures/babeld-1.12-plain.jsonl).
        c.split_horizon = false;
    }
    let flag_hello = if kind == InterfaceKind::Wireless {
        s.hello_wireless_ms
    } else {
        s.hello_wired_ms
    };
    if let Some(ms) = o.hello_interval_ms.or(flag_hello) {
        c.hello_interval = Duration::from_millis(u64::from(ms));
        c.update_interval = c.hello_interval * 4;
    }
    if let Some(ms) = o.update_interval_ms {
        c.update_interval = Duration::from_millis(u64::from(ms));
    }
    if let Some(r) = o.rxcost {
        c.rxcost = r;
    }
    if s.no_split_horizon {
        c.split_horizon = false;
    }
    if let Some(Some(b)) = o.split_horizon {
        c.split_horizon = b;
    }
    if let Some(Some(b)) = o.link_quality {
        c.link_quality = b;
    }
    if let Some(b) = o.enable_timestamps {
        c.timestamps = b;
    }
    rtt_options(&mut c, o);
    // babeld's `unicast`; configured neighbours (ours) imply it unless `unicast false`.
    c.unicast = o.unicast.unwrap_or(!o.neighbours.is_empty());
    c.neighbours = o.neighbours.iter().map(|a| IpAddr::V6(*a)).collect();
    c.flavour = flavour;
    c.mtu = iface.mtu;
    c.ipv4 = iface.ipv4;
    // Althea's fork (babeld 1.8) cannot parse AE 4: in its dialect IPv4 crosses only links
    // with an IPv4 address (AE 1, IPv4 next hop) unless `v4-via-v6 true` is explicit.
    c.v4_via_v6 = o
        .v4_via_v6
        .unwrap_or(s.kernel_safe_v4_via_v6 && flavour != Flavour::Althea);
    c
}

#[cfg(test)]
mod tests {
    use super::kernel_at_least;

    #[test]
    fn kernel_release_comparison_as_babeld() {
        assert!(kernel_at_least("6.1.0-27-amd64", 5, 13));
        assert!(kernel_at_least("5.13.0", 5, 13));
        assert!(!kernel_at_least("5.12.19-foo", 5, 13));
        assert!(!kernel_at_least("4.19.0", 5, 2));
        assert!(kernel_at_least("10.0", 5, 13));
        assert!(!kernel_at_least("garbage", 5, 13));
        assert!(!kernel_at_least("", 5, 13));
    }
}

#[cfg(test)]
mod rtt_option_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use babel_core::InterfaceKind;

    fn apply(kind: InterfaceKind, o: &InterfaceOptions) -> InterfaceConfig {
        let mut c = InterfaceConfig::new("t0", kind, IpAddr::V6(Ipv6Addr::LOCALHOST));
        if let Some(b) = o.enable_timestamps {
            c.timestamps = b;
        }
        rtt_options(&mut c, o);
        c
    }

    #[test]
    fn babeld_rtt_defaults_and_fixups() {
        let none = InterfaceOptions::default();
        let t = apply(InterfaceKind::Tunnel, &none);
        assert!(t.timestamps);
        assert_eq!(
            (t.max_rtt_penalty, t.rtt_decay, t.rtt_min, t.rtt_max),
            (
                96,
                42,
                Duration::from_millis(10),
                Duration::from_millis(120)
            )
        );
        let w = apply(InterfaceKind::Wired, &none);
        assert!(!w.timestamps);
        assert_eq!(w.max_rtt_penalty, 0);
        // `max-rtt-penalty 0` cannot switch a tunnel's penalty off in babeld; elsewhere it is 0.
        let zero = InterfaceOptions {
            max_rtt_penalty: Some(0),
            rtt_decay: Some(0),
            rtt_min_us: Some(0),
            ..InterfaceOptions::default()
        };
        let t0 = apply(InterfaceKind::Tunnel, &zero);
        assert_eq!((t0.max_rtt_penalty, t0.rtt_decay), (96, 42));
        assert_eq!(t0.rtt_min, Duration::from_millis(10));
        let set = InterfaceOptions {
            max_rtt_penalty: Some(500),
            rtt_decay: Some(128),
            rtt_min_us: Some(50_000),
            rtt_max_us: Some(40_000),
            ..InterfaceOptions::default()
        };
        let s = apply(InterfaceKind::Wired, &set);
        assert_eq!((s.max_rtt_penalty, s.rtt_decay), (500, 128));
        // rtt-max not above rtt-min: rtt-min + 10 ms.
        assert_eq!(s.rtt_max, Duration::from_millis(60));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod key_tests {
    use super::*;

    fn config(text: &str) -> DaemonConfig {
        let mut c = DaemonConfig::default();
        c.parse_text("test", text).unwrap();
        c
    }

    #[test]
    fn interface_key_becomes_the_engine_key_set() {
        let c = config(
            "key id k1 type hmac-sha256 value 0011\nkey id k2 type blake2s128 value 22\n\
             interface eth0 key k1\ninterface eth1 key k2 accept-bad-signatures true\n\
             interface eth2\n",
        );
        let a0 = mac_auth(&c, &c.interface_options("eth0")).unwrap().unwrap();
        assert_eq!(a0.keys.len(), 1);
        assert_eq!(a0.keys[0].algorithm(), MacAlgorithm::HmacSha256);
        assert!(!a0.accept_bad_signatures);
        let a1 = mac_auth(&c, &c.interface_options("eth1")).unwrap().unwrap();
        assert_eq!(a1.keys[0].algorithm(), MacAlgorithm::Blake2s128);
        assert!(a1.accept_bad_signatures);
        assert_eq!(mac_auth(&c, &c.interface_options("eth2")).unwrap(), None);
    }

    #[test]
    fn unknown_or_none_keys_are_errors() {
        let c = config("key id n type none\ninterface eth0 key nope\ninterface eth1 key n\n");
        assert!(mac_auth(&c, &c.interface_options("eth0")).is_err());
        assert!(mac_auth(&c, &c.interface_options("eth1")).is_err());
    }
}

#[cfg(test)]
mod unicast_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings() -> Settings {
        Settings::babeld(String::new())
    }

    fn iface(point_to_point: bool) -> Iface {
        Iface {
            name: "wg0".into(),
            ifindex: Some(3),
            link_local: None,
            ipv4: None,
            mtu: 1420,
            wireless: false,
            point_to_point,
            link_up: true,
            running: false,
        }
    }

    fn cfg(line: &str, p2p: bool) -> InterfaceConfig {
        let mut c = crate::config::DaemonConfig::default();
        c.parse_text("t", line).unwrap();
        let o = c.interface_options("wg0");
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        interface_config(&o, &iface(p2p), ll, &settings(), Flavour::Standard)
    }

    #[test]
    fn split_horizon_only_on_declared_wired_interfaces_as_babeld() {
        let auto = cfg("interface wg0\n", false);
        assert_eq!(auto.kind, InterfaceKind::Wired);
        assert!(!auto.split_horizon);
        assert!(cfg("interface wg0 type wired\n", false).split_horizon);
        assert!(cfg("interface wg0 split-horizon true\n", false).split_horizon);
        assert!(!cfg("interface wg0 type wireless\n", false).split_horizon);
    }

    #[test]
    fn neighbours_imply_unicast_and_point_to_point_means_tunnel() {
        let c = cfg("interface wg0 neighbour fe80::2\n", false);
        assert!(c.unicast);
        assert_eq!(c.neighbours, vec!["fe80::2".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.kind, InterfaceKind::Wired);
        assert!(!cfg("interface wg0 neighbour fe80::2 unicast false\n", false).unicast);
        assert!(cfg("interface wg0 unicast true\n", false).unicast);
        assert!(!cfg("interface wg0\n", false).unicast);
        let t = cfg("interface wg0\n", true);
        assert_eq!(t.kind, InterfaceKind::Tunnel);
        assert!(t.timestamps && !t.split_horizon && t.max_rtt_penalty == 96);
        assert_eq!(
            cfg("interface wg0 type wired\n", true).kind,
            InterfaceKind::Wired
        );
    }
}

#[cfg(test)]
mod monitor_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use babel_core::{Destination, Engine, EngineConfig};
    use babel_wire::{EncodeOptions, Hello, INFINITY, Ihu, Message, RouterId, Update, encode};

    const US: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const NB: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

    /// The one instant these tests run at: every input and reading passes it.
    fn now() -> Instant {
        Instant::from_secs(1)
    }

    fn feed(d: &mut Daemon, msgs: Vec<Message>) -> Vec<Event> {
        for p in encode(&msgs, &EncodeOptions::default()).unwrap() {
            d.input(
                now(),
                Input::Packet {
                    ifindex: 1,
                    src: IpAddr::V6(NB),
                    dst: Destination::Multicast,
                    bytes: p.to_vec(),
                },
            );
        }
        d.engine.drain().events
    }

    fn update(i: u16, metric: u16) -> Message {
        Message::Update(Update {
            prefix: Some(
                Prefix::new(
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 0)),
                    64,
                )
                .unwrap(),
            ),
            v4_via_v6: false,
            src_prefix: None,
            interval: 1600,
            seqno: 7,
            metric,
            router_id: Some(RouterId([2, 0, 0, 0, 0, 0, 1, i as u8])),
            next_hop: None,
            price: None,
            path_rtt: None,
            diversity: None,
        })
    }

    /// A daemon whose engine has interface 1 (`eth0`) and one neighbour on it.
    fn daemon() -> Daemon {
        let now = now();
        let mut cfg = EngineConfig::new(RouterId([2, 0, 0, 0, 0, 0, 0, 1]));
        cfg.seqno = Some(1);
        let mut e = Engine::new(cfg, now).unwrap();
        e.interface_up(
            now,
            1,
            InterfaceConfig::new("eth0", InterfaceKind::Wired, IpAddr::V6(US)),
        );
        let iface = Iface {
            name: "eth0".into(),
            ifindex: Some(1),
            link_local: Some(US),
            ipv4: None,
            mtu: 1500,
            wireless: false,
            point_to_point: false,
            link_up: true,
            running: true,
        };
        let mut d = Daemon::new(
            RecordingDriver::new(e),
            DaemonConfig::default(),
            vec![iface],
            Settings::babeld("t".into()),
        );
        for seq in 1..=2u16 {
            feed(
                &mut d,
                vec![
                    Message::Hello(Hello {
                        unicast: false,
                        seqno: seq,
                        interval: 400,
                        timestamp: None,
                    }),
                    Message::Ihu(Ihu {
                        address: Some(IpAddr::V6(US)),
                        rxcost: 96,
                        interval: 1200,
                        timestamp: None,
                    }),
                ],
            );
        }
        d
    }

    fn lines(d: &mut Daemon, events: &[Event]) -> Vec<String> {
        let mut text = String::new();
        let n = d.write_monitor_lines(now(), events, &mut text);
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        assert_eq!(n, lines.len());
        lines
    }

    fn dumped(d: &Daemon, prefix: &str) -> String {
        d.dump_lines(now())
            .into_iter()
            .find(|l| l.starts_with("add route") && l.contains(&format!(" prefix {prefix} ")))
            .unwrap()
    }

    /// A control client's `interface` statement reads nothing from the kernel: it queues a
    /// synchronisation, which starts the interface from the links and addresses last read
    /// (kept in the daemon's state), and an interface the last reading did not show waits.
    #[test]
    fn interface_statement_is_matched_against_the_links_last_read() {
        use crate::actions::Action;
        use crate::config::{Context, parse_statement};
        use kernel_fib::{AddressInfo, LinkInfo};
        let mut d = daemon();
        d.links = vec![LinkInfo {
            index: 7,
            name: "eth1".into(),
            flags: 0x1 | 0x40,
            mtu: Some(1500),
            operstate: None,
            carrier: None,
            hw_addr: Vec::new(),
        }];
        d.addrs = vec![AddressInfo {
            index: 7,
            address: "fe80::7".parse().unwrap(),
            prefix_len: 64,
            flags: 0,
            scope: 253,
            label: None,
        }];
        for name in ["eth1", "eth9"] {
            let s = parse_statement(&format!("interface {name}"), Context::Runtime)
                .unwrap()
                .unwrap();
            d.at(now()).statement(s).unwrap();
        }
        assert_eq!(
            std::mem::take(&mut d.actions),
            [Action::SyncInterfaces, Action::SyncInterfaces]
        );
        let actions = crate::iface_sync::sync_interfaces(&mut d.ifaces, &d.links, &d.addrs, false);
        assert!(
            actions.contains(&Action::StartInterface { ifindex: 7 }),
            "{actions:?}"
        );
        let eth9 = d.ifaces.iter().find(|i| i.name == "eth9").unwrap();
        assert!(eth9.ifindex.is_none() && !eth9.running);
    }

    /// The daemon keeps no clock: a dump is read at the instant the caller passes, so the same
    /// state read later (ten IHU intervals of 12 s without an IHU, where babeld gives the
    /// txcost up; RFC 8966 §3.4.2) shows the neighbour's txcost infinite, with no input in
    /// between.
    #[test]
    fn dump_is_read_at_the_instant_passed() {
        let d = daemon();
        let neighbour = |at: Instant| {
            d.dump_lines(at)
                .into_iter()
                .find(|l| l.starts_with("add neighbour"))
                .unwrap()
        };
        assert!(
            neighbour(now()).contains(" txcost 96 "),
            "{}",
            neighbour(now())
        );
        let later = now() + std::time::Duration::from_secs(130);
        assert!(
            neighbour(later).contains(" txcost 65535 "),
            "{}",
            neighbour(later)
        );
        // Reading changed nothing: the earlier instant still reads as before.
        assert_eq!(neighbour(now()), neighbour(now()));
        assert!(neighbour(now()).contains(" txcost 96 "));
    }

    /// Lines show routes as they are after the drain, `change`/`flush` repeat the `add` line's
    /// fields, and a route no monitor saw gets no `flush` line (as before the line cache held
    /// fields instead of text).
    #[test]
    fn route_lines_add_change_flush() {
        let mut d = daemon();
        // Learned while nobody monitors.
        for e in feed(&mut d, vec![update(9, 100)]) {
            d.forget_monitored(&e);
        }
        let events = feed(&mut d, vec![update(1, 100), update(2, 200)]);
        let got = lines(&mut d, &events);
        let (a, b) = (dumped(&d, "2001:db8:1::/64"), dumped(&d, "2001:db8:2::/64"));
        assert!(
            a.contains(" installed yes ") && a.ends_with(" via fe80::2 if eth0"),
            "{a}"
        );
        let change = |l: &str| l.replacen("add ", "change ", 1);
        assert_eq!(got, [a.clone(), change(&a), b.clone(), change(&b)]);
        // A retraction: a change line with an infinite metric, then the route is unselected.
        let events = feed(&mut d, vec![update(1, INFINITY)]);
        let got = lines(&mut d, &events);
        assert!(
            !got.is_empty()
                && got
                    .iter()
                    .all(|l| l.starts_with("change route ") && l.contains(" metric 65535 ")),
            "{got:?}"
        );
        let last = got.last().unwrap().clone();
        // The interface goes: every route is flushed; the flush lines repeat the last lines
        // printed, and the route learned unmonitored has none.
        d.input(now(), Input::InterfaceDown { ifindex: 1 });
        let events = d.engine.drain().events;
        let got: Vec<String> = lines(&mut d, &events)
            .into_iter()
            .filter(|l| l.contains(" route "))
            .collect();
        assert_eq!(
            got,
            [
                last.replacen("change ", "flush ", 1),
                b.replacen("add ", "flush ", 1)
            ]
        );
    }
}
