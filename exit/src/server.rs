//! The exit's side, as the daemon drives it: registration requests in, signed answers out;
//! metering in, signed bills out; payments in, service levels out (network paper, "Exit
//! nodes"; `spec/exits.md`).
//!
//! Ordering rule: a lease is committed before the [`Registered`] answer that announces it is
//! produced, and a bill's totals are committed before the bill is signed. A failed commit
//! produces nothing (the user retries).

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv6Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use payments::{Amount, Price, StoreError};

use crate::bill::{Account, ServiceThresholds, UserService};
use crate::payment::Transition;
use crate::pool::{Ipv4Pool, Ipv6Pool, Pool};
use crate::replay::{ExitReplayError, ReplayGuard};
use crate::store::{ExitStore, Lease};
use crate::wire::{ExitMessage, ExitRefusal, ExitWireError, Refused, Register, Registered};

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Who may register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Any key (it pays, or it gets the free tier).
    Open,
    /// Only these ed25519 payment keys.
    AllowList(BTreeSet<[u8; 32]>),
}

/// The user-to-exit tunnel's parameters the exit announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelParams {
    /// The exit's x25519 tunnel public key.
    pub key: [u8; 32],
    /// The exit's UDP port for the tunnel.
    pub port: u16,
    /// The tunnel interface's MTU on both ends (chosen by the daemon so that the tunnel's
    /// packets fit in the mesh tunnels that carry them).
    pub mtu: u16,
    /// The exit's IPv6 address inside the tunnel, if it carries IPv6.
    pub ipv6: Option<Ipv6Addr>,
}

/// An exit's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitConfig {
    /// Who may register.
    pub admission: Admission,
    /// Users' IPv4 addresses.
    pub ipv4_pool: Ipv4Pool,
    /// Users' IPv6 prefixes, if any.
    pub ipv6_pool: Option<Ipv6Pool>,
    /// How long a lease lasts after the user's newest registration (it is reclaimed only when
    /// the pool is full).
    pub lease: Duration,
    /// The tunnel.
    pub tunnel: TunnelParams,
    /// The exit's fee, wei per byte, both ways.
    pub fee: Price,
    /// The free tier, bits per second each way.
    pub free_tier_bps: u64,
    /// Throttle and cut thresholds.
    pub thresholds: ServiceThresholds,
    /// Requests are accepted within this much of the exit's clock.
    pub replay_window: Duration,
    /// Keys the replay guard remembers at most.
    pub replay_capacity: usize,
}

impl ExitConfig {
    /// A configuration with the defaults: open admission, leases of 30 days, MTU 1340 (1500
    /// minus two layers of 80 bytes of IPv6, UDP and tunnel overhead), 1 Mbit/s free tier,
    /// payments' default thresholds, a 5-minute replay window and 65536 remembered keys.
    pub fn new(ipv4_pool: Ipv4Pool, tunnel_key: [u8; 32], tunnel_port: u16, fee: Price) -> Self {
        ExitConfig {
            admission: Admission::Open,
            ipv4_pool,
            ipv6_pool: None,
            lease: Duration::from_secs(30 * 24 * 3600),
            tunnel: TunnelParams {
                key: tunnel_key,
                port: tunnel_port,
                mtu: 1340,
                ipv6: None,
            },
            fee,
            free_tier_bps: 1_000_000,
            thresholds: ServiceThresholds::default(),
            replay_window: Duration::from_secs(300),
            replay_capacity: 65536,
        }
    }
}

/// Why a request got no answer at all (the daemon counts and logs it; nothing is sent).
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// Not an authentic message (bad layout, bad signature, invalid key).
    #[error("request does not decode: {0}")]
    Wire(#[from] ExitWireError),
    /// An authentic message, but not a registration request.
    #[error("not a registration request")]
    NotARequest,
    /// A request for another exit.
    #[error("request for another exit")]
    WrongExit,
    /// The request's mesh address is not the one it came from (the daemon passes the source
    /// address; per-neighbour tunnels authenticate it).
    #[error("request claims {claimed} but came from {source_address}")]
    Source {
        /// The address in the request.
        claimed: Ipv6Addr,
        /// The packet's source.
        source_address: Ipv6Addr,
    },
    /// A replay (or an out-of-order request) from this key.
    #[error("replayed request")]
    Replay,
    /// The lease could not be committed; nothing was granted.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// The answer to a request, signed, and what it decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The signed answer to send back.
    pub reply: Vec<u8>,
    /// What was decided.
    pub decision: Decision,
}

