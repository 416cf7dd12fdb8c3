//! Known-answer tests: the handshake and HKDF chain against vectors from
//! an independent implementation (tests/vectors/gen_noise_kat.py: Python
//! hashlib + `cryptography`), and boringtun's own parser.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use rand_core::{CryptoRng, RngCore};

use crate::crypto::{hmac, mac};
use crate::keys::PrivateKey;
use crate::messages::{INITIATION_LEN, Initiation, RESPONSE_LEN, Response};
use crate::noise::{self, Identity, PeerKeys};
use crate::time::Tai64N;

/// Returns the same fixed bytes forever (deterministic ephemeral keys).
struct FixedRng(u8);
impl RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        u32::from_le_bytes([self.0; 4])
    }
    fn next_u64(&mut self) -> u64 {
        u64::from_le_bytes([self.0; 8])
    }
    fn fill_bytes(&mut self, d: &mut [u8]) {
        d.fill(self.0)
    }
    fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> {
        d.fill(self.0);
        Ok(())
    }
}
impl CryptoRng for FixedRng {}

const INITIATION: &str = "01000000040302017b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13fcdf63d5b7e0ef7138281b5d769f5212854d1e03678401ec8716c6ee3fa5e545e3cef2a012b1b34b7bbfa3f1e7e6f79986ccbb6970c3ebf2c35ebf3a045dcaace38d2e5fc3221c5bb339a07491cca515b0a17cedd97f7ecccd681dfd00000000000000000000000000000000";
const RESPONSE: &str = "020000000d0c0b0a040302010faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f208f179dd59caf97e54021e12724f304b82660cca62d42a019141607baa55543f200000000000000000000000000000000";
const I_SEND: &str = "d489ec0f8ab0f3b79faa143a90d5c8860df8723fd5bb1791974937bd4ea32299";
const I_RECV: &str = "6643e7952ee500b23095e4fe2d9615e10efaacad5fbbdc9ea3dbca876a97e241";
const FIRST_DATA: &str = "040000000d0c0b0a000000000000000069fb14fa5d7de26fce9a42fe1c3d79917ecdafa2b5753af33c7fb1ba33f7c3fb85fb689bb2deb773f50ab6e36f3bb41e";

fn bytes32(start: u8) -> [u8; 32] {
    core::array::from_fn(|i| start + i as u8)
}

struct Fixture {
    id_i: Identity,
    id_r: Identity,
    keys_i: PeerKeys,
    keys_r: PeerKeys,
}

fn fixture() -> Fixture {
    let id_i = Identity::new(PrivateKey::from_bytes(bytes32(1)));
    let id_r = Identity::new(PrivateKey::from_bytes(bytes32(101)));
    let psk = Some([0x33; 32]);
    let keys_i = PeerKeys::new(&id_i, id_r.public, psk);
    let keys_r = PeerKeys::new(&id_r, id_i.public, psk);
    Fixture {
        id_i,
        id_r,
        keys_i,
        keys_r,
    }
}

fn ts() -> Tai64N {
    Tai64N::from_bytes(
        &hex::decode("400000006553f1000a0b0c00")
            .unwrap()
            .try_into()
            .unwrap(),
    )
}

#[test]
fn primitive_known_answers() {
    let (ck, h) = noise::initial_chain();
    assert_eq!(
        hex::encode(ck),
        "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36"
    );
    assert_eq!(
        hex::encode(h),
        "2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3"
    );
    assert_eq!(
        hex::encode(hmac(&[7; 32], &[b"message"])),
        "d94e6d7ec191550e21529bc1f75a94363dd94976c2451aa24110f72119f1ac2c"
    );
    assert_eq!(
        hex::encode(mac(&[9; 32], &[b"message"])),
        "d35410e1be906f708c2b7411b00d839c"
    );
}

