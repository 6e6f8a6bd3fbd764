//! A single-node broker (broker and controller in one) run inside the calling process, on a
//! free loopback port: what the tests of the libraries built on the client (Connect,
//! Streams) start, and what a program embedding Strom would run.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

/// A running embedded node; stopped when dropped. Needs a multi-threaded tokio runtime.
pub struct Embedded {
    /// Its `host:port`.
    pub addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Embedded {
    /// Starts a node with its logs under `log_dir` and these settings over the defaults
    /// (no HTTP listener, 3 partitions of `__consumer_offsets`), and waits until it answers.
    pub async fn start(log_dir: &Path, overrides: &[(&str, &str)]) -> anyhow::Result<Embedded> {
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = socket.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let mut pairs: Vec<(String, String)> = vec![
            ("listeners".into(), format!("PLAINTEXT://{addr}")),
            ("log.dirs".into(), log_dir.display().to_string()),
            ("http.listeners".into(), String::new()),
            ("offsets.topic.num.partitions".into(), "3".into()),
        ];
        pairs.extend(
            overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let config = crate::BrokerConfig::from_pairs(&pairs)?;
        let metadata = crate::broker::start_metadata(&config, &addr).await?;
        let advertised = vec![strom_metadata::records::Endpoint {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port,
        }];
        let broker = crate::Broker::start(config, metadata, advertised).await?;
        let listeners = vec![crate::server::BoundListener {
            socket,
            name: Arc::from("PLAINTEXT"),
            tls: None,
        }];
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(crate::server::run(listeners, broker, async move {
            let _ = stopped.await;
        }));
        let admin =
            strom_client::Admin::new(vec![addr.clone()], "embedded", Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match admin.describe_cluster().await {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    return Err(e).context("the embedded broker did not answer within 30 s")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        Ok(Embedded {
            addr,
            stop: Some(stop),
        })
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
