//! The Babel socket on a real link: two namespaces joined by a veth pair.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::net::Ipv6Addr;
use std::sync::mpsc;
use std::time::Duration;

use common::{Netns, can_use_netns, veth};
use daemon::netio::{BabelSocket, RECV_BUFFER, Received};

const PORT: u16 = 6696;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn multicast_and_unicast_carry_interface_and_destination() {
    if !can_use_netns("multicast_and_unicast_carry_interface_and_destination") {
        return;
    }
    let a = Netns::new("nio-a");
    let b = Netns::new("nio-b");
    veth(&a, "nioa0", &b, "niob0");
    let (a_ll, b_ll) = (a.link_local("nioa0"), b.link_local("niob0"));
    let (a_if, b_if) = (a.ifindex("nioa0"), b.ifindex("niob0"));

    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = b.spawn(move || {
        runtime().block_on(async move {
            let s = BabelSocket::open(PORT, babel_wire::MULTICAST_V6).unwrap();
            s.join(b_if).unwrap();
            // As root the buffer is forced past rmem_max (the kernel reports double).
            assert!(
                s.recv_buffer() >= RECV_BUFFER,
                "receive buffer {}",
                s.recv_buffer()
            );
            ready_tx.send(()).unwrap();
            let mut scratch = Vec::new();
            let mut got: Vec<(Received, Vec<u8>)> = Vec::new();
            let mut out = Vec::new();
            while got.len() < 2 {
                tokio::time::timeout(
                    Duration::from_secs(10),
                    s.recv_batch(&mut scratch, 8, &mut out),
                )
                .await
                .expect("datagrams within 10 s")
                .unwrap();
                for r in out.drain(..) {
                    let bytes = r.bytes.clone();
                    got.push((r, bytes));
                }
            }
            // Answer unicast, so the other side sees our link-local source.
            s.send(b"pong", got[0].0.src.ip().to_owned(), b_if)
                .await
                .unwrap();
            got
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let sender = a.spawn(move || {
        runtime().block_on(async move {
            let s = BabelSocket::open(PORT, babel_wire::MULTICAST_V6).unwrap();
            s.join(a_if).unwrap();
            s.send(b"hello-multicast", babel_wire::MULTICAST_V6, a_if)
                .await
                .unwrap();
            s.send(b"hello-unicast", b_ll, a_if).await.unwrap();
            let mut scratch = Vec::new();
            let mut out = Vec::new();
            tokio::time::timeout(
                Duration::from_secs(10),
                s.recv_batch(&mut scratch, 4, &mut out),
            )
            .await
            .unwrap()
            .unwrap();
            let pong = out.swap_remove(0);
            let bytes = pong.bytes.clone();
            (pong, bytes)
        })
    });
    let got = receiver.join().unwrap();
    let (pong, pong_bytes) = sender.join().unwrap();

    let (m, mb) = got
        .iter()
        .find(|(_, b)| b == b"hello-multicast")
        .expect("multicast datagram");
    assert_eq!(m.dst, babel_wire::MULTICAST_V6);
    assert_eq!(m.ifindex, b_if);
    assert_eq!(*m.src.ip(), a_ll);
    assert_eq!(m.src.port(), PORT);
    assert_eq!(m.bytes, *mb);
    let (u, _) = got
        .iter()
        .find(|(_, b)| b == b"hello-unicast")
        .expect("unicast datagram");
    assert_eq!(u.dst, b_ll);
    assert_eq!(u.ifindex, b_if);
    assert_eq!(pong_bytes, b"pong");
    assert_eq!(*pong.src.ip(), b_ll);
    assert_eq!(pong.ifindex, a_if);
    assert_ne!(pong.dst, Ipv6Addr::UNSPECIFIED);
}