/// What a registration decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Registered (or renewed): the daemon sets up (or updates) the user's tunnel peer and
    /// routes from this.
    Registered(Registered),
    /// Refused.
    Refused(ExitRefusal),
}

/// One user, for `show exits` and the daemon's tunnel and shaper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserView {
    /// The user's payment key.
    pub user: [u8; 32],
    /// Its lease.
    pub lease: Lease,
    /// Its IPv4 address.
    pub ipv4: std::net::Ipv4Addr,
    /// Its IPv6 prefix.
    pub ipv6_prefix: Option<(Ipv6Addr, u8)>,
    /// Cumulative bytes from it (billed and pending).
    pub upload_bytes: u64,
    /// Cumulative bytes to it (billed and pending).
    pub download_bytes: u64,
    /// Everything metered, in wei.
    pub metered: Amount,
    /// The newest bill's amount.
    pub billed: Amount,
    /// What its channel carries.
    pub paid: Amount,
    /// Metered minus paid.
    pub owed: Amount,
    /// Its service level.
    pub service: UserService,
}

/// Counters for `metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExitCounters {
    /// Requests that did not decode or verify.
    pub malformed: u64,
    /// Requests for another exit, from the wrong source, or not requests.
    pub misdirected: u64,
    /// Replays.
    pub replays: u64,
    /// Registrations granted (new and renewed).
    pub registered: u64,
    /// Registrations refused.
    pub refused: u64,
    /// Commits that failed.
    pub store_failures: u64,
}

/// The exit.
pub struct ExitServer<S: ExitStore> {
    cfg: ExitConfig,
    key: SigningKey,
    store: S,
    pool: Pool,
    replay: ReplayGuard,
    accounts: HashMap<[u8; 32], Account>,
    counters: ExitCounters,
}

impl<S: ExitStore> ExitServer<S> {
    /// Starts an exit: loads every lease and billed total from `store`. `key` is the exit's
    /// ed25519 payment key.
    pub fn open(
        cfg: ExitConfig,
        key: SigningKey,
        store: S,
        now: SystemTime,
    ) -> Result<Self, StoreError> {
        let stored = store.load()?;
        let lease_ms = u64::try_from(cfg.lease.as_millis()).unwrap_or(u64::MAX);
        let pool = Pool::new(cfg.ipv4_pool, cfg.ipv6_pool, lease_ms, stored.leases);
        let accounts = stored
            .totals
            .into_iter()
            .map(|(k, t)| (k, Account::restore(t)))
            .collect();
        let replay = ReplayGuard::new(cfg.replay_window, cfg.replay_capacity, unix_ms(now));
        Ok(ExitServer {
            cfg,
            key,
            store,
            pool,
            replay,
            accounts,
            counters: ExitCounters::default(),
        })
    }

    /// The exit's payment public key.
    pub fn key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The configuration.
    pub fn config(&self) -> &ExitConfig {
        &self.cfg
    }

    /// Counters.
    pub fn counters(&self) -> &ExitCounters {
        &self.counters
    }

    /// The store (for tests and for the daemon to share the database).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Handles a registration request that arrived from `source` (the packet's source
    /// address). Authentic, fresh requests get a signed answer (granted or refused with a
    /// reason); everything else gets an error and no answer.
    pub fn register(
        &mut self,
        now: SystemTime,
        source: Ipv6Addr,
        request: &[u8],
    ) -> Result<Answer, RegisterError> {
        let r = self.register_inner(now, source, request);
        let c = &mut self.counters;
        match &r {
            Ok(Answer {
                decision: Decision::Registered(_),
                ..
            }) => c.registered += 1,
            Ok(_) => c.refused += 1,
            Err(RegisterError::Wire(_)) => c.malformed += 1,
            Err(RegisterError::Replay) => c.replays += 1,
            Err(RegisterError::Store(_)) => c.store_failures += 1,
            Err(_) => c.misdirected += 1,
        }
        r
    }