#[test]
fn handshake_matches_independent_implementation() {
    let f = fixture();
    // Initiation, byte for byte (mac1 included, mac2 zero).
    let mut init = [0u8; INITIATION_LEN];
    let st = noise::create_initiation(
        &f.id_i,
        &f.keys_i,
        0x0102_0304,
        ts(),
        &mut FixedRng(0x11),
        &mut init,
    )
    .unwrap();
    let m1 = noise::mac_prefix(&f.keys_i.mac1_key, &init, crate::messages::INIT_MAC1);
    init[116..132].copy_from_slice(&m1);
    assert_eq!(hex::encode(init), INITIATION);

    // Responder consumes it and writes the expected response.
    let mut half = noise::consume_initiation(&f.id_r, &Initiation(&init)).unwrap();
    assert_eq!(half.peer_public, f.id_i.public);
    assert_eq!(
        noise::finish_initiation(&mut half, &f.keys_r).unwrap(),
        ts()
    );
    let mut resp = [0u8; RESPONSE_LEN];
    let rk = noise::create_response(
        &half,
        &f.keys_r,
        0x0A0B_0C0D,
        &mut FixedRng(0x22),
        &mut resp,
    )
    .unwrap();
    let m1 = noise::mac_prefix(&f.keys_r.mac1_key, &resp, crate::messages::RESP_MAC1);
    resp[60..76].copy_from_slice(&m1);
    assert_eq!(hex::encode(resp), RESPONSE);
    assert_eq!(hex::encode(rk.recv), I_SEND);
    assert_eq!(hex::encode(rk.send), I_RECV);

    // Initiator derives the same transport keys.
    let ik = noise::consume_response(&st, &f.id_i, &f.keys_i, &Response(&resp)).unwrap();
    assert_eq!(hex::encode(ik.send), I_SEND);
    assert_eq!(hex::encode(ik.recv), I_RECV);
    assert_eq!(ik.remote_index, 0x0A0B_0C0D);

    // First transport message with each AEAD provider.
    let mut payload: Vec<u8> = (0..20).collect();
    payload.resize(32, 0);
    for p in [
        &crate::aead::RUST_CRYPTO as &dyn crate::aead::AeadProvider,
        crate::aead::default_provider(),
    ] {
        let k = p.key(&ik.send);
        let mut buf = payload.clone();
        let tag = k.seal_in_place(0, &mut buf).unwrap();
        let mut msg = hex::decode("040000000d0c0b0a0000000000000000").unwrap();
        msg.extend_from_slice(&buf);
        msg.extend_from_slice(&tag);
        assert_eq!(hex::encode(msg), FIRST_DATA, "{}", p.name());
    }
}

#[test]
fn wrong_psk_fails_response() {
    let f = fixture();
    let mut init = [0u8; INITIATION_LEN];
    let st = noise::create_initiation(&f.id_i, &f.keys_i, 1, ts(), &mut FixedRng(0x11), &mut init)
        .unwrap();
    let mut half = noise::consume_initiation(&f.id_r, &Initiation(&init)).unwrap();
    let keys_r_nopsk = PeerKeys::new(&f.id_r, f.id_i.public, None);
    noise::finish_initiation(&mut half, &keys_r_nopsk).unwrap();
    let mut resp = [0u8; RESPONSE_LEN];
    noise::create_response(&half, &keys_r_nopsk, 2, &mut FixedRng(0x22), &mut resp).unwrap();
    assert!(noise::consume_response(&st, &f.id_i, &f.keys_i, &Response(&resp)).is_err());
}

#[test]
fn boringtun_parses_our_initiation() {
    use boringtun::noise::{Packet, Tunn, handshake::parse_handshake_anon};
    let f = fixture();
    let mut init = [0u8; INITIATION_LEN];
    noise::create_initiation(&f.id_i, &f.keys_i, 77, ts(), &mut FixedRng(0x44), &mut init).unwrap();
    let Packet::HandshakeInit(h) = Tunn::parse_incoming_packet(&init).unwrap() else {
        panic!("not an initiation")
    };
    let sk = boringtun::x25519::StaticSecret::from(bytes32(101));
    let pk = boringtun::x25519::PublicKey::from(&sk);
    let half = parse_handshake_anon(&sk, &pk, &h).unwrap();
    assert_eq!(half.peer_index, 77);
    assert_eq!(half.peer_static_public, f.id_i.public.0);
}
