//! The escrow contract's rules and every attack of the payment design's threat table, on a real
//! EVM node (anvil). Balances are checked to the wei: accounts that only receive are compared
//! directly, senders with their transaction fees added back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use alloy::primitives::{Address, U256};
use common::*;
use ed25519_dalek::SigningKey;
use payments::{Amount, ChannelId, SignedUpdate};
use settlement::anvil::Anvil;
use settlement::escrow::{ChainError, ChannelParams, EscrowClient, SignedClose, channel_id};

const CHALLENGE: u64 = 3600;

struct Setup {
    node: Anvil,
    /// The payer's account (opens, tops up, closes).
    payer: EscrowClient,
    /// The payee's account (cooperative and payee closes).
    payee: EscrowClient,
    /// A third account that submits redemptions and finalizes (anyone may), so that the payee's
    /// and payer's balances change only by what the contract pays them.
    tower: EscrowClient,
    payer_ed: SigningKey,
    payee_ed: SigningKey,
}

async fn setup(chain_id: u64) -> Option<Setup> {
    let node = node(chain_id)?;
    let url = node.url().to_string();
    let (deployer, payer_key, payee_key, tower_key) = (
        eth_key("deployer"),
        eth_key("payer"),
        eth_key("payee"),
        eth_key("tower"),
    );
    for k in [&deployer, &payer_key, &payee_key, &tower_key] {
        fund(&url, k.address()).await;
    }
    let (deployed, gas) = ok(EscrowClient::deploy(&url, deployer).await);
    println!("GAS deploy {}", gas.gas_used);
    let at = deployed.address();
    Some(Setup {
        payer: ok(EscrowClient::connect(&url, payer_key, at)),
        payee: ok(EscrowClient::connect(&url, payee_key, at)),
        tower: ok(EscrowClient::connect(&url, tower_key, at)),
        payer_ed: ed_key("payer"),
        payee_ed: ed_key("payee"),
        node,
    })
}

impl Setup {
    async fn open(&self, salt_label: &str, deposit: u128) -> ChannelId {
        ok(self
            .open_from(&self.payer, self.payee.account(), salt_label, deposit)
            .await)
        .0
    }

    /// Opens a channel from `from`'s account to `payee` with the test's ed25519 keys.
    async fn open_from(
        &self,
        from: &EscrowClient,
        payee: Address,
        salt_label: &str,
        deposit: u128,
    ) -> Result<(ChannelId, settlement::TxOutcome), ChainError> {
        from.open(
            payee,
            self.payer_ed.verifying_key().to_bytes(),
            self.payee_ed.verifying_key().to_bytes(),
            salt(salt_label),
            CHALLENGE,
            Amount(deposit),
        )
        .await
    }

    fn update(&self, id: ChannelId, nonce: u64, cumulative: u128) -> SignedUpdate {
        update(id, &self.payer_ed, &self.payee_ed, nonce, cumulative)
    }

    async fn balance(&self, who: Address) -> u128 {
        let b = ok(self.tower.balance(who).await);
        ok(u128::try_from(b))
    }

    async fn contract_balance(&self) -> u128 {
        self.balance(self.payer.address()).await
    }
}

