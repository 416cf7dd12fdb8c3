//! One adversarial run, printed as JSON: `cargo run -p babel-sim --example adversary_one -- SEED NODES [wired|wireless]`.
#![allow(clippy::unwrap_used)]
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let seed = a.first().and_then(|x| x.parse().ok()).unwrap_or(1);
    let nodes = a.get(1).and_then(|x| x.parse().ok()).unwrap_or(50);
    let kind = if a.get(2).map(String::as_str) == Some("wireless") {
        babel_sim::InterfaceKind::Wireless
    } else {
        babel_sim::InterfaceKind::Wired
    };
    let mut c = babel_sim::AdversaryConfig::new(seed, nodes, kind);
    if let Some(roles) = a.get(3) {
        c.roles = roles
            .split(',')
            .filter_map(|r| serde_json::from_value(serde_json::Value::String(r.to_owned())).ok())
            .collect();
    }
    let r = babel_sim::run_adversarial(&c);
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
}
