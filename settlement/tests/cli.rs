//! `babel-settle` against a real node: deploy, open, show, top up, redeem, close, finalize.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use alloy::signers::local::PrivateKeySigner;
use common::*;
use payments::ChannelId;

fn key_file(dir: &Path, name: &str, key: &PrivateKeySigner) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("0x{}\n", hex::encode(key.to_bytes()))).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn settle(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_babel-settle"))
        .args(args)
        .output()
        .expect("babel-settle runs");
    assert!(
        out.status.success(),
        "babel-settle {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn word_after<'a>(text: &'a str, word: &str) -> &'a str {
    let mut it = text.split_whitespace();
    while let Some(w) = it.next() {
        if w == word {
            return it.next().unwrap();
        }
    }
    panic!("{word} not in {text:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn operator_tool_opens_tops_up_and_closes_a_channel() {
    let Some(node) = node(31337) else { return };
    let dir = std::env::temp_dir().join(format!("babel-settle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for k in ["deployer", "payer", "payee"] {
        fund(node.url(), eth_key(k).address()).await;
    }
    let deployer = key_file(&dir, "deployer.key", &eth_key("deployer"));
    let out = settle(&[
        "deploy",
        "--rpc-url",
        node.url(),
        "--key-file",
        deployer.to_str().unwrap(),
    ]);
    let contract = word_after(&out, "contract").to_string();

    let config = |name: &str, key: &Path| {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "settlement rpc-url {} chain-id 31337 contract {contract}\n\
                 settlement key-file {}\n\
                 settlement deposit 5000 challenge-period 3600 top-up-step 700\n",
                node.url(),
                key.display()
            ),
        )
        .unwrap();
        path
    };
    let payer_conf = config(
        "payer.conf",
        &key_file(&dir, "payer.key", &eth_key("payer")),
    );
    let payee_conf = config(
        "payee.conf",
        &key_file(&dir, "payee.key", &eth_key("payee")),
    );
    let payer_conf = payer_conf.to_str().unwrap();
    let payee_conf = payee_conf.to_str().unwrap();

    let payer_ed = hex::encode(ed_key("payer").verifying_key().to_bytes());
    let payee_ed = hex::encode(ed_key("payee").verifying_key().to_bytes());
    let payee_addr = eth_key("payee").address().to_string();
    let out = settle(&[
        "--config",
        payer_conf,
        "open",
        "--payee",
        &payee_addr,
        "--payer-key",
        &payer_ed,
        "--payee-key",
        &payee_ed,
    ]);
    let id = word_after(&out, "channel").to_string();
    let show = settle(&["--config", payer_conf, "show", &id]);
    assert_eq!(word_after(&show, "state"), "open");
    assert_eq!(word_after(&show, "deposit"), "5000");

    settle(&["--config", payer_conf, "top-up", &id]);
    assert_eq!(
        word_after(&settle(&["--config", payer_conf, "show", &id]), "deposit"),
        "5700"
    );

    let channel = ChannelId(hex::decode(&id).unwrap().try_into().unwrap());
    let u = update(channel, &ed_key("payer"), &ed_key("payee"), 3, 1234);
    settle(&["--config", payee_conf, "redeem", &hex::encode(u.to_bytes())]);
    let show = settle(&["--config", payer_conf, "show", &id]);
    assert_eq!(word_after(&show, "paid"), "1234");
    assert_eq!(word_after(&show, "nonce"), "3");

    settle(&["--config", payer_conf, "close", &id]);
    let show = settle(&["--config", payer_conf, "show", &id]);
    assert_eq!(word_after(&show, "state"), "closing");
    settle(&["--config", payee_conf, "payee-close", &id]);
    assert_eq!(
        word_after(&settle(&["--config", payer_conf, "show", &id]), "state"),
        "closed"
    );

    // A configuration naming another chain is refused before anything is sent.
    let wrong = dir.join("wrong.conf");
    std::fs::write(
        &wrong,
        std::fs::read_to_string(payer_conf)
            .unwrap()
            .replace("chain-id 31337", "chain-id 100"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_babel-settle"))
        .args(["--config", wrong.to_str().unwrap(), "show", &id])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chain id 31337"));
    let _ = std::fs::remove_dir_all(&dir);
}
