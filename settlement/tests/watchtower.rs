//! The payee's settlement against a real node: it redeems before the deposit runs out, answers a
//! unilateral close made with an old update, and when the chain goes away and comes back it has
//! lost nothing. On chain, the payee ends with exactly the best cumulative amount it was offered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use alloy::primitives::Address;
use alloy::providers::Provider;
use common::*;
use payments::{Amount, ChannelId, Settlement};
use settlement::anvil::Anvil;
use settlement::escrow::EscrowClient;
use settlement::{ChainConfig, ChainSettlement, TopUp, WatchtowerPolicy};

const CHALLENGE: u64 = 3600;
const ROUNDS: Duration = Duration::from_secs(60);

struct World {
    payer: EscrowClient,
    tower: EscrowClient,
    id: ChannelId,
    settlement: ChainSettlement,
}

/// Starts the settlement of `who` ("payer" or "payee": its Ethereum and ed25519 keys) on the
/// escrow at `contract`.
fn start(url: &str, contract: Address, who: &str, top_up: TopUp) -> ChainSettlement {
    ok(ChainSettlement::start(ChainConfig {
        rpc_url: url.to_string(),
        chain_id: 31337,
        contract,
        key: eth_key(who),
        channel_key: ed_key(who).verifying_key().to_bytes(),
        policy: WatchtowerPolicy::default(),
        poll_interval: Duration::from_millis(200),
        top_up,
    }))
}

async fn world(node: &Anvil, deposit: u128) -> World {
    let url = node.url();
    for k in ["deployer", "payer", "payee", "tower"] {
        fund(url, eth_key(k).address()).await;
    }
    let (escrow, _) = ok(EscrowClient::deploy(url, eth_key("deployer")).await);
    let payer = ok(EscrowClient::connect(
        url,
        eth_key("payer"),
        escrow.address(),
    ));
    let tower = ok(EscrowClient::connect(
        url,
        eth_key("tower"),
        escrow.address(),
    ));
    let (id, _) = ok(payer
        .open(
            eth_key("payee").address(),
            ed_key("payer").verifying_key().to_bytes(),
            ed_key("payee").verifying_key().to_bytes(),
            salt("w"),
            CHALLENGE,
            Amount(deposit),
        )
        .await);
    let settlement = start(url, escrow.address(), "payee", TopUp::default());
    settlement.watch(id, ed_key("payer").verifying_key().to_bytes());
    assert!(settlement.wait_rounds(2, ROUNDS));
    World {
        payer,
        tower,
        id,
        settlement,
    }
}

fn upd(w: &World, nonce: u64, cumulative: u128) -> payments::SignedUpdate {
    update(w.id, &ed_key("payer"), &ed_key("payee"), nonce, cumulative)
}

async fn on_chain(w: &World) -> settlement::ChainChannel {
    ok(w.payer.channel(&w.id).await).expect("channel on chain")
}

