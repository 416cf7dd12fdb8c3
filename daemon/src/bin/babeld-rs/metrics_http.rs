//! `metrics-port`: the Prometheus endpoint's HTTP side; renderings come from the main loop.

use std::net::Ipv6Addr;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;

/// Where the main loop sends one rendering of the metrics.
pub type MetricsReply = tokio::sync::oneshot::Sender<String>;

/// The next scrape waiting for a rendering; never, without a `metrics-port`.
pub async fn next_metrics_request(
    rx: &mut Option<mpsc::UnboundedReceiver<MetricsReply>>,
) -> Option<MetricsReply> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Longest HTTP request head read from a metrics client.
const MAX_HTTP_HEAD: usize = 4096;

/// `metrics-port`: Prometheus metrics over HTTP/1.0 on `[::1]:PORT` (`GET /metrics`; local
/// only, like the control socket). Each scrape asks the main loop for a fresh rendering.
pub async fn serve_metrics(
    port: u16,
    tx: mpsc::UnboundedSender<MetricsReply>,
) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind((Ipv6Addr::LOCALHOST, port))
        .await
        .with_context(|| format!("metrics port {port}"))?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                let read = tokio::time::timeout(Duration::from_secs(5), async {
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HTTP_HEAD {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
                        }
                    }
                })
                .await;
                if read.is_err() {
                    return;
                }
                let (status, body) =
                    if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics\r") {
                        let (rtx, rrx) = tokio::sync::oneshot::channel();
                        if tx.send(rtx).is_err() {
                            return;
                        }
                        match rrx.await {
                            Ok(body) => ("200 OK", body),
                            Err(_) => return,
                        }
                    } else {
                        ("404 Not Found", "try /metrics\n".to_owned())
                    };
                let reply = format!(
                    "HTTP/1.0 {status}\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    Ok(())
}
