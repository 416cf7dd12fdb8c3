//! Source-specific routes without IPv6 subtrees: the policy-rule projection (RFC 9079 §6.1,
//! babeld's `ipv6-subtrees false` before 1.10).
//!
//! With native subtrees (`CONFIG_IPV6_SUBTREES`, Linux ≥ 3.11) a source-specific route is one
//! kernel route with `RTA_SRC`, and the kernel's lookup already follows RFC 9079 §5.2: the most
//! specific destination first, then the most specific source. Nothing else is needed.
//!
//! Without them, each source prefix S gets a routing table T(S) and a rule
//! `from S lookup T(S)`; rules are ordered so that a more specific source comes first. IPv6 rule
//! lookups fall through to the next rule when a table has no matching route, so the main table
//! still serves what no source table covers. Left alone, this orders by source first, which is
//! the wrong order (RFC 9079 §5.3): a packet from S to a destination that has a more specific
//! route with a less specific source would take T(S)'s less specific route. [`SourceTables`]
//! fixes that the way babeld's old disambiguation did: for every route R = (D' from S') that
//! conflicts with a route (D from S) of T(S) — D' strictly inside D, S strictly inside S' — it
//! also installs D' in T(S) with R's next hop (the intersection zone D' × S belongs to R). When
//! several such R share D', the one with the most specific source wins; a route of S itself
//! with destination D' wins over all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv6Addr;

use babel_wire::Prefix;

use crate::KernelRoute;

/// babeld's `first-rule-priority` default.
pub const DEFAULT_FIRST_RULE_PRIORITY: u32 = 100;
/// babeld's first source table (`src_table_idx`).
pub const DEFAULT_FIRST_SOURCE_TABLE: u32 = 10;
/// At most this many source prefixes get a table (babeld: `SRC_TABLE_NUM`); routes of further
/// sources are not installed.
pub const DEFAULT_MAX_SOURCE_TABLES: usize = 32;

/// A policy rule `from SRC [fwmark MARK] lookup TABLE priority PRIORITY proto PROTOCOL`: the
/// source tables' `from SRC` rules, and route verification's `fwmark MARK` rules that send a
/// marked probe through the route under test (`from ::/0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelRule {
    /// Source prefix (`FRA_SRC`, `src_len`); the family's default prefix matches any source.
    pub src: Prefix,
    /// Firewall mark the packet must carry, whole (`FRA_FWMARK` with `FRA_FWMASK` all ones);
    /// `None`: any mark.
    pub fwmark: Option<u32>,
    /// Table to look up (`FRA_TABLE`).
    pub table: u32,
    /// Priority (`FRA_PRIORITY`); lower is tried first.
    pub priority: u32,
    /// Protocol tag (`FRA_PROTOCOL`, Linux ≥ 4.17), ours is 42.
    pub protocol: u8,
}

impl KernelRule {
    /// `fwmark MARK lookup TABLE` for IPv6 packets from any source (route verification's probe
    /// rules).
    pub fn fwmark_v6(mark: u32, table: u32, priority: u32, protocol: u8) -> KernelRule {
        KernelRule {
            // `::/0` (a length of 0 is valid for every address; the fallback is never taken).
            src: Prefix::new(Ipv6Addr::UNSPECIFIED.into(), 0)
                .unwrap_or_else(|_| Prefix::host(Ipv6Addr::UNSPECIFIED.into())),
            fwmark: Some(mark),
            table,
            priority,
            protocol,
        }
    }
}

impl fmt::Display for KernelRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: from {}", self.priority, self.src)?;
        if let Some(m) = self.fwmark {
            write!(f, " fwmark {m:#x}")?;
        }
        write!(f, " lookup {} proto {}", self.table, self.protocol)
    }
}

/// What the projection wants in the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Projection {
    /// Routes in the source tables (no `src`; the rule selects the source).
    pub routes: Vec<KernelRoute>,
    /// One rule per source prefix, more specific sources at lower priorities.
    pub rules: Vec<KernelRule>,
    /// Source-specific routes left out because there were more sources than tables, or
    /// because they were IPv4.
    pub dropped: usize,
}

/// The table allocation of the rule projection, kept stable while a source prefix is in use.
#[derive(Clone, Debug)]
pub struct SourceTables {
    first_priority: u32,
    first_table: u32,
    max: usize,
    protocol: u8,
    tables: BTreeMap<Prefix, u32>,
}

impl SourceTables {
    /// Rules from priority `first_priority` on, tables from `first_table` on, at most `max`
    /// source prefixes; rules tagged with `protocol`.
    pub fn new(first_priority: u32, first_table: u32, max: usize, protocol: u8) -> SourceTables {
        SourceTables {
            first_priority,
            first_table,
            max,
            protocol,
            tables: BTreeMap::new(),
        }
    }

