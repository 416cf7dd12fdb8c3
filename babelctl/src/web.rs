//! `babelctl web`: a local, read-only page about a running daemon. Each request reads a fresh
//! dump over the control socket (as `babelctl show` does, so it works with babeld and Althea's
//! fork too) and renders this router's neighbours with their costs, its tunnels, its routes with
//! prices, and a picture of the neighbourhood as an inline SVG graph. No scripts and no external
//! assets: one self-contained HTML document.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::Context;

use daemon::ctl::show::{Dump, Entry, fetch_dump, tunnel_row};

/// Arguments of `babelctl web`.
#[derive(clap::Args, Debug, Clone)]
pub struct WebArgs {
    /// The daemon's control socket: a TCP port on ::1, or a Unix socket path.
    #[arg(short = 's', long, default_value = "33123")]
    pub socket: String,
    /// Where to serve the page (keep it on a loopback address: the page is not authenticated).
    #[arg(short = 'l', long, default_value = "127.0.0.1:8033")]
    pub listen: SocketAddr,
    /// Print the page once on standard output instead of serving it.
    #[arg(long)]
    pub print: bool,
}

/// Runs `babelctl web`.
pub fn run(args: &WebArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.print {
        let d = fetch_dump(&args.socket)?;
        out.write_all(page(&d).as_bytes())?;
        return Ok(());
    }
    let l =
        TcpListener::bind(args.listen).with_context(|| format!("listening on {}", args.listen))?;
    writeln!(out, "serving http://{}/ (Ctrl-C to stop)", args.listen)?;
    out.flush()?;
    for s in l.incoming() {
        match s {
            Ok(s) => {
                if let Err(e) = serve(s, &args.socket) {
                    eprintln!("babelctl web: {e:#}");
                }
            }
            Err(e) => eprintln!("babelctl web: accept: {e}"),
        }
    }
    Ok(())
}

/// Longest request head read.
const MAX_HEAD: usize = 8192;

fn serve(mut s: TcpStream, socket: &str) -> anyhow::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let first = String::from_utf8_lossy(&head);
    let path = first.split_whitespace().nth(1).unwrap_or("/");
    let (status, kind, body) = match (first.starts_with("GET "), path) {
        (true, "/") => match fetch_dump(socket) {
            Ok(d) => ("200 OK", "text/html; charset=utf-8", page(&d)),
            Err(e) => (
                "502 Bad Gateway",
                "text/plain; charset=utf-8",
                format!("cannot read the daemon on {socket}: {e:#}\n"),
            ),
        },
        (true, _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found\n".to_owned(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "read-only\n".to_owned(),
        ),
    };
    write!(
        s,
        "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    Ok(())
}

/// HTML-escapes text.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn get<'a>(e: &'a Entry, k: &str) -> &'a str {
    e.fields.get(k).map_or("-", String::as_str)
}