#[track_caller]
fn refused<T: std::fmt::Debug>(r: Result<T, ChainError>, name: &str) {
    match r {
        Err(ChainError::Reverted(n)) if n == name => {}
        other => panic!("expected the contract to refuse with {name}, got {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn open_top_up_redeem_pay_the_payee_exactly_and_report_gas() {
    let Some(s) = setup(31337).await else { return };
    let payee_before = s.balance(s.payee.account()).await;
    let (id, open) = ok(s.open_from(&s.payer, s.payee.account(), "c1", ETHER).await);
    // The id the client computes is the contract's.
    let params = ChannelParams {
        payer: s.payer.account(),
        payee: s.payee.account(),
        payer_key: s.payer_ed.verifying_key().to_bytes(),
        payee_key: s.payee_ed.verifying_key().to_bytes(),
        salt: salt("c1"),
    };
    assert_eq!(ok(s.payer.contract_channel_id(&params).await), id);
    let ch = ok(s.payer.channel(&id).await).unwrap_or_else(|| panic!("channel not on chain"));
    assert_eq!(ch.deposit, Amount(ETHER));
    assert_eq!(ch.payer, s.payer.account());
    assert_eq!(ch.payee, s.payee.account());
    assert_eq!(ch.payer_key, params.payer_key);
    assert_eq!(ch.payee_key, params.payee_key);
    assert_eq!(ch.challenge_period, CHALLENGE);
    assert_eq!(ch.closing_at, None);

    let top = ok(s.payer.top_up(&id, Amount(ETHER / 2)).await);
    assert_eq!(
        ok(s.payer.channel(&id).await).map(|c| c.deposit),
        Some(Amount(ETHER + ETHER / 2))
    );
    assert_eq!(s.contract_balance().await, ETHER + ETHER / 2);

    let first = ok(s.tower.redeem(&s.update(id, 1, 1_000)).await);
    let second = ok(s.tower.redeem(&s.update(id, 7, 250_000_000_000)).await);
    assert_eq!(
        s.balance(s.payee.account()).await - payee_before,
        250_000_000_000,
        "the payee receives exactly the cumulative amount"
    );
    let ch = ok(s.payer.channel(&id).await).unwrap_or_else(|| panic!("gone"));
    assert_eq!(
        (ch.best, ch.best_nonce, ch.paid),
        (Amount(250_000_000_000), 7, Amount(250_000_000_000))
    );
    assert_eq!(
        s.contract_balance().await,
        ETHER + ETHER / 2 - 250_000_000_000
    );
    println!(
        "GAS open {} top_up {} redeem(first) {} redeem(later) {}",
        open.gas_used, top.gas_used, first.gas_used, second.gas_used
    );
}

/// Threat table: replay of an old update to the counterparty (here: to the contract).
#[tokio::test(flavor = "current_thread")]
async fn old_or_repeated_updates_are_refused() {
    let Some(s) = setup(31337).await else { return };
    let id = s.open("replay", ETHER).await;
    let newest = s.update(id, 5, 500);
    ok(s.tower.redeem(&newest).await);
    refused(s.tower.redeem(&newest).await, "NotNewer");
    refused(s.tower.redeem(&s.update(id, 3, 300)).await, "NotNewer");
    // Only the payer signs, so a higher nonce with a lower amount (which the payer can always
    // mint) does not count as newer: the amount committed to decides.
    refused(s.tower.redeem(&s.update(id, 1_000, 499)).await, "NotNewer");
    refused(s.tower.redeem(&s.update(id, 1_000, 500)).await, "NotNewer");
    let ch = ok(s.payer.channel(&id).await).unwrap_or_else(|| panic!("gone"));
    assert_eq!(
        (ch.best, ch.best_nonce, ch.paid),
        (Amount(500), 5, Amount(500))
    );
}

/// Threat table: cross-channel and cross-network replay. The signed bytes hold the channel id,
/// which binds chain id, contract, both accounts, both keys and a salt.
#[tokio::test(flavor = "current_thread")]
async fn updates_do_not_replay_on_another_channel_contract_or_chain() {
    let Some(s) = setup(31337).await else { return };
    let a = s.open("channel a", ETHER).await;
    let b = s.open("channel b", ETHER).await;
    assert_ne!(a, b);
    let for_a = s.update(a, 1, 100);
    // The same fields presented on channel b: the contract checks them against b's id.
    let mut on_b = for_a;
    on_b.update.channel = b;
    refused(s.tower.redeem(&on_b).await, "BadSignature");

    // Another deployment of the contract on the same chain: same parameters, another id.
    fund(s.node.url(), eth_key("deployer 2").address()).await;
    let (other, _) = ok(EscrowClient::deploy(s.node.url(), eth_key("deployer 2")).await);
    let other_payer = ok(EscrowClient::connect(
        s.node.url(),
        eth_key("payer"),
        other.address(),
    ));
    let (a2, _) = ok(s
        .open_from(&other_payer, s.payee.account(), "channel a", ETHER)
        .await);
    assert_ne!(a2, a);
    refused(other.redeem(&for_a).await, "UnknownChannel");
    let mut on_a2 = for_a;
    on_a2.update.channel = a2;
    refused(other.redeem(&on_a2).await, "BadSignature");

    // Another chain: a second node with another chain id, the contract deployed from the same
    // account with the same nonce lands at the same address; the channel id still differs.
    let Some(node2) = node(1337) else { return };
    for k in ["deployer", "payer", "tower"] {
        fund(node2.url(), eth_key(k).address()).await;
    }
    let (escrow2, _) = ok(EscrowClient::deploy(node2.url(), eth_key("deployer")).await);
    assert_eq!(
        escrow2.address(),
        s.payer.address(),
        "same deployer and nonce, same address"
    );
    let payer2 = ok(EscrowClient::connect(
        node2.url(),
        eth_key("payer"),
        escrow2.address(),
    ));
    let (a3, _) = ok(s
        .open_from(&payer2, s.payee.account(), "channel a", ETHER)
        .await);
    assert_ne!(a3, a, "the chain id is part of the channel id");
    let params = ChannelParams {
        payer: s.payer.account(),
        payee: s.payee.account(),
        payer_key: s.payer_ed.verifying_key().to_bytes(),
        payee_key: s.payee_ed.verifying_key().to_bytes(),
        salt: salt("channel a"),
    };
    assert_eq!(channel_id(1337, escrow2.address(), &params), a3);
    assert_eq!(channel_id(31337, s.payer.address(), &params), a);
    let tower2 = ok(EscrowClient::connect(
        node2.url(),
        eth_key("tower"),
        escrow2.address(),
    ));
    refused(tower2.redeem(&for_a).await, "UnknownChannel");
    let mut on_a3 = for_a;
    on_a3.update.channel = a3;
    refused(tower2.redeem(&on_a3).await, "BadSignature");
    // And the update is still good where it belongs.
    ok(s.tower.redeem(&for_a).await);
}

/// Threat table: stale-state close. The payer closes with an old update; the payee presents the
/// newer one inside the challenge period and it wins; after the period the rest goes back.
#[tokio::test(flavor = "current_thread")]
async fn stale_close_is_beaten_by_the_newer_update() {
    let Some(s) = setup(31337).await else { return };
    let deposit = 10 * ETHER;
    let id = s.open("stale", deposit).await;
    let old = s.update(id, 2, ETHER);
    let newest = s.update(id, 9, 3 * ETHER + 17);
    let payee_before = s.balance(s.payee.account()).await;

    let close = ok(s.payer.start_close(&id, Some(&old)).await);
    let ch = ok(s.payer.channel(&id).await).unwrap_or_else(|| panic!("gone"));
    let closing_at = ch.closing_at.unwrap_or_else(|| panic!("not closing"));
    assert_eq!(closing_at, ok(s.payer.chain_time().await) + CHALLENGE);
    assert_eq!(ch.best, Amount(ETHER));
    // Collateral stays locked during the challenge.
    refused(s.tower.finalize(&id).await, "ChallengeRunning");
    refused(s.payer.top_up(&id, Amount(1)).await, "NotOpen");
    refused(s.payer.start_close(&id, None).await, "ChallengeRunning");
    // A higher nonce with a lower amount minted by the payer does not beat the payee.
    refused(
        s.payer.redeem(&s.update(id, 1_000, ETHER / 2)).await,
        "NotNewer",
    );

    advance(&s.payer, CHALLENGE - 10).await;
    let answer = ok(s.tower.redeem(&newest).await);
    advance(&s.payer, 20).await;
    // Too late for anything newer now.
    refused(
        s.tower.redeem(&s.update(id, 10, 4 * ETHER)).await,
        "ChallengeOver",
    );
    let payer_before = s.balance(s.payer.account()).await;
    let fin = ok(s.tower.finalize(&id).await);
    assert_eq!(
        s.balance(s.payee.account()).await - payee_before,
        3 * ETHER + 17
    );
    assert_eq!(
        s.balance(s.payer.account()).await - payer_before,
        deposit - (3 * ETHER + 17),
        "the rest returns to the payer"
    );
    assert_eq!(s.contract_balance().await, 0);
    let ch = ok(s.payer.channel(&id).await).unwrap_or_else(|| panic!("gone"));
    assert!(ch.closed);
    refused(s.tower.finalize(&id).await, "NotOpen");
    refused(
        s.tower.redeem(&s.update(id, 11, 5 * ETHER)).await,
        "NotOpen",
    );
    println!(
        "GAS start_close_with_update {} answer(redeem) {} finalize {}",
        close.gas_used, answer.gas_used, fin.gas_used
    );
}

/// Threat table: double spend of collateral. The deposit is locked by the contract: no way out
/// but the close paths, no id reused, and the contract always holds what its channels owe.
#[tokio::test(flavor = "current_thread")]
async fn collateral_is_locked_and_never_backs_two_channels() {
    let Some(s) = setup(31337).await else { return };
    let a = s.open("lock a", 2 * ETHER).await;
    let b = s.open("lock b", 3 * ETHER).await;
    assert_eq!(s.contract_balance().await, 5 * ETHER);
    // Reopening an id (same parties, keys, salt) is refused: one deposit, one channel.
    refused(
        s.open_from(&s.payer, s.payee.account(), "lock a", ETHER)
            .await,
        "ChannelExists",
    );
    // Only the payer starts a unilateral close, only the payee closes at once.
    refused(s.payee.start_close(&a, None).await, "NotPayer");
    refused(s.tower.start_close(&a, None).await, "NotPayer");
    refused(s.payer.close_by_payee(&a).await, "NotPayee");
    refused(s.tower.top_up(&a, Amount(1)).await, "NotPayer");
    refused(s.tower.finalize(&a).await, "ChallengeRunning");
    ok(s.tower.redeem(&s.update(a, 1, ETHER)).await);
    ok(s.tower.redeem(&s.update(b, 1, 2 * ETHER)).await);
    assert_eq!(s.contract_balance().await, 2 * ETHER);
    // A closed channel's id stays taken, so its old updates can never be replayed on a new one.
    ok(s.payee.close_by_payee(&a).await);
    refused(s.tower.redeem(&s.update(a, 2, ETHER + 1)).await, "NotOpen");
    refused(
        s.open_from(&s.payer, s.payee.account(), "lock a", ETHER)
            .await,
        "ChannelExists",
    );
    assert_eq!(s.contract_balance().await, ETHER, "b's unpaid deposit only");
}

/// Threat table: balance inflation. The payee never gets more than the deposit, the two payouts
/// sum to the deposit, and nothing presented lowers what was already paid.
#[tokio::test(flavor = "current_thread")]
async fn payouts_never_exceed_the_deposit_and_sum_to_it() {
    let Some(s) = setup(31337).await else { return };
    let id = s.open("inflate", ETHER).await;
    ok(s.payer.top_up(&id, Amount(ETHER)).await);
    let payee_before = s.balance(s.payee.account()).await;
    // The payer signed more than it deposited: the payee gets the deposit, not more.
    ok(s.tower.redeem(&s.update(id, 1, 5 * ETHER)).await);
    assert_eq!(s.balance(s.payee.account()).await - payee_before, 2 * ETHER);
    refused(
        s.tower.redeem(&s.update(id, 2, 5 * ETHER)).await,
        "NotNewer",
    );
    ok(s.tower.redeem(&s.update(id, 3, 6 * ETHER)).await);
    assert_eq!(s.balance(s.payee.account()).await - payee_before, 2 * ETHER);
    let payer_before = s.balance(s.payer.account()).await;
    let close = ok(s.payee.close_by_payee(&id).await);
    assert_eq!(
        s.balance(s.payer.account()).await,
        payer_before,
        "nothing left"
    );
    assert_eq!(
        s.balance(s.payee.account()).await - payee_before + close.fee,
        2 * ETHER
    );
    assert_eq!(s.contract_balance().await, 0);
    // A cooperative close cannot go below what was presented.
    let id2 = s.open("inflate 2", ETHER).await;
    ok(s.tower.redeem(&s.update(id2, 4, 400)).await);
    let low = SignedClose::sign(s.update(id2, 5, 300).update, &s.payer_ed);
    refused(s.payee.close_cooperative(&low).await, "NotNewer");
}

/// Threat table: signature malleability and encoding ambiguity, and the keys a channel accepts.
#[tokio::test(flavor = "current_thread")]
async fn bad_signatures_and_keys_are_refused() {
    let Some(s) = setup(31337).await else { return };
    let id = s.open("sigs", ETHER).await;
    // Signed by the payee's key, or another key, instead of the payer's.
    refused(
        s.tower
            .redeem(&update(id, &s.payee_ed, &s.payee_ed, 1, 10))
            .await,
        "BadSignature",
    );
    let mut foreign = update(id, &ed_key("mallory"), &s.payee_ed, 1, 10);
    foreign.update.payer = s.payer_ed.verifying_key().to_bytes();
    refused(s.tower.redeem(&foreign).await, "BadSignature");
    // Any changed field of a good update.
    let good = s.update(id, 1, 10);
    let mut more = good;
    more.update.cumulative = Amount(11);
    refused(s.tower.redeem(&more).await, "BadSignature");
    let mut renonced = good;
    renonced.update.nonce = 2;
    refused(s.tower.redeem(&renonced).await, "BadSignature");
    // S + L: same scalar, different bytes (malleable); refused as verify_strict does.
    let mut mall = good;
    let l_le: [u8; 32] = {
        let mut l = [0u8; 32];
        let be = alloy::primitives::U256::from_str_radix(
            "1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ed",
            16,
        )
        .unwrap_or_default()
        .to_le_bytes::<32>();
        l.copy_from_slice(&be);
        l
    };
    let s_val = U256::from_le_slice(&good.signature[32..]) + U256::from_le_bytes(l_le);
    mall.signature[32..].copy_from_slice(&s_val.to_le_bytes::<32>());
    refused(s.tower.redeem(&mall).await, "BadSignature");
    // A close signature is not an update signature and the other way round (domain tags).
    let close = SignedClose::sign(good.update, &s.payer_ed);
    let as_update = SignedUpdate {
        update: good.update,
        signature: close.signature,
    };
    refused(s.tower.redeem(&as_update).await, "BadSignature");
    let as_close = SignedClose {
        update: good.update,
        signature: good.signature,
    };
    refused(s.payee.close_cooperative(&as_close).await, "BadSignature");
    ok(s.tower.redeem(&good).await);

    // Opening: keys must be valid, non-small-order points; deposit and challenge period sane.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let open = |payer_key: [u8; 32], period: u64, deposit: u128, label: &'static str| {
        let payer = s.payer.clone();
        let payee = s.payee.account();
        let payee_key = s.payee_ed.verifying_key().to_bytes();
        async move {
            payer
                .open(
                    payee,
                    payer_key,
                    payee_key,
                    salt(label),
                    period,
                    Amount(deposit),
                )
                .await
        }
    };
    let pk = s.payer_ed.verifying_key().to_bytes();
    refused(open(identity, CHALLENGE, ETHER, "k1").await, "BadKey");
    refused(open([0xff; 32], CHALLENGE, ETHER, "k2").await, "BadKey");
    refused(open(pk, 59, ETHER, "k3").await, "BadChallengePeriod");
    refused(
        open(pk, 31 * 86_400, ETHER, "k4").await,
        "BadChallengePeriod",
    );
    refused(open(pk, CHALLENGE, 0, "k5").await, "ZeroDeposit");
    // A deposit that does not fit the contract's 128-bit amounts is refused, not truncated (the
    // client cannot even express it, so the call is made by hand from a very rich account).
    {
        use alloy::providers::Provider;
        use settlement::escrow::Escrow;
        let huge = U256::from(1u8) << 128;
        let _: serde_json::Value = ok(s
            .tower
            .provider()
            .raw_request("anvil_setBalance".into(), (s.payer.account(), huge << 1))
            .await);
        let escrow = Escrow::new(s.payer.address(), s.payer.provider().clone());
        let err = escrow
            .open(
                s.payee.account(),
                pk.into(),
                s.payee_ed.verifying_key().to_bytes().into(),
                salt("k6").into(),
                CHALLENGE,
            )
            .value(huge)
            .call()
            .await
            .map(|_| ())
            .map_err(ChainError::from);
        refused(err, "DepositTooLarge");
    }
}

/// Cooperative close, from either side, with the other side's signature; and the payee's
/// immediate close.
#[tokio::test(flavor = "current_thread")]
async fn cooperative_close_from_either_side() {
    let Some(s) = setup(31337).await else { return };
    // Payee sends, payer signed.
    let id = s.open("coop 1", 4 * ETHER).await;
    ok(s.tower.redeem(&s.update(id, 3, ETHER)).await);
    let payer_before = s.balance(s.payer.account()).await;
    let payee_before = s.balance(s.payee.account()).await;
    let final_update = s.update(id, 8, 2 * ETHER + 5).update;
    let by_payer = SignedClose::sign(final_update, &s.payer_ed);
    refused(s.tower.close_cooperative(&by_payer).await, "NotParty");
    // The payee cannot use its own signature: the other party must have signed.
    refused(
        s.payee
            .close_cooperative(&SignedClose::sign(final_update, &s.payee_ed))
            .await,
        "BadSignature",
    );
    let coop = ok(s.payee.close_cooperative(&by_payer).await);
    assert_eq!(
        s.balance(s.payee.account()).await + coop.fee - payee_before,
        ETHER + 5,
        "the payee gets the final amount minus what it already redeemed"
    );
    assert_eq!(
        s.balance(s.payer.account()).await - payer_before,
        2 * ETHER - 5
    );
    let ch = ok(s.payer.channel(&id).await).unwrap_or_else(|| panic!("gone"));
    assert!(ch.closed);
    assert_eq!(
        (ch.best, ch.best_nonce, ch.paid),
        (Amount(2 * ETHER + 5), 8, Amount(2 * ETHER + 5))
    );

    // Payer sends, payee signed.
    let id2 = s.open("coop 2", ETHER).await;
    let payer_before = s.balance(s.payer.account()).await;
    let payee_before = s.balance(s.payee.account()).await;
    let by_payee = SignedClose::sign(s.update(id2, 4, 777).update, &s.payee_ed);
    let coop2 = ok(s.payer.close_cooperative(&by_payee).await);
    assert_eq!(s.balance(s.payee.account()).await - payee_before, 777);
    assert_eq!(
        s.balance(s.payer.account()).await + coop2.fee - payer_before,
        ETHER - 777
    );
    refused(s.payer.close_cooperative(&by_payee).await, "NotOpen");
    println!(
        "GAS close_cooperative {} (payer sends) {}",
        coop.gas_used, coop2.gas_used
    );

    // Payee closes at once.
    let id3 = s.open("coop 3", ETHER).await;
    ok(s.tower.redeem(&s.update(id3, 1, 100)).await);
    let payer_before = s.balance(s.payer.account()).await;
    let pc = ok(s.payee.close_by_payee(&id3).await);
    assert_eq!(
        s.balance(s.payer.account()).await - payer_before,
        ETHER - 100
    );
    let start = ok(s
        .payer
        .start_close(&s.open("coop 4", ETHER).await, None)
        .await);
    println!(
        "GAS close_by_payee {} start_close {}",
        pc.gas_used, start.gas_used
    );
}

/// A payout the recipient refuses (a contract without a way to take ether) does not block the
/// other party's payout: it is credited to `owed` and taken out later with `withdraw`.
#[tokio::test(flavor = "current_thread")]
async fn a_refused_payout_is_kept_for_withdraw_and_blocks_nobody() {
    use alloy::network::TransactionBuilder;
    use alloy::primitives::Bytes;
    use alloy::providers::Provider;
    use alloy::rpc::types::TransactionRequest;
    use alloy::sol_types::SolCall;
    use settlement::escrow::Escrow;

    let Some(s) = setup(31337).await else { return };
    // Creation code of a contract whose every call reverts (runtime: PUSH1 0 PUSH1 0 REVERT).
    let code = Bytes::from(hex::decode("6005600c60003960056000f360006000fd").unwrap());
    let tx = TransactionRequest::default().with_deploy_code(code);
    let receipt = ok(ok(s.tower.provider().send_transaction(tx).await)
        .get_receipt()
        .await);
    let refuser = receipt.contract_address.unwrap();

    let (id, _) = ok(s.open_from(&s.payer, refuser, "refuser", ETHER).await);
    ok(s.tower.redeem(&s.update(id, 1, 400)).await);
    assert_eq!(s.balance(refuser).await, 0);
    assert_eq!(ok(s.tower.owed(refuser).await), U256::from(400));
    // The payer's refund goes through although the payee refuses its part.
    ok(s.payer.start_close(&id, Some(&s.update(id, 2, 500))).await);
    advance(&s.payer, CHALLENGE).await;
    let payer_before = s.balance(s.payer.account()).await;
    ok(s.tower.finalize(&id).await);
    assert_eq!(
        s.balance(s.payer.account()).await - payer_before,
        ETHER - 500
    );
    assert_eq!(ok(s.tower.owed(refuser).await), U256::from(500));
    assert_eq!(
        s.contract_balance().await,
        500,
        "the contract keeps exactly what it owes"
    );

    // Nothing owed to the tower.
    refused(
        async {
            let call = Escrow::withdrawCall {}.abi_encode();
            let tx = TransactionRequest::default()
                .with_to(s.tower.address())
                .with_input(call);
            s.tower.provider().estimate_gas(tx).await.map_err(|e| {
                match e
                    .as_error_resp()
                    .and_then(|r| r.as_decoded_interface_error::<Escrow::EscrowErrors>())
                {
                    Some(Escrow::EscrowErrors::NothingOwed(_)) => {
                        ChainError::Reverted("NothingOwed".into())
                    }
                    _ => ChainError::Unreachable(e.to_string()),
                }
            })
        }
        .await,
        "NothingOwed",
    );
    // Once the recipient can take ether (its code is gone), it withdraws what it is owed.
    let p = s.tower.provider();
    let _: serde_json::Value = ok(p.raw_request("anvil_setCode".into(), (refuser, "0x")).await);
    let _: serde_json::Value = ok(p
        .raw_request("anvil_impersonateAccount".into(), (refuser,))
        .await);
    fund(s.node.url(), refuser).await;
    let before = s.balance(refuser).await;
    let call = alloy::primitives::hex::encode_prefixed(Escrow::withdrawCall {}.abi_encode());
    let tx = serde_json::json!({
        "from": refuser.to_string(),
        "to": s.tower.address().to_string(),
        "data": call,
    });
    let hash: alloy::primitives::B256 =
        ok(p.raw_request("eth_sendTransaction".into(), (tx,)).await);
    // Await the receipt: anvil may mine the transaction after answering the send.
    let receipt = ok(
        alloy::providers::PendingTransactionBuilder::new(p.root().clone(), hash)
            .get_receipt()
            .await,
    );
    assert!(receipt.status());
    let fee = u128::from(receipt.gas_used) * receipt.effective_gas_price;
    assert_eq!(s.balance(refuser).await + fee - before, 500);
    assert_eq!(ok(s.tower.owed(refuser).await), U256::ZERO);
    assert_eq!(s.contract_balance().await, 0);
}
