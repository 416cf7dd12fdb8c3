#!/usr/bin/env python3
"""Independent second implementation of the WireGuard handshake used to
produce the known-answer vectors in src/kat.rs.

Uses only Python's hashlib/hmac (BLAKE2s) and the `cryptography` package
(X25519, ChaCha20-Poly1305); shares no code with the Rust crate.
Run: python3 tunnel/tests/vectors/gen_noise_kat.py
"""
import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives import serialization


def H(*parts):
    h = hashlib.blake2s()
    for p in parts:
        h.update(p)
    return h.digest()


def MAC(key, *parts):
    h = hashlib.blake2s(key=key, digest_size=16)
    for p in parts:
        h.update(p)
    return h.digest()


def HMAC(key, *parts):
    return hmac.new(key, b"".join(parts), hashlib.blake2s).digest()


def KDF(n, key, inp):
    t0 = HMAC(key, inp)
    out, prev = [], b""
    for i in range(1, n + 1):
        prev = HMAC(t0, prev + bytes([i]))
        out.append(prev)
    return out


def AEAD(key, counter, pt, aad):
    return ChaCha20Poly1305(key).encrypt(b"\0" * 4 + struct.pack("<Q", counter), pt, aad)


def priv(b):
    return X25519PrivateKey.from_private_bytes(b)


def pub(k):
    return k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def DH(k, p):
    return k.exchange(X25519PublicKey.from_public_bytes(p))


s_i = bytes(range(1, 33))
s_r = bytes(range(101, 133))
e_i = bytes([0x11] * 32)
e_r = bytes([0x22] * 32)
psk = bytes([0x33] * 32)
idx_i, idx_r = 0x01020304, 0x0A0B0C0D
ts = bytes.fromhex("400000006553f1000a0b0c00")

Si, Sr, Ei, Er = priv(s_i), priv(s_r), priv(e_i), priv(e_r)
Si_pub, Sr_pub, Ei_pub, Er_pub = pub(Si), pub(Sr), pub(Ei), pub(Er)

C = H(b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s")
Hh = H(C, b"WireGuard v1 zx2c4 Jason@zx2c4.com")
print("initial_ck", C.hex())
print("initial_h", Hh.hex())
Hh = H(Hh, Sr_pub)
C = KDF(1, C, Ei_pub)[0]
Hh = H(Hh, Ei_pub)
C, k = KDF(2, C, DH(Ei, Sr_pub))
enc_static = AEAD(k, 0, Si_pub, Hh)
Hh = H(Hh, enc_static)
C, k = KDF(2, C, DH(Si, Sr_pub))
enc_ts = AEAD(k, 0, ts, Hh)
Hh = H(Hh, enc_ts)
msg = struct.pack("<I", 1) + struct.pack("<I", idx_i) + Ei_pub + enc_static + enc_ts
mac1 = MAC(H(b"mac1----", Sr_pub), msg)
init = msg + mac1 + b"\0" * 16
print("initiation", init.hex())

C = KDF(1, C, Er_pub)[0]
Hh = H(Hh, Er_pub)
C = KDF(1, C, DH(Er, Ei_pub))[0]
C = KDF(1, C, DH(Er, Si_pub))[0]
C, t, k = KDF(3, C, psk)
Hh = H(Hh, t)
enc_nothing = AEAD(k, 0, b"", Hh)
Hh = H(Hh, enc_nothing)
msg = struct.pack("<I", 2) + struct.pack("<II", idx_r, idx_i) + Er_pub + enc_nothing
mac1 = MAC(H(b"mac1----", Si_pub), msg)
resp = msg + mac1 + b"\0" * 16
print("response", resp.hex())
t_send_i, t_recv_i = KDF(2, C, b"")
print("initiator_send_key", t_send_i.hex())
print("initiator_recv_key", t_recv_i.hex())
payload = bytes(range(20)) + b"\0" * 12  # padded to 32
data = struct.pack("<IIQ", 4, idx_r, 0) + AEAD(t_send_i, 0, payload, b"")
print("first_data", data.hex())
print("hmac_kat", HMAC(bytes([7] * 32), b"message").hex())
print("mac_kat", MAC(bytes([9] * 32), b"message").hex())