#[tokio::test(flavor = "current_thread")]
async fn redeems_before_the_deposit_runs_out_and_answers_a_stale_close() {
    let Some(node) = node(31337) else { return };
    let mut w = world(&node, 10 * ETHER).await;
    assert_eq!(w.settlement.deposit(&w.id), Some(Amount(10 * ETHER)));
    // An unknown channel counts for nothing.
    assert_eq!(w.settlement.deposit(&ChannelId([9; 32])), None);

    // Below half the deposit nothing is redeemed (gas is not spent on crumbs).
    w.settlement.offer(&upd(&w, 1, ETHER));
    assert!(w.settlement.wait_rounds(2, ROUNDS));
    assert_eq!(on_chain(&w).await.paid, Amount(0));
    // Half of it owed: redeemed.
    w.settlement.offer(&upd(&w, 2, 6 * ETHER));
    assert!(w.settlement.wait_rounds(2, ROUNDS));
    let ch = on_chain(&w).await;
    assert_eq!(
        (ch.paid, ch.best, ch.best_nonce),
        (Amount(6 * ETHER), Amount(6 * ETHER), 2)
    );
    // Offers that are not better, or not for us, change nothing.
    w.settlement.offer(&upd(&w, 1, ETHER));
    let mut forged = upd(&w, 9, 9 * ETHER);
    forged.update.cumulative = Amount(10 * ETHER);
    w.settlement.offer(&forged);
    w.settlement.offer(&update(
        w.id,
        &ed_key("mallory"),
        &ed_key("payee"),
        9,
        9 * ETHER,
    ));
    w.settlement.offer(&upd(&w, 3, 7 * ETHER));
    w.settlement.offer(&upd(&w, 4, 8 * ETHER + 123));
    assert!(w.settlement.wait_rounds(2, ROUNDS));
    assert_eq!(on_chain(&w).await.paid, Amount(6 * ETHER));
    let held = w.settlement.status().channels[&w.id]
        .best
        .map(|b| b.update.nonce);
    assert_eq!(held, Some(4));

    // The payer closes with an old update (nonce 3); the watchtower answers with nonce 4.
    ok(w.payer
        .start_close(&w.id, Some(&upd(&w, 3, 7 * ETHER)))
        .await);
    assert!(w.settlement.wait_rounds(2, ROUNDS));
    let ch = on_chain(&w).await;
    assert!(ch.closing_at.is_some());
    assert_eq!(
        (ch.best, ch.best_nonce, ch.paid),
        (Amount(8 * ETHER + 123), 4, Amount(8 * ETHER + 123))
    );
    assert_eq!(
        w.settlement.deposit(&w.id),
        None,
        "no credit on a closing channel"
    );

    advance(&w.payer, CHALLENGE).await;
    let payer_before = ok(w.payer.balance(w.payer.account()).await);
    ok(w.tower.finalize(&w.id).await);
    let refund = ok(w.payer.balance(w.payer.account()).await) - payer_before;
    assert_eq!(refund, alloy::primitives::U256::from(2 * ETHER - 123));
    let ch = on_chain(&w).await;
    assert!(ch.closed);
    assert_eq!(
        ch.paid,
        Amount(8 * ETHER + 123),
        "chain equals the payee's best update to the wei"
    );
    assert_eq!(w.settlement.status().redemptions, 2);
}

#[tokio::test(flavor = "current_thread")]
async fn an_unreachable_chain_delays_settlement_and_loses_nothing() {
    let Some(node) = node(31337) else { return };
    let mut w = world(&node, 4 * ETHER).await;
    assert_eq!(w.settlement.deposit(&w.id), Some(Amount(4 * ETHER)));
    // Keep the chain's state, then take the node away.
    let state: String = ok(w
        .payer
        .provider()
        .raw_request("anvil_dumpState".into(), ())
        .await);
    let port = node.port();
    drop(node);
    assert!(w.settlement.wait_rounds(2, ROUNDS));
    let status = w.settlement.status();
    assert!(
        status.unreachable_for.is_some(),
        "the chain's absence is reported"
    );
    assert!(status.last_error.is_some());
    // Metering goes on: the cached deposit still counts (within max_staleness) and updates are
    // taken and kept.
    assert_eq!(w.settlement.deposit(&w.id), Some(Amount(4 * ETHER)));
    w.settlement.offer(&upd(&w, 1, ETHER));
    w.settlement.offer(&upd(&w, 2, 3 * ETHER + 7));
    assert!(w.settlement.wait_rounds(2, ROUNDS));
    assert!(w.settlement.status().unreachable_for.is_some());
    assert_eq!(w.settlement.status().redemptions, 0);

    // The chain comes back where it was, with its state.
    let node = Anvil::start_on(31337, port).expect("node restarts on its port");
    // (A fresh client: the old one's pooled connection died with the old node.)
    let fresh = ok(EscrowClient::connect(
        node.url(),
        eth_key("payer"),
        w.payer.address(),
    ));
    let _: bool = ok(fresh
        .provider()
        .raw_request("anvil_loadState".into(), (state,))
        .await);
    // The worker's first request may meet its own dead pooled connection: wait for the rounds
    // that find the chain again and settle (an event, bounded by a generous timeout).
    let mut rounds = 0;
    while w.settlement.status().redemptions == 0 && rounds < 20 {
        assert!(w.settlement.wait_rounds(1, ROUNDS));
        rounds += 1;
    }
    assert!(w.settlement.wait_rounds(1, ROUNDS));
    let status = w.settlement.status();
    assert_eq!(status.unreachable_for, None, "{:?}", status.last_error);
    assert_eq!(status.redemptions, 1);
    let ch = ok(fresh.channel(&w.id).await).expect("channel survives");
    assert_eq!(
        (ch.paid, ch.best_nonce),
        (Amount(3 * ETHER + 7), 2),
        "nothing lost"
    );
    drop(node);
}

