//! The contract's ed25519 verifier against ed25519-dalek's `verify_strict`, and the gas of
//! verifying ed25519 in the EVM versus an EIP-712 secp256k1 signature, measured on a local node.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::signers::SignerSync;
use alloy::sol_types::{SolStruct, eip712_domain};
use common::*;
use ed25519_dalek::Signer;
use payments::{Amount, ChannelId, ChannelUpdate};
use settlement::escrow::{EscrowClient, SigBench};

/// The struct a secp256k1 design would sign (same name and fields as in SigBench.sol).
mod eip712 {
    alloy::sol! {
    struct ChannelUpdate {
        bytes32 channel;
        uint64 nonce;
        uint128 cumulative;
        bytes32 canonicalHash;
    }
    }
}

/// A small deterministic generator for test inputs.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const L: [u8; 32] = {
    // 2^252 + 27742317777372353535851937790883648493, little-endian.
    let be: [u8; 32] = [
        0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x14, 0xde, 0xf9, 0xde, 0xa2, 0xf7,
        0x9c, 0xd6, 0x58, 0x12, 0x63, 0x1a, 0x5c, 0xf5, 0xd3, 0xed,
    ];
    let mut le = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        le[i] = be[31 - i];
        i += 1;
    }
    le
};

fn add_le(a: &[u8], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for (i, o) in out.iter_mut().enumerate() {
        let s = u16::from(a.get(i).copied().unwrap_or(0)) + u16::from(b[i]) + carry;
        *o = s as u8;
        carry = s >> 8;
    }
    out
}

async fn bench(url: &str) -> SigBench::SigBenchInstance<alloy::providers::DynProvider> {
    let key = eth_key("bench deployer");
    fund(url, key.address()).await;
    let client = ok(EscrowClient::connect(url, key, Address::ZERO));
    ok(SigBench::deploy(client.provider().clone()).await)
}

fn split(sig: &[u8; 64]) -> (B256, B256) {
    (B256::from_slice(&sig[..32]), B256::from_slice(&sig[32..]))
}

#[tokio::test(flavor = "current_thread")]
async fn ed25519_verifier_agrees_with_dalek_verify_strict() {
    let Some(node) = node(31337) else { return };
    let bench = bench(node.url()).await;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    // Message lengths around the SHA-512 block and padding boundaries (the hash input is 64
    // bytes of R and A plus the message).
    for len in [0usize, 1, 47, 48, 63, 64, 111, 112, 152, 175, 176, 200, 300] {
        let key =
            ed25519_dalek::SigningKey::from_bytes(&rng.bytes(32).try_into().unwrap_or([1; 32]));
        let msg = rng.bytes(len);
        let sig = key.sign(&msg).to_bytes();
        let pk = B256::from(key.verifying_key().to_bytes());
        let (r, s) = split(&sig);
        let good = ok(bench
            .ed25519(pk, r, s, Bytes::from(msg.clone()))
            .call()
            .await);
        assert!(good.ok, "valid signature over {len} bytes rejected");

        // Any flipped bit of message, R, S or key is rejected, as dalek does.
        let mut bad_msg = msg.clone();
        if let Some(b) = bad_msg.first_mut() {
            *b ^= 1;
            let v = ok(bench.ed25519(pk, r, s, Bytes::from(bad_msg)).call().await);
            assert!(!v.ok, "flipped message byte accepted");
        }
        let mut bad_r = sig;
        bad_r[3] ^= 0x10;
        let (r2, _) = split(&bad_r);
        assert!(
            !ok(bench
                .ed25519(pk, r2, s, Bytes::from(msg.clone()))
                .call()
                .await)
            .ok
        );
        let mut bad_s = sig;
        bad_s[40] ^= 0x01;
        let (_, s2) = split(&bad_s);
        assert!(
            !ok(bench
                .ed25519(pk, r, s2, Bytes::from(msg.clone()))
                .call()
                .await)
            .ok
        );
        let other = B256::from(ed_key("other").verifying_key().to_bytes());
        assert!(
            !ok(bench
                .ed25519(other, r, s, Bytes::from(msg.clone()))
                .call()
                .await)
            .ok
        );

        // Malleability: S + L is the same scalar mod L; verify_strict and the contract reject it.
        let s_plus_l = add_le(&sig[32..], &L);
        let vk = key.verifying_key();
        let mut mall = sig;
        mall[32..].copy_from_slice(&s_plus_l);
        assert!(
            vk.verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&mall))
                .is_err()
        );
        let v = ok(bench
            .ed25519(pk, r, B256::from(s_plus_l), Bytes::from(msg.clone()))
            .call()
            .await);
        assert!(!v.ok, "S + L accepted");
    }
}

