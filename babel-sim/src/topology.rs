//! Topologies: line, ring, grid, full mesh, random geometric, and a text file format.
//!
//! ## File format
//!
//! One statement per line; `#` starts a comment; blank lines are ignored.
//!
//! ```text
//! nodes 4                       # number of nodes, numbered 0..n-1 (required, first)
//! link 0 1                      # a link with the default cost (96) and no loss
//! link 1 2 cost 256 loss 0.05   # rxcost 256 at both ends, 5 % loss each way
//! link 2 3 delay 20             # one-way delay in milliseconds (default: the sim's)
//! ```

use std::fmt;

use std::collections::BTreeMap;

use babel_core::Rng;

/// Default mean degree of `mesh:N`: a rooftop router's handful of neighbours.
pub const MESH_DEGREE: f64 = 6.0;

/// A link between two nodes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkSpec {
    /// One end.
    pub a: usize,
    /// The other end.
    pub b: usize,
    /// Link cost: the rxcost configured on both interfaces (wired: 96).
    pub cost: u16,
    /// Packet loss probability each way, in parts per million.
    pub loss_ppm: u32,
    /// One-way delay in milliseconds, `None` for the simulation default.
    pub delay_ms: Option<u64>,
}

impl LinkSpec {
    /// A lossless link of cost 96.
    pub fn new(a: usize, b: usize) -> LinkSpec {
        LinkSpec {
            a,
            b,
            cost: 96,
            loss_ppm: 0,
            delay_ms: None,
        }
    }
}

/// Nodes and links.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    /// A name (the spec it was built from).
    pub name: String,
    /// Number of nodes.
    pub nodes: usize,
    /// Links.
    pub links: Vec<LinkSpec>,
}

/// A topology spec that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// Unknown kind or bad syntax.
    #[error(
        "bad topology spec {0:?}: expected line:N, ring:N, grid:WxH, full:N, random:N[:RADIUS], mesh:N[:DEGREE] or file:PATH"
    )]
    Spec(String),
    /// A file problem.
    #[error("topology file {path}: {msg}")]
    File {
        /// Path.
        path: String,
        /// What went wrong.
        msg: String,
    },
}

/// Union-find: the root of `x`'s component, halving the path on the way.
fn find(c: &mut [usize], mut x: usize) -> usize {
    while let Some(&p) = c.get(x) {
        if p == x {
            break;
        }
        let gp = c.get(p).copied().unwrap_or(p);
        if let Some(slot) = c.get_mut(x) {
            *slot = gp;
        }
        x = p;
    }
    x
}

fn num(s: &str, spec: &str) -> Result<usize, TopologyError> {
    s.parse::<usize>()
        .map_err(|_| TopologyError::Spec(spec.to_owned()))
}

impl Topology {
    /// A path of `n` nodes.
    pub fn line(n: usize) -> Topology {
        let links = (1..n).map(|i| LinkSpec::new(i - 1, i)).collect();
        Topology {
            name: format!("line:{n}"),
            nodes: n,
            links,
        }
    }

    /// A cycle of `n` nodes.
    pub fn ring(n: usize) -> Topology {
        let mut t = Topology::line(n);
        if n > 2 {
            t.links.push(LinkSpec::new(n - 1, 0));
        }
        t.name = format!("ring:{n}");
        t
    }