fn table(html: &mut String, title: &str, header: &[&str], rows: &[Vec<String>]) {
    let _ = write!(html, "<h2>{}</h2>", esc(title));
    if rows.is_empty() {
        html.push_str("<p class=\"none\">none</p>");
        return;
    }
    html.push_str("<table><tr>");
    for h in header {
        let _ = write!(html, "<th>{}</th>", esc(h));
    }
    html.push_str("</tr>");
    for r in rows {
        html.push_str("<tr>");
        for c in r {
            let _ = write!(html, "<td>{}</td>", esc(c));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
}

/// The page for one dump.
pub fn page(d: &Dump) -> String {
    let host = d.info.get("host").map_or("router", String::as_str);
    let id = d.info.get("my-id").map_or("-", String::as_str);
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} ({}) babel</title>\
<style>body{{font:14px sans-serif;margin:1.5em;color:#222}}table{{border-collapse:collapse;margin-bottom:1em}}\
th,td{{border:1px solid #bbb;padding:2px 8px;text-align:left;font-family:monospace}}th{{background:#eee}}\
svg{{border:1px solid #ccc;background:#fcfcff}}.none{{color:#888}}</style></head><body>",
        esc(host),
        esc(id)
    );
    let _ = write!(
        html,
        "<h1>{} <small>{}</small></h1><p>{}",
        esc(host),
        esc(id),
        esc(&d.protocol)
    );
    for (k, v) in &d.info {
        if !matches!(k.as_str(), "host" | "my-id") {
            let _ = write!(html, " &middot; {} {}", esc(k), esc(v));
        }
    }
    html.push_str("</p>");
    html.push_str(&graph(d, host, id));
    let neighbours: Vec<Vec<String>> = d
        .neighbours
        .iter()
        .map(|e| {
            ["address", "if", "reach", "rxcost", "txcost", "rtt", "cost"]
                .iter()
                .map(|k| get(e, k).to_owned())
                .collect()
        })
        .collect();
    table(
        &mut html,
        "Neighbours",
        &[
            "address",
            "interface",
            "reach",
            "rxcost",
            "txcost",
            "rtt (ms)",
            "cost",
        ],
        &neighbours,
    );
    let tunnels: Vec<Vec<String>> = d.tunnels.iter().map(tunnel_row).collect();
    table(
        &mut html,
        "Tunnels",
        &[
            "tunnel",
            "port",
            "peer",
            "endpoint",
            "rx bytes",
            "tx bytes",
            "handshakes",
            "handshake age (s)",
        ],
        &tunnels,
    );
    let mut routes: Vec<Vec<String>> = d
        .routes
        .iter()
        .map(|e| {
            [
                "prefix",
                "installed",
                "metric",
                "price",
                "fee",
                "full-path-rtt",
                "via",
                "if",
                "id",
            ]
            .iter()
            .map(|k| get(e, k).to_owned())
            .collect()
        })
        .collect();
    routes.extend(d.xroutes.iter().map(|e| {
        vec![
            get(e, "prefix").to_owned(),
            "local".into(),
            get(e, "metric").to_owned(),
            "0".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            id.to_owned(),
        ]
    }));
    table(
        &mut html,
        "Routes",
        &[
            "prefix",
            "installed",
            "metric",
            "price",
            "fee",
            "path rtt (ms)",
            "via",
            "interface",
            "router",
        ],
        &routes,
    );
    html.push_str("<p class=\"none\">read-only; reload for fresh data</p></body></html>\n");
    html
}

const W: f64 = 900.0;
const H: f64 = 620.0;

/// The angle of the `i`th of `n` points around the centre, the first one up and to the left.
fn angle(i: usize, n: usize) -> f64 {
    std::f64::consts::TAU * (i as f64 + 0.5) / (n.max(1) as f64) - std::f64::consts::FRAC_PI_2 - 0.4
}

fn at(radius: f64, a: f64) -> (f64, f64) {
    (W / 2.0 + radius * a.cos(), H / 2.0 + radius * a.sin())
}

/// The neighbourhood: this router in the middle, its neighbours around it (edges labelled with
/// link costs), and every router it has an installed route to, linked to the neighbour it goes
/// through (labelled with metric and price).
fn graph(d: &Dump, host: &str, id: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"neighbourhood graph\">"
    );
    let centre = (W / 2.0, H / 2.0);
    // Routers reached by installed routes: router-id -> (via, metric, price, prefixes).
    let mut routers: BTreeMap<String, (String, String, String, Vec<String>)> = BTreeMap::new();
    for r in d
        .routes
        .iter()
        .filter(|r| get(r, "installed") == "yes" && get(r, "metric") != "65535")
    {
        let e = routers.entry(get(r, "id").to_owned()).or_insert_with(|| {
            (
                get(r, "via").to_owned(),
                get(r, "metric").to_owned(),
                get(r, "price").to_owned(),
                Vec::new(),
            )
        });
        e.3.push(get(r, "prefix").to_owned());
    }
    let n_angle: Vec<(String, f64)> = d
        .neighbours
        .iter()
        .enumerate()
        .map(|(i, e)| (get(e, "address").to_owned(), angle(i, d.neighbours.len())))
        .collect();
    let n_pos: Vec<(String, (f64, f64))> = n_angle
        .iter()
        .map(|(a, ang)| (a.clone(), at(140.0, *ang)))
        .collect();
    // Each router beyond the neighbour it is reached through, fanned out around its angle.
    let mut fan: BTreeMap<String, usize> = BTreeMap::new();
    for (via, ..) in routers.values() {
        *fan.entry(via.clone()).or_default() += 1;
    }
    let mut placed: BTreeMap<String, usize> = BTreeMap::new();
    let spread = std::f64::consts::TAU / (n_angle.len().max(1) as f64) * 0.8;
    let r_pos: Vec<(f64, f64)> = routers
        .iter()
        .enumerate()
        .map(|(i, (_, (via, ..)))| {
            let k = fan.get(via).copied().unwrap_or(1);
            let j = placed.entry(via.clone()).or_default();
            let base = n_angle
                .iter()
                .find(|(a, _)| a == via)
                .map_or_else(|| angle(i, routers.len()), |(_, ang)| *ang);
            let step = (spread / k as f64).min(0.5);
            let ang = base + (*j as f64 - (k as f64 - 1.0) / 2.0) * step;
            *j += 1;
            at(255.0, ang)
        })
        .collect();
    // Edges first, nodes on top.
    for ((_, (via, metric, price, _)), p) in routers.iter().zip(&r_pos) {
        let from = n_pos
            .iter()
            .find(|(a, _)| a == via)
            .map_or(centre, |(_, p)| *p);
        let _ = write!(
            s,
            "<line x1=\"{:.0}\" y1=\"{:.0}\" x2=\"{:.0}\" y2=\"{:.0}\" stroke=\"#9ab\" stroke-dasharray=\"4 3\"/>",
            from.0, from.1, p.0, p.1
        );
        let _ = write!(
            s,
            "<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"10\" fill=\"#567\">m {} p {}</text>",
            (from.0 + p.0) / 2.0,
            (from.1 + p.1) / 2.0,
            esc(metric),
            esc(price)
        );
    }
    for (e, (_, p)) in d.neighbours.iter().zip(&n_pos) {
        let _ = write!(
            s,
            "<line x1=\"{:.0}\" y1=\"{:.0}\" x2=\"{:.0}\" y2=\"{:.0}\" stroke=\"#345\" stroke-width=\"2\"/>\
<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"11\" fill=\"#333\">cost {}</text>",
            centre.0,
            centre.1,
            p.0,
            p.1,
            (centre.0 + p.0) / 2.0 + 4.0,
            (centre.1 + p.1) / 2.0,
            esc(get(e, "cost"))
        );
    }
    let _ = write!(
        s,
        "<circle cx=\"{:.0}\" cy=\"{:.0}\" r=\"30\" fill=\"#2a6\"/><text x=\"{:.0}\" y=\"{:.0}\" font-size=\"13\" text-anchor=\"middle\" fill=\"#fff\" font-weight=\"bold\">{}</text>\
<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#243\">{}</text>",
        centre.0,
        centre.1,
        centre.0,
        centre.1 + 4.0,
        esc(host),
        centre.0,
        centre.1 + 44.0,
        esc(id)
    );
    for (e, (addr, p)) in d.neighbours.iter().zip(&n_pos) {
        let _ = write!(
            s,
            "<circle cx=\"{:.0}\" cy=\"{:.0}\" r=\"14\" fill=\"#48c\"/><text x=\"{:.0}\" y=\"{:.0}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#135\">{} ({})</text>",
            p.0,
            p.1,
            p.0,
            p.1 - 20.0,
            esc(addr),
            esc(get(e, "if"))
        );
    }
    for ((rid, (_, _, _, prefixes)), p) in routers.iter().zip(&r_pos) {
        let _ = write!(
            s,
            "<g class=\"router\"><rect x=\"{:.0}\" y=\"{:.0}\" width=\"16\" height=\"16\" fill=\"#e83\"/>\
<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#520\">{}</text>",
            p.0 - 8.0,
            p.1 - 8.0,
            p.0,
            p.1 + 20.0,
            esc(rid)
        );
        for (i, pfx) in prefixes.iter().take(3).enumerate() {
            let _ = write!(
                s,
                "<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#333\">{}</text>",
                p.0,
                p.1 + 32.0 + 11.0 * i as f64,
                esc(pfx)
            );
        }
        if prefixes.len() > 3 {
            let _ = write!(
                s,
                "<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#777\">+{} more</text>",
                p.0,
                p.1 + 65.0,
                prefixes.len() - 3
            );
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use daemon::ctl::show::parse_dump;

    #[test]
    fn page_escapes_and_draws_every_router() {
        let d = parse_dump(
            "BABEL 1.0\nversion v\nhost r<1>\nmy-id 02:00:00:ff:fe:00:00:01\nok\n\
add neighbour 1 address fe80::2 if eth0 reach ffff ureach 0000 rxcost 96 txcost 96 cost 96\n\
add route 2 prefix fd77::2/128 from ::/0 installed yes id 02:00:00:ff:fe:00:00:02 metric 96 refmetric 0 via fe80::2 if eth0\n\
add route 3 prefix fd77::3/128 from ::/0 installed yes id 02:00:00:ff:fe:00:00:03 metric 192 refmetric 96 via fe80::2 if eth0\nok\n",
        );
        let p = page(&d);
        assert!(p.contains("r&lt;1&gt;") && !p.contains("r<1>"));
        assert_eq!(p.matches("<g class=\"router\">").count(), 2);
        assert!(p.contains("fd77::3/128") && p.contains("02:00:00:ff:fe:00:00:03"));
        assert!(!p.contains("<script") && !p.contains("http://") && !p.contains("https://"));
    }
}
