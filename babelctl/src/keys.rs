//! `babelctl genkey` and `babelctl pubkey`: WireGuard-format keys for `tunnel` statements, with
//! `wg genkey` / `wg pubkey`'s conventions (the private key goes to stdout; `pubkey` reads it on
//! stdin). With `--ed25519`, the same for the signing keys (64 hex digits, an ed25519 seed)
//! that `pay-private-key` and `verify-private-key` take, whose public keys (64 hex digits) go
//! into other routers' `exit-server ... key`, `exit-allow` and `verify-key` statements.

use std::io::{Read, Write};

use anyhow::Context;

/// Prints a new private key.
pub fn genkey(out: &mut dyn Write) -> anyhow::Result<()> {
    let (private, _) = tunnel::generate_keypair(&mut rand_core::OsRng);
    writeln!(out, "{}", private.to_base64())?;
    Ok(())
}

/// Prints a new ed25519 seed, 64 hex digits (for `pay-private-key`, `verify-private-key`).
pub fn genkey_ed25519(out: &mut dyn Write) -> anyhow::Result<()> {
    let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    writeln!(out, "{}", hex::encode(key.to_bytes()))?;
    Ok(())
}

/// Reads an ed25519 seed (64 hex digits) and prints its public key (64 hex digits).
pub fn pubkey_ed25519(input: &mut dyn Read, out: &mut dyn Write) -> anyhow::Result<()> {
    let text = read_private_key(input)?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .context("not an ed25519 private key (64 hex digits)")?;
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    writeln!(out, "{}", hex::encode(public.as_bytes()))?;
    Ok(())
}

/// Reads a private key and prints its public key.
pub fn pubkey(input: &mut dyn Read, out: &mut dyn Write) -> anyhow::Result<()> {
    let text = read_private_key(input)?;
    let public =
        tunnel::keys::public_key_from_base64(text.trim()).context("not a WireGuard private key")?;
    writeln!(out, "{public}")?;
    Ok(())
}

/// The private key on `input`: its first kilobyte at most (a key is far shorter).
fn read_private_key(input: &mut dyn Read) -> anyhow::Result<String> {
    let mut text = String::new();
    input
        .take(1024)
        .read_to_string(&mut text)
        .context("reading the private key")?;
    Ok(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    type Gen = fn(&mut dyn Write) -> anyhow::Result<()>;
    type Pub = fn(&mut dyn Read, &mut dyn Write) -> anyhow::Result<()>;

    /// A new key's public key: printed, of `len` characters, not the private key; garbage refused.
    fn round_trip(genkey: Gen, pubkey: Pub, len: usize) {
        let mut private = Vec::new();
        genkey(&mut private).unwrap();
        let text = String::from_utf8(private.clone()).unwrap();
        assert_eq!(text.trim().len(), len, "{text}");
        let mut public = Vec::new();
        pubkey(&mut private.as_slice(), &mut public).unwrap();
        let p = String::from_utf8(public).unwrap();
        assert_eq!(p.trim().len(), len);
        assert_ne!(p, text);
        assert!(pubkey(&mut "garbage".as_bytes(), &mut Vec::new()).is_err());
    }

    #[test]
    fn genkey_then_pubkey() {
        round_trip(genkey, pubkey, 44);
    }

    #[test]
    fn ed25519_genkey_then_pubkey() {
        round_trip(genkey_ed25519, pubkey_ed25519, 64);
        // RFC 8032 section 7.1, test 1: the secret key and its public key.
        let mut public = Vec::new();
        pubkey_ed25519(
            &mut "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\n".as_bytes(),
            &mut public,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(public).unwrap(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\n"
        );
        for bad in [
            "garbage",
            "9d61",
            "zz61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        ] {
            assert!(
                pubkey_ed25519(&mut bad.as_bytes(), &mut Vec::new()).is_err(),
                "{bad}"
            );
        }
    }
}