    fn register_inner(
        &mut self,
        now: SystemTime,
        source: Ipv6Addr,
        request: &[u8],
    ) -> Result<Answer, RegisterError> {
        let req = match ExitMessage::decode(request)? {
            ExitMessage::Register(r) => r,
            _ => return Err(RegisterError::NotARequest),
        };
        if req.exit != self.key() {
            return Err(RegisterError::WrongExit);
        }
        if req.mesh_address != source {
            return Err(RegisterError::Source {
                claimed: req.mesh_address,
                source_address: source,
            });
        }
        let now_ms = unix_ms(now);
        match self.replay.check(&req.user, req.timestamp_ms, now_ms) {
            Ok(()) => {}
            Err(ExitReplayError::Replay) => return Err(RegisterError::Replay),
            Err(ExitReplayError::Window { .. }) => {
                return Ok(self.refuse(&req, ExitRefusal::ClockSkew, now_ms));
            }
        }
        if let Admission::AllowList(keys) = &self.cfg.admission {
            if !keys.contains(&req.user) {
                self.replay.accept(&req.user, req.timestamp_ms, now_ms);
                return Ok(self.refuse(&req, ExitRefusal::NotAllowed, now_ms));
            }
        }
        let Some(plan) = self
            .pool
            .plan(&req.user, req.tunnel_key, req.mesh_address, now_ms)
        else {
            self.replay.accept(&req.user, req.timestamp_ms, now_ms);
            return Ok(self.refuse(&req, ExitRefusal::PoolExhausted, now_ms));
        };
        let Some((ipv4, ipv6_prefix)) = self.pool.addresses(plan.lease.slot) else {
            return Ok(self.refuse(&req, ExitRefusal::PoolExhausted, now_ms));
        };
        // Durable before anything is answered. A renewal that changes nothing but the renewal
        // time is written at most once per 1/30 of the lease (a user re-registering in a loop
        // cannot make the exit sync its disk in a loop; a crash can then make a lease expire
        // that much early, which matters only when the pool is full).
        let stored = self.pool.lease(&req.user);
        let lease_ms = u64::try_from(self.cfg.lease.as_millis()).unwrap_or(u64::MAX);
        let only_renewed = stored.is_some_and(|l| {
            l.tunnel_key == plan.lease.tunnel_key
                && l.mesh_address == plan.lease.mesh_address
                && plan.lease.renewed_ms.saturating_sub(l.renewed_ms) < lease_ms / 30
        });
        if !only_renewed {
            self.store
                .commit_lease(&plan.user, &plan.lease, plan.evicted.as_ref())?;
        }
        let plan = match (only_renewed, stored) {
            // Keep the stored renewal time in memory too, so the next check measures from it.
            (true, Some(l)) => crate::pool::Plan { lease: *l, ..plan },
            _ => plan,
        };
        self.pool.apply(&plan);
        self.replay.accept(&req.user, req.timestamp_ms, now_ms);
        let granted = Registered {
            exit: self.key(),
            user: req.user,
            timestamp_ms: req.timestamp_ms,
            nonce: req.nonce,
            tunnel_key: self.cfg.tunnel.key,
            tunnel_port: self.cfg.tunnel.port,
            mtu: self.cfg.tunnel.mtu,
            ipv4,
            ipv4_prefix_len: self.cfg.ipv4_pool.prefix_len,
            exit_ipv4: self.cfg.ipv4_pool.exit_address(),
            exit_ipv6: self.cfg.tunnel.ipv6,
            ipv6_prefix,
            fee: self.cfg.fee,
            free_tier_bps: self.cfg.free_tier_bps,
        };
        Ok(Answer {
            reply: ExitMessage::Registered(granted).sign(&self.key),
            decision: Decision::Registered(granted),
        })
    }

    fn refuse(&self, req: &Register, reason: ExitRefusal, now_ms: u64) -> Answer {
        let m = ExitMessage::Refused(Refused {
            exit: self.key(),
            user: req.user,
            timestamp_ms: req.timestamp_ms,
            nonce: req.nonce,
            reason,
            exit_time_ms: now_ms,
        });
        Answer {
            reply: m.sign(&self.key),
            decision: Decision::Refused(reason),
        }
    }

