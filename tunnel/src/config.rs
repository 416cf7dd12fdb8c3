//! Configuration types the daemon reads from its config file.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::peer::PeerOptions;
use crate::policy::ForwardingPolicy;
use babel_wire::Prefix;

/// One tunnel interface.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelConfig {
    /// Our static private key (base64).
    pub private_key: PrivateKey,
    /// UDP listen port (`None`: pick any).
    #[serde(default)]
    pub listen_port: Option<u16>,
    /// Peers.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
}

/// One peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Peer's public key (base64).
    pub public_key: PublicKey,
    /// Optional pre-shared key (base64).
    #[serde(default)]
    pub preshared_key: Option<PresharedKey>,
    /// Endpoint `ip:port`.
    #[serde(default)]
    pub endpoint: Option<SocketAddr>,
    /// Prefixes routed to and accepted from this peer.
    #[serde(default)]
    pub allowed_ips: Vec<Prefix>,
    /// Persistent keepalive in seconds.
    #[serde(default)]
    pub persistent_keepalive: Option<u16>,
    /// Forwarding policy for data packets.
    #[serde(default)]
    pub policy: ForwardingPolicy,
}

impl PeerConfig {
    /// The per-peer options for [`crate::Peer`]/[`crate::Device`].
    pub fn options(&self) -> PeerOptions {
        PeerOptions {
            preshared_key: self.preshared_key.clone(),
            persistent_keepalive: self.persistent_keepalive,
            policy: self.policy,
            endpoint: self.endpoint,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn parse_json_config() {
        let json = r#"{
            "private_key": "YAnUPTwBzH2Ln6lY6WwlDjb8yqsx5DbN6TG0sUuK8Ws=",
            "listen_port": 51820,
            "peers": [{
                "public_key": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
                "endpoint": "192.0.2.1:51820",
                "allowed_ips": ["10.0.0.2/32", "fd00::2/128"],
                "persistent_keepalive": 25,
                "policy": {"mode": "rate_limit", "bytes_per_sec": 1000, "burst": 2000}
            }]
        }"#;
        let c: TunnelConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.listen_port, Some(51820));
        assert_eq!(c.peers[0].allowed_ips.len(), 2);
        assert_eq!(
            c.peers[0].policy,
            ForwardingPolicy::RateLimit {
                bytes_per_sec: 1000,
                burst: 2000
            }
        );
        let back = serde_json::to_string(&c).unwrap();
        let c2: TunnelConfig = serde_json::from_str(&back).unwrap();
        assert_eq!(c2.peers[0].public_key, c.peers[0].public_key);
        assert!(serde_json::from_str::<TunnelConfig>(r#"{"private_key":"bad"}"#).is_err());
    }
}