/// Encodings of small-order points: the identity, (0, -1), and the order-4 point with y = 0.
fn small_order_encodings() -> [[u8; 32]; 3] {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut minus_one = [0xffu8; 32];
    minus_one[0] = 0xec;
    minus_one[31] = 0x7f;
    [identity, minus_one, [0u8; 32]]
}

#[tokio::test(flavor = "current_thread")]
async fn small_order_and_non_canonical_keys_are_invalid() {
    let Some(node) = node(31337) else { return };
    let bench = bench(node.url()).await;
    for enc in small_order_encodings() {
        // dalek agrees these are weak keys.
        if let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&enc) {
            assert!(vk.is_weak());
        }
        assert!(!ok(bench.validKey(B256::from(enc)).call().await), "{enc:?}");
    }
    // y = p (non-canonical encoding of y = 0) and y = 2^255 - 1.
    let mut y_is_p = [0xffu8; 32];
    y_is_p[0] = 0xed;
    y_is_p[31] = 0x7f;
    assert!(!ok(bench.validKey(B256::from(y_is_p)).call().await));
    assert!(!ok(bench.validKey(B256::from([0xff; 32])).call().await));
    // A real key is valid.
    let real = ed_key("real").verifying_key().to_bytes();
    assert!(ok(bench.validKey(B256::from(real)).call().await));

    // A signature whose R is the identity is rejected even though the equation could be arranged.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let v = ok(bench
        .ed25519(
            B256::from(real),
            B256::from(identity),
            B256::ZERO,
            Bytes::from(vec![1u8; 152]),
        )
        .call()
        .await);
    assert!(!v.ok);
}

/// Prints the gas of both schemes over the same 152-byte update (numbers for spec/settlement.md).
#[tokio::test(flavor = "current_thread")]
async fn gas_of_ed25519_versus_eip712() {
    let Some(node) = node(31337) else { return };
    let bench = bench(node.url()).await;
    let payer = ed_key("payer");
    let update = ChannelUpdate {
        channel: ChannelId(salt("channel")),
        payer: payer.verifying_key().to_bytes(),
        payee: ed_key("payee").verifying_key().to_bytes(),
        nonce: 41,
        cumulative: Amount(123_456_789_000_000_000),
    };
    let signed = update.sign(&payer);
    let bytes = update.canonical_bytes();
    let (r, s) = split(&signed.signature);
    let ed = ok(bench
        .ed25519(B256::from(update.payer), r, s, Bytes::from(bytes.to_vec()))
        .call()
        .await);
    assert!(ed.ok);

    let eth = eth_key("payer eth");
    let domain = eip712_domain! {
        name: "babeld-rs escrow",
        version: "1",
        chain_id: 31337,
        verifying_contract: *bench.address(),
    };
    let s712 = eip712::ChannelUpdate {
        channel: B256::from(update.channel.0),
        nonce: update.nonce,
        cumulative: update.cumulative.0,
        canonicalHash: alloy::primitives::keccak256(bytes),
    };
    let hash = s712.eip712_signing_hash(&domain);
    let sig = ok(eth.sign_hash_sync(&hash));
    let v = 27 + u8::from(sig.v());
    let e712 = ok(bench
        .eip712(
            eth.address(),
            Bytes::from(bytes.to_vec()),
            v,
            B256::from(sig.r()),
            B256::from(sig.s()),
        )
        .call()
        .await);
    assert!(e712.ok, "EIP-712 signature rejected");
    let wrong = ok(bench
        .eip712(
            eth_key("someone").address(),
            Bytes::from(bytes.to_vec()),
            v,
            B256::from(sig.r()),
            B256::from(sig.s()),
        )
        .call()
        .await);
    assert!(!wrong.ok);
    println!(
        "GAS signature verification over the 152-byte update: ed25519 {} gas, EIP-712 secp256k1 {} gas",
        ed.gasUsed, e712.gasUsed
    );
    assert!(ed.gasUsed > U256::ZERO && e712.gasUsed > U256::ZERO);
}
