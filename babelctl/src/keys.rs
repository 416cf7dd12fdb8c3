//! `babelctl genkey` and `babelctl pubkey`: WireGuard-format keys for `tunnel` statements, with
//! `wg genkey` / `wg pubkey`'s conventions (the private key goes to stdout; `pubkey` reads it on
//! stdin).

use std::io::{Read, Write};

use anyhow::Context;

/// Prints a new private key.
pub fn genkey(out: &mut dyn Write) -> anyhow::Result<()> {
    let (private, _) = tunnel::generate_keypair(&mut rand_core::OsRng);
    writeln!(out, "{}", private.to_base64())?;
    Ok(())
}

/// Reads a private key and prints its public key.
pub fn pubkey(input: &mut dyn Read, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut text = String::new();
    input
        .take(1024)
        .read_to_string(&mut text)
        .context("reading the private key")?;
    let public =
        tunnel::keys::public_key_from_base64(text.trim()).context("not a WireGuard private key")?;
    writeln!(out, "{public}")?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn genkey_then_pubkey() {
        let mut private = Vec::new();
        genkey(&mut private).unwrap();
        let text = String::from_utf8(private.clone()).unwrap();
        assert_eq!(text.trim().len(), 44, "{text}");
        let mut public = Vec::new();
        pubkey(&mut private.as_slice(), &mut public).unwrap();
        let p = String::from_utf8(public).unwrap();
        assert_eq!(p.trim().len(), 44);
        assert_ne!(p, text);
        assert!(pubkey(&mut "garbage".as_bytes(), &mut Vec::new()).is_err());
    }
}
