//! `tap-link NS_A DEV_A NS_B DEV_B ONE_WAY_MS`: joins two existing network namespaces with the
//! delaying TAP link ([`test_support::TapLink`]) until killed, for the benchmark scripts (the
//! kernel of the CI machine has no `sch_netem`). The TAP devices are created inside the
//! namespaces and go when the process ends; the namespaces are left alone.

use std::mem::ManuallyDrop;
use std::time::Duration;

use test_support::{Netns, TapLink};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ns_a, dev_a, ns_b, dev_b, ms] = args.as_slice() else {
        eprintln!("usage: tap-link NS_A DEV_A NS_B DEV_B ONE_WAY_MS");
        std::process::exit(2);
    };
    let Ok(ms) = ms.parse::<u64>() else {
        eprintln!("tap-link: ONE_WAY_MS must be a whole number of milliseconds, not {ms}");
        std::process::exit(2);
    };
    // The namespaces belong to the caller: never delete them on the way out.
    let a = ManuallyDrop::new(Netns { name: ns_a.clone() });
    let b = ManuallyDrop::new(Netns { name: ns_b.clone() });
    let _link = TapLink::new(&a, dev_a, &b, dev_b, Duration::from_millis(ms));
    loop {
        std::thread::park();
    }
}