    /// The priorities this projection may use (for cleaning up rules of an earlier run).
    pub fn priorities(&self) -> std::ops::Range<u32> {
        let n = u32::try_from(self.max).unwrap_or(u32::MAX);
        self.first_priority..self.first_priority.saturating_add(n)
    }

    /// The table of source prefix `src`, if it has one.
    pub fn table_of(&self, src: &Prefix) -> Option<u32> {
        self.tables.get(src).copied()
    }

    /// Projects `routes` (the source-specific routes with `src` set, and every other route
    /// we install, which may shadow them) onto source tables and rules. Routes without `src`
    /// are only read. RFC 9079 §5.3 ordering, see the module documentation.
    pub fn project<'a>(&mut self, routes: impl IntoIterator<Item = &'a KernelRoute>) -> Projection {
        let routes: Vec<&KernelRoute> = routes.into_iter().collect();
        let mut out = Projection::default();
        // Sources in use: IPv6 only (IPv4 source-specific routes are refused, as babeld ≥ 1.10).
        let mut sources: BTreeSet<Prefix> = BTreeSet::new();
        for r in &routes {
            if let Some(s) = r.src {
                if s.is_ipv4() || r.is_ipv4() || s.is_default() {
                    out.dropped += 1;
                } else {
                    sources.insert(s);
                }
            }
        }
        // Release the tables of sources that are gone, then give new sources a free table.
        self.tables.retain(|s, _| sources.contains(s));
        for s in &sources {
            if self.tables.contains_key(s) || self.tables.len() >= self.max {
                continue;
            }
            let used: BTreeSet<u32> = self.tables.values().copied().collect();
            let table = (0..u32::try_from(self.max).unwrap_or(u32::MAX))
                .map(|i| self.first_table.saturating_add(i))
                .find(|t| !used.contains(t));
            if let Some(t) = table {
                self.tables.insert(*s, t);
            }
        }
        // Rules: more specific sources first (longer prefixes at lower priorities), which
        // puts every source before the sources containing it.
        let mut ordered: Vec<(Prefix, u32)> = self.tables.iter().map(|(s, t)| (*s, *t)).collect();
        ordered.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        for (i, (src, table)) in ordered.iter().enumerate() {
            out.rules.push(KernelRule {
                src: *src,
                fwmark: None,
                table: *table,
                priority: self
                    .first_priority
                    .saturating_add(u32::try_from(i).unwrap_or(u32::MAX)),
                protocol: self.protocol,
            });
        }
        for (src, table) in &ordered {
            let natives: Vec<&KernelRoute> = routes
                .iter()
                .copied()
                .filter(|r| r.src == Some(*src) && !r.is_ipv4())
                .collect();
            // The routes of S itself.
            let mut chosen: BTreeMap<Prefix, (u8, &KernelRoute)> =
                natives.iter().map(|r| (r.dst, (src.len(), *r))).collect();
            // Conflicts: a more specific destination with a less specific source.
            for r in &routes {
                if r.is_ipv4() {
                    continue;
                }
                let r_src_len = match r.src {
                    None => 0,
                    Some(s) if s != *src && s.contains(src) => s.len(),
                    Some(_) => continue,
                };
                let conflicts = natives
                    .iter()
                    .any(|n| n.dst != r.dst && n.dst.contains(&r.dst));
                if !conflicts {
                    continue;
                }
                match chosen.get(&r.dst) {
                    Some((len, _)) if *len >= r_src_len => {}
                    _ => {
                        chosen.insert(r.dst, (r_src_len, *r));
                    }
                }
            }
            for (dst, (_, r)) in chosen {
                let mut k = (*r).clone().with_table(*table);
                k.dst = dst;
                k.src = None;
                out.routes.push(k);
            }
        }
        let dropped_sources = sources.len().saturating_sub(self.tables.len());
        if dropped_sources > 0 {
            out.dropped += routes
                .iter()
                .filter(|r| {
                    r.src
                        .is_some_and(|s| sources.contains(&s) && !self.tables.contains_key(&s))
                })
                .count();
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }
    fn via(dst: &str, src: Option<&str>, gw: &str) -> KernelRoute {
        let gw: IpAddr = gw.parse().unwrap();
        let mut r = KernelRoute::unicast(p(dst), Some(gw), Some(2));
        r.src = src.map(p);
        r
    }
    fn lines(pr: &Projection) -> Vec<String> {
        let mut v: Vec<String> = pr
            .routes
            .iter()
            .map(|r| format!("{} {} via {}", r.table, r.dst, r.gateway.unwrap()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn one_table_and_rule_per_source_more_specific_first() {
        let mut t = SourceTables::new(100, 10, 32, 42);
        let routes = [
            via("::/0", Some("2001:db8:1::/48"), "fe80::1"),
            via("::/0", Some("2001:db8::/32"), "fe80::2"),
            via("::/0", Some("2001:db8:2::/48"), "fe80::3"),
        ];
        let pr = t.project(&routes);
        let rules: Vec<String> = pr.rules.iter().map(ToString::to_string).collect();
        assert_eq!(
            rules,
            vec![
                "100: from 2001:db8:1::/48 lookup 11 proto 42",
                "101: from 2001:db8:2::/48 lookup 12 proto 42",
                "102: from 2001:db8::/32 lookup 10 proto 42",
            ]
        );
        assert_eq!(
            lines(&pr),
            vec![
                "10 ::/0 via fe80::2",
                "11 ::/0 via fe80::1",
                "12 ::/0 via fe80::3"
            ]
        );
        // Tables are stable: removing one source keeps the others' tables.
        let pr = t.project(&routes[1..]);
        assert_eq!(
            lines(&pr),
            vec!["10 ::/0 via fe80::2", "12 ::/0 via fe80::3"]
        );
        assert_eq!(pr.rules[0].priority, 100);
        assert_eq!(t.table_of(&p("2001:db8:1::/48")), None);
    }

    #[test]
    fn more_specific_destination_wins_over_more_specific_source() {
        // RFC 9079 §5.3: (2001:db8:ee::/64 from ::/0) beats (::/0 from S) for packets from S.
        let mut t = SourceTables::new(100, 10, 32, 42);
        let routes = [
            via("::/0", Some("2001:db8:2::/48"), "fe80::2"),
            via("2001:db8:ee::/64", None, "fe80::1"),
            // A less specific source covering S, with a more specific destination.
            via("2001:db8:ee::/96", Some("2001:db8::/32"), "fe80::3"),
            // Unrelated: not inside any destination of S's routes? (::/0 contains all) — but
            // its source is disjoint from S, so it must not be copied into T(S).
            via("2001:db8:dd::/64", Some("2001:db8:3::/48"), "fe80::4"),
            // Same destination as a native route: the native one stays.
            via("::/0", None, "fe80::5"),
        ];
        let pr = t.project(&routes);
        let tab = t.table_of(&p("2001:db8:2::/48")).unwrap();
        let in_s: Vec<String> = lines(&pr)
            .into_iter()
            .filter(|l| l.starts_with(&format!("{tab} ")))
            .collect();
        assert_eq!(
            in_s,
            vec![
                format!("{tab} 2001:db8:ee::/64 via fe80::1"),
                format!("{tab} 2001:db8:ee::/96 via fe80::3"),
                format!("{tab} ::/0 via fe80::2"),
            ]
        );
        // The copies have no source and live in T(S).
        assert!(pr.routes.iter().all(|r| r.src.is_none()));
    }

    #[test]
    fn most_specific_source_wins_a_shared_zone() {
        let mut t = SourceTables::new(100, 10, 32, 42);
        let routes = [
            via("::/0", Some("2001:db8:2::/48"), "fe80::2"),
            via("2001:db8:ee::/64", None, "fe80::1"),
            via("2001:db8:ee::/64", Some("2001:db8::/32"), "fe80::3"),
        ];
        let pr = t.project(&routes);
        let tab = t.table_of(&p("2001:db8:2::/48")).unwrap();
        assert!(lines(&pr).contains(&format!("{tab} 2001:db8:ee::/64 via fe80::3")));
        assert!(!lines(&pr).contains(&format!("{tab} 2001:db8:ee::/64 via fe80::1")));
    }

    #[test]
    fn bounded_and_ipv6_only() {
        let mut t = SourceTables::new(100, 10, 2, 42);
        let routes = [
            via("::/0", Some("2001:db8:1::/48"), "fe80::1"),
            via("::/0", Some("2001:db8:2::/48"), "fe80::2"),
            via("::/0", Some("2001:db8:3::/48"), "fe80::3"),
            via("10.0.0.0/8", Some("10.1.0.0/16"), "10.0.0.1"),
        ];
        let pr = t.project(&routes);
        assert_eq!(pr.rules.len(), 2);
        assert_eq!(pr.routes.len(), 2);
        assert_eq!(pr.dropped, 2);
        assert_eq!(t.priorities(), 100..102);
    }
}