#[tokio::test(flavor = "current_thread")]
async fn the_payer_tops_up_when_what_it_signed_nears_the_deposit() {
    let Some(node) = node(31337) else { return };
    let w = world(&node, 2 * ETHER).await;
    let payer = start(
        node.url(),
        w.payer.address(),
        "payer",
        TopUp {
            below_permille: 800,
            step: Amount(ETHER),
        },
    );
    payer.signed(w.id, Amount(ETHER + ETHER / 2));
    assert!(payer.wait_rounds(2, ROUNDS));
    assert_eq!(
        on_chain(&w).await.deposit,
        Amount(2 * ETHER),
        "below 80 %: no top-up"
    );
    payer.signed(w.id, Amount(ETHER + ETHER * 7 / 10));
    assert!(payer.wait_rounds(2, ROUNDS));
    assert_eq!(on_chain(&w).await.deposit, Amount(3 * ETHER));
    assert!(payer.wait_rounds(2, ROUNDS));
    assert_eq!(
        on_chain(&w).await.deposit,
        Amount(3 * ETHER),
        "one top-up, not one per round"
    );
    let status = payer.status();
    assert!(
        status.outbound[&w.id]
            .note
            .as_deref()
            .unwrap_or("")
            .starts_with("topped up")
    );
    // The payee's deposit view follows.
    assert!(w.settlement.wait_rounds(2, ROUNDS));
    assert_eq!(w.settlement.deposit(&w.id), Some(Amount(3 * ETHER)));
}

/// A channel whose on-chain payer key is not the key the payer signs with is worth nothing to
/// the payee: no deposit counts, and the update the contract refuses is not sent again.
#[tokio::test(flavor = "current_thread")]
async fn a_channel_with_another_payer_key_counts_for_nothing() {
    let Some(node) = node(31337) else { return };
    let mut w = world(&node, ETHER).await;
    // The payee expects the payer to sign with "impostor", but the chain holds "payer".
    let impostor = ed_key("impostor");
    let other = start(node.url(), w.payer.address(), "payee", TopUp::default());
    drop(std::mem::replace(&mut w.settlement, other));
    w.settlement
        .watch(w.id, impostor.verifying_key().to_bytes());
    assert!(w.settlement.wait_rounds(2, ROUNDS));
    assert_eq!(w.settlement.deposit(&w.id), None);
    w.settlement
        .offer(&update(w.id, &impostor, &ed_key("payee"), 1, ETHER));
    assert!(w.settlement.wait_rounds(3, ROUNDS));
    let watched = &w.settlement.status().channels[&w.id];
    assert_eq!(watched.refused, Some(Amount(ETHER)));
    assert_eq!(
        watched.note.as_deref(),
        Some("redemption refused: BadSignature")
    );
    assert_eq!(w.settlement.status().redemptions, 0);
    assert_eq!(on_chain(&w).await.paid, Amount(0));
}