    /// A `w` × `h` grid; node `y * w + x`.
    pub fn grid(w: usize, h: usize) -> Topology {
        let mut links = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let n = y * w + x;
                if x + 1 < w {
                    links.push(LinkSpec::new(n, n + 1));
                }
                if y + 1 < h {
                    links.push(LinkSpec::new(n, n + w));
                }
            }
        }
        Topology {
            name: format!("grid:{w}x{h}"),
            nodes: w * h,
            links,
        }
    }

    /// Every pair linked.
    pub fn full(n: usize) -> Topology {
        let mut links = Vec::new();
        for a in 0..n {
            for b in a + 1..n {
                links.push(LinkSpec::new(a, b));
            }
        }
        Topology {
            name: format!("full:{n}"),
            nodes: n,
            links,
        }
    }

    /// A random geometric graph: `n` points uniform in the unit square, linked when closer than
    /// `radius` (default `sqrt(ln n / (π n))`, about ln n neighbours on average); then components are
    /// joined through their closest pair so the graph is connected.
    pub fn random_geometric(n: usize, radius: Option<f64>, seed: u64) -> Topology {
        let mut rng = Rng::new(seed ^ 0x0005_EED0_F6E0);
        let unit = |rng: &mut Rng| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let pts: Vec<(f64, f64)> = (0..n).map(|_| (unit(&mut rng), unit(&mut rng))).collect();
        let nf = n.max(2) as f64;
        let r = radius.unwrap_or_else(|| (nf.ln() / (std::f64::consts::PI * nf)).sqrt());
        let d2 = |a: usize, b: usize| -> f64 {
            match (pts.get(a), pts.get(b)) {
                (Some(p), Some(q)) => (p.0 - q.0).powi(2) + (p.1 - q.1).powi(2),
                _ => f64::INFINITY,
            }
        };
        let mut links = Vec::new();
        let mut comp: Vec<usize> = (0..n).collect();
        for a in 0..n {
            for b in a + 1..n {
                if d2(a, b) < r * r {
                    links.push(LinkSpec::new(a, b));
                    let (ra, rb) = (find(&mut comp, a), find(&mut comp, b));
                    if let Some(s) = comp.get_mut(ra) {
                        *s = rb;
                    }
                }
            }
        }
        loop {
            let root0 = find(&mut comp, 0);
            let mut best: Option<(f64, usize, usize)> = None;
            for a in 0..n {
                if find(&mut comp, a) != root0 {
                    continue;
                }
                for b in 0..n {
                    if find(&mut comp, b) == root0 {
                        continue;
                    }
                    let d = d2(a, b);
                    if best.is_none_or(|(bd, _, _)| d < bd) {
                        best = Some((d, a, b));
                    }
                }
            }
            let Some((_, a, b)) = best else { break };
            links.push(LinkSpec::new(a.min(b), a.max(b)));
            let (ra, rb) = (find(&mut comp, a), find(&mut comp, b));
            if let Some(s) = comp.get_mut(ra) {
                *s = rb;
            }
        }
        let name = match radius {
            Some(r) => format!("random:{n}:{r}"),
            None => format!("random:{n}"),
        };
        Topology {
            name,
            nodes: n,
            links,
        }
    }

    /// A random geometric mesh of bounded mean degree: `n` points uniform in the unit square,
    /// linked when closer than `sqrt(degree / (π n))` (about `degree` neighbours on average, a bit
    /// fewer at the border, whatever `n`), then each component joined to its nearest other one
    /// (Borůvka's rounds over the shortest outgoing link) so the graph is connected. Unlike
    /// [`Topology::random_geometric`], whose mean degree grows as ln n (9.2 at 10,000 nodes), a
    /// router here keeps a roofline's handful of neighbours however large the mesh. Links come
    /// from points bucketed in cells of the radius (linear time); the joining searches outwards
    /// cell ring by cell ring from every node, which is the slow part (20 s at 10,000 nodes).
    pub fn mesh(n: usize, degree: f64, seed: u64) -> Topology {
        let mut rng = Rng::new(seed ^ 0x0005_EED0_F6E1);
        let unit = |rng: &mut Rng| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let pts: Vec<(f64, f64)> = (0..n).map(|_| (unit(&mut rng), unit(&mut rng))).collect();
        let nf = n.max(2) as f64;
        let r = (degree.max(0.1) / (std::f64::consts::PI * nf)).sqrt();
        let cells = ((1.0 / r).floor() as usize).clamp(1, 1 << 12);
        let cell_of = |p: (f64, f64)| {
            let c = |v: f64| ((v * cells as f64) as usize).min(cells - 1);
            (c(p.0), c(p.1))
        };
        let mut grid: Vec<Vec<usize>> = vec![Vec::new(); cells * cells];
        for (i, p) in pts.iter().enumerate() {
            let (cx, cy) = cell_of(*p);
            if let Some(g) = grid.get_mut(cy * cells + cx) {
                g.push(i);
            }
        }
        let d2 = |a: usize, b: usize| -> f64 {
            match (pts.get(a), pts.get(b)) {
                (Some(p), Some(q)) => (p.0 - q.0).powi(2) + (p.1 - q.1).powi(2),
                _ => f64::INFINITY,
            }
        };
        // The points in the cells at Chebyshev distance exactly `k` from cell (cx, cy).
        let ring = |cx: usize, cy: usize, k: usize, f: &mut dyn FnMut(usize)| {
            let (cx, cy, k, m) = (cx as i64, cy as i64, k as i64, cells as i64);
            for y in cy - k..=cy + k {
                for x in cx - k..=cx + k {
                    if (x - cx).abs() != k && (y - cy).abs() != k {
                        continue;
                    }
                    if x < 0 || y < 0 || x >= m || y >= m {
                        continue;
                    }
                    for &j in grid
                        .get((y * m + x) as usize)
                        .map(Vec::as_slice)
                        .unwrap_or(&[])
                    {
                        f(j);
                    }
                }
            }
        };
        let mut links = Vec::new();
        let mut comp: Vec<usize> = (0..n).collect();
        for (a, p) in pts.iter().enumerate() {
            let (cx, cy) = cell_of(*p);
            let mut near = Vec::new();
            for k in 0..=1 {
                ring(cx, cy, k, &mut |b| {
                    if b > a && d2(a, b) < r * r {
                        near.push(b);
                    }
                });
            }
            near.sort_unstable();
            for b in near {
                links.push(LinkSpec::new(a, b));
                let (ra, rb) = (find(&mut comp, a), find(&mut comp, b));
                if let Some(s) = comp.get_mut(ra) {
                    *s = rb;
                }
            }
        }
        // Borůvka: every component takes its shortest link to another component, until one.
        loop {
            let roots: Vec<usize> = (0..n).map(|i| find(&mut comp, i)).collect();
            if roots.iter().all(|&r| Some(&r) == roots.first()) {
                break;
            }
            let mut best: BTreeMap<usize, (f64, usize, usize)> = BTreeMap::new();
            for (a, p) in pts.iter().enumerate() {
                let ra = roots.get(a).copied().unwrap_or(a);
                let (cx, cy) = cell_of(*p);
                let mut found: Option<(f64, usize)> = None;
                for k in 0..=cells {
                    // Every point in ring k is at least (k - 1) cell widths away.
                    if found.is_some_and(|(d, _)| d.sqrt() < (k as f64 - 1.0) / cells as f64) {
                        break;
                    }
                    ring(cx, cy, k, &mut |b| {
                        if roots.get(b).copied().unwrap_or(b) != ra {
                            let d = d2(a, b);
                            if found.is_none_or(|(fd, fb)| (d, b) < (fd, fb)) {
                                found = Some((d, b));
                            }
                        }
                    });
                }
                if let Some((d, b)) = found {
                    let e = best.entry(ra).or_insert((d, a, b));
                    if (d, a.min(b), a.max(b)) < (e.0, e.1.min(e.2), e.1.max(e.2)) {
                        *e = (d, a, b);
                    }
                }
            }
            if best.is_empty() {
                break;
            }
            for (_, (_, a, b)) in best {
                let (ra, rb) = (find(&mut comp, a), find(&mut comp, b));
                if ra != rb {
                    links.push(LinkSpec::new(a.min(b), a.max(b)));
                    if let Some(s) = comp.get_mut(ra) {
                        *s = rb;
                    }
                }
            }
        }
        Topology {
            name: format!("mesh:{n}:{degree}"),
            nodes: n,
            links,
        }
    }

    /// Parses the file format described in the module documentation.
    pub fn from_text(path: &str, text: &str) -> Result<Topology, TopologyError> {
        let err = |line: usize, msg: &str| TopologyError::File {
            path: path.to_owned(),
            msg: format!("line {line}: {msg}"),
        };
        let mut nodes: Option<usize> = None;
        let mut links = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["nodes", n] => nodes = Some(n.parse().map_err(|_| err(i + 1, "bad node count"))?),
                ["link", a, b, rest @ ..] => {
                    let n = nodes.ok_or_else(|| err(i + 1, "`nodes` must come first"))?;
                    let a: usize = a.parse().map_err(|_| err(i + 1, "bad node"))?;
                    let b: usize = b.parse().map_err(|_| err(i + 1, "bad node"))?;
                    if a >= n || b >= n || a == b {
                        return Err(err(i + 1, "node out of range or self-link"));
                    }
                    let mut l = LinkSpec::new(a, b);
                    let mut it = rest.iter();
                    while let Some(k) = it.next() {
                        let v = it
                            .next()
                            .ok_or_else(|| err(i + 1, "option without value"))?;
                        match *k {
                            "cost" => l.cost = v.parse().map_err(|_| err(i + 1, "bad cost"))?,
                            "loss" => {
                                let p: f64 = v.parse().map_err(|_| err(i + 1, "bad loss"))?;
                                l.loss_ppm = (p.clamp(0.0, 1.0) * 1e6) as u32;
                            }
                            "delay" => {
                                l.delay_ms = Some(v.parse().map_err(|_| err(i + 1, "bad delay"))?)
                            }
                            _ => return Err(err(i + 1, "unknown link option")),
                        }
                    }
                    links.push(l);
                }
                _ => {
                    return Err(err(
                        i + 1,
                        "expected `nodes N` or `link A B [cost C] [loss P] [delay MS]`",
                    ));
                }
            }
        }
        let nodes = nodes.ok_or_else(|| err(0, "missing `nodes`"))?;
        Ok(Topology {
            name: format!("file:{path}"),
            nodes,
            links,
        })
    }

    /// Builds a topology from a spec: `line:N`, `ring:N`, `grid:WxH`, `full:N`,
    /// `random:N[:RADIUS]`, `mesh:N[:DEGREE]` or `file:PATH`.
    pub fn parse(spec: &str, seed: u64) -> Result<Topology, TopologyError> {
        let bad = || TopologyError::Spec(spec.to_owned());
        let (kind, arg) = spec.split_once(':').ok_or_else(bad)?;
        match kind {
            "line" => Ok(Topology::line(num(arg, spec)?)),
            "ring" => Ok(Topology::ring(num(arg, spec)?)),
            "full" => Ok(Topology::full(num(arg, spec)?)),
            "grid" => {
                let (w, h) = arg.split_once('x').ok_or_else(bad)?;
                Ok(Topology::grid(num(w, spec)?, num(h, spec)?))
            }
            "random" => {
                let (n, r) = match arg.split_once(':') {
                    Some((n, r)) => (num(n, spec)?, Some(r.parse::<f64>().map_err(|_| bad())?)),
                    None => (num(arg, spec)?, None),
                };
                Ok(Topology::random_geometric(n, r, seed))
            }
            "mesh" => {
                let (n, d) = match arg.split_once(':') {
                    Some((n, d)) => (num(n, spec)?, d.parse::<f64>().map_err(|_| bad())?),
                    None => (num(arg, spec)?, MESH_DEGREE),
                };
                if !(d > 0.0 && d.is_finite()) {
                    return Err(bad());
                }
                Ok(Topology::mesh(n, d, seed))
            }
            "file" => {
                let text = std::fs::read_to_string(arg).map_err(|e| TopologyError::File {
                    path: arg.to_owned(),
                    msg: e.to_string(),
                })?;
                Topology::from_text(arg, &text)
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "nodes {}", self.nodes)?;
        for l in &self.links {
            write!(f, "link {} {} cost {}", l.a, l.b, l.cost)?;
            if l.loss_ppm > 0 {
                write!(f, " loss {}", f64::from(l.loss_ppm) / 1e6)?;
            }
            if let Some(d) = l.delay_ms {
                write!(f, " delay {d}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
