//! The node's HTTP listener (`http.listeners`): `/metrics` for Prometheus, `/health/live`
//! and `/health/ready` for probes, and on a broker the web console (`/`, [`console`]). It
//! starts before the broker has loaded its logs, so a probe sees a starting node as alive
//! and not yet ready.

pub mod console;

use std::future::Future;
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use strom_broker::broker::Broker;
use strom_broker::config::Listener;
use strom_broker::health::{self, Readiness};
use strom_broker::metrics::state::{self, Exposition};
use strom_metadata::MetadataNode;
use tokio::net::TcpListener;

/// What the listener shows: the metadata node, and the broker once it has started (never,
/// on a controller-only node).
pub struct Node {
    metadata: Arc<MetadataNode>,
    broker: OnceLock<Arc<Broker>>,
    is_broker: bool,
    console: Option<Arc<console::Console>>,
}

impl Node {
    /// A node in the metadata quorum; `is_broker` when a broker will be attached, with
    /// the console it serves.
    pub fn new(
        metadata: Arc<MetadataNode>,
        is_broker: bool,
        console: Option<Arc<console::Console>>,
    ) -> Arc<Node> {
        Arc::new(Node {
            metadata,
            broker: OnceLock::new(),
            is_broker,
            console,
        })
    }

    /// The broker has started.
    pub fn attach(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
    }

    fn readiness(&self) -> Readiness {
        match (self.broker.get(), self.is_broker) {
            (Some(b), _) => health::broker(b),
            (None, true) => Readiness::starting("the broker"),
            (None, false) => health::controller(&self.metadata),
        }
    }

    async fn metrics(&self) -> String {
        match self.broker.get() {
            Some(b) => {
                let events = b.metrics.render_events();
                let mut x = Exposition::with_capacity(events.len() + 64 * 1024);
                state::render(b, &mut x).await;
                let mut text = events;
                text.push_str(&x.finish());
                text
            }
            None => {
                let mut x = Exposition::default();
                state::metadata_families(&self.metadata, &self.metadata.image(), &mut x);
                state::process(&mut x);
                x.finish()
            }
        }
    }
}

/// Binds every HTTP listener (before anything slow starts, so a port in use stops the node
/// at once).
pub async fn bind(listeners: &[Listener]) -> anyhow::Result<Vec<TcpListener>> {
    let mut out = Vec::with_capacity(listeners.len());
    for l in listeners {
        let socket = TcpListener::bind((l.host.as_str(), l.port))
            .await
            .map_err(|e| anyhow::anyhow!("binding the HTTP listener {}:{}: {e}", l.host, l.port))?;
        out.push(socket);
    }
    Ok(out)
}

/// The routes.
pub fn router(node: Arc<Node>) -> Router {
    let probes = Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(node.clone());
    match &node.console {
        Some(c) => probes.merge(console::router(c.clone())),
        None => probes,
    }
}

/// Serves `sockets` until `shutdown` completes.
pub async fn serve(
    sockets: Vec<TcpListener>,
    node: Arc<Node>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = tokio::task::JoinSet::new();
    for socket in sockets {
        let app = router(node.clone());
        let mut stopped = stop.subscribe();
        tasks.spawn(async move {
            let addr = socket.local_addr().ok();
            let served = axum::serve(socket, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.recv().await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(?addr, error = %e, "HTTP listener failed");
            }
        });
    }
    shutdown.await;
    let _ = stop.send(());
    // Graceful shutdown waits for open connections, and a console's live tail never ends
    // by itself: a few seconds, then they are cut.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(std::time::Duration::from_secs(3), drain)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        node.metrics().await,
    )
        .into_response()
}

async fn live() -> Response {
    (StatusCode::OK, Json(serde_json::json!({"live": true}))).into_response()
}

async fn ready(State(node): State<Arc<Node>>) -> Response {
    let r = node.readiness();
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r)).into_response()
}