    /// Meters a user's traffic in its tunnel: `upload` bytes received from it, `download` bytes
    /// sent to it, the download valued at the fee plus `route_back_price` (the price of the
    /// exit's installed route to the user's mesh address). Returns the user's service level
    /// after it, or `None` for a key without a lease (its traffic is not forwarded).
    pub fn meter(
        &mut self,
        user: &[u8; 32],
        upload: u64,
        download: u64,
        route_back_price: Price,
    ) -> Option<UserService> {
        self.pool.lease(user)?;
        let a = self.accounts.entry(*user).or_default();
        a.meter(upload, download, self.cfg.fee, route_back_price);
        Some(self.cfg.thresholds.service(a.owed()))
    }

    /// Sets what `user`'s payment channel to the exit carries (cumulative, from the payments
    /// crate's payee channel). Returns the service level after it, or `None` for a key that
    /// has neither a lease nor an account (nothing is recorded for it: memory stays bounded by
    /// the users the exit served).
    pub fn paid(&mut self, user: &[u8; 32], cumulative: Amount) -> Option<UserService> {
        if self.pool.lease(user).is_none() && !self.accounts.contains_key(user) {
            return None;
        }
        let a = self.accounts.entry(*user).or_default();
        a.set_paid(cumulative);
        Some(self.cfg.thresholds.service(a.owed()))
    }

    /// Credits a payment: `user`'s channel to the exit now carries `cumulative` (the payee
    /// end's accepted total, `ExitPayments::handle`). Returns the change of service level it
    /// caused, if any (a user paying below the close threshold is restored to full speed).
    pub fn credit(&mut self, user: &[u8; 32], cumulative: Amount) -> Option<Transition> {
        self.transition(user, |e| e.paid(user, cumulative))
    }

    /// Meters like [`ExitServer::meter`] and returns the change of service level it caused, if
    /// any (a user owing past the close threshold is throttled).
    pub fn meter_transition(
        &mut self,
        user: &[u8; 32],
        upload: u64,
        download: u64,
        route_back_price: Price,
    ) -> Option<Transition> {
        self.transition(user, |e| e.meter(user, upload, download, route_back_price))
    }

    fn transition(
        &mut self,
        user: &[u8; 32],
        change: impl FnOnce(&mut Self) -> Option<UserService>,
    ) -> Option<Transition> {
        let from = self.service(user)?;
        let to = change(self)?;
        (from != to).then_some(Transition {
            user: *user,
            from,
            to,
        })
    }

    /// `user`'s current bill, signed: its totals are committed first if anything was metered
    /// since the previous bill (then `seq` grows), else the previous bill is signed again
    /// (same content). `None` for a user never metered.
    pub fn bill(
        &mut self,
        now: SystemTime,
        user: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(a) = self.accounts.get(user) else {
            return Ok(None);
        };
        let totals = a.next_totals(unix_ms(now));
        if totals.seq == 0 {
            return Ok(None);
        }
        if totals != *a.billed() {
            if let Err(e) = self.store.commit_totals(user, &totals) {
                self.counters.store_failures += 1;
                return Err(e);
            }
            if let Some(a) = self.accounts.get_mut(user) {
                a.committed(totals);
            }
        }
        Ok(Some(
            ExitMessage::Bill(totals.bill(self.key(), *user)).sign(&self.key),
        ))
    }

    /// `user`'s service level.
    pub fn service(&self, user: &[u8; 32]) -> Option<UserService> {
        self.pool.lease(user)?;
        let owed = self
            .accounts
            .get(user)
            .map(|a| a.owed())
            .unwrap_or_default();
        Some(self.cfg.thresholds.service(owed))
    }

    /// One user.
    pub fn user(&self, user: &[u8; 32]) -> Option<UserView> {
        let lease = *self.pool.lease(user)?;
        let (ipv4, ipv6_prefix) = self.pool.addresses(lease.slot)?;
        let a = self.accounts.get(user).copied().unwrap_or_default();
        let t = a.next_totals(0);
        Some(UserView {
            user: *user,
            lease,
            ipv4,
            ipv6_prefix,
            upload_bytes: t.upload_bytes,
            download_bytes: t.download_bytes,
            metered: a.metered_amount(),
            billed: a
                .billed()
                .upload_amount
                .saturating_add(a.billed().download_amount),
            paid: a.paid(),
            owed: a.owed(),
            service: self.cfg.thresholds.service(a.owed()),
        })
    }

    /// Every user with a lease, ordered by key.
    pub fn users(&self) -> Vec<UserView> {
        let mut keys: Vec<_> = self.pool.leases().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        keys.iter().filter_map(|k| self.user(k)).collect()
    }
}
