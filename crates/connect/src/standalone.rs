//! Standalone mode (Kafka's `connect-standalone`): one worker, its source offsets in a
//! local file (`offset.storage.file.filename`), the connectors given as files at start
//! (properties, or Connect's JSON `{"name": ..., "config": {...}}`), and the REST API on
//! `listeners` for everything else.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;

use crate::api::Props;
use crate::herder::{Herder, Herding};
use crate::offsets::FileOffsetStore;
use crate::worker::{Plugins, Worker, WorkerConfig};
use crate::ConnectError;

/// A connector file's configuration: Java properties, or Connect's JSON (with or without
/// the `{"name", "config"}` wrapper).
pub fn connector_config(text: &str) -> Result<Props, ConnectError> {
    if !text.trim_start().starts_with('{') {
        return Ok(strom_types::properties::parse(text).into_iter().collect());
    }
    let j: Json = serde_json::from_str(text)
        .map_err(|e| ConnectError::Config(format!("the connector file is not valid JSON: {e}")))?;
    let (name, config) = match (j.get("name"), j.get("config")) {
        (Some(n), Some(c)) => (n.as_str().map(str::to_string), c),
        _ => (None, &j),
    };
    let obj = config
        .as_object()
        .ok_or_else(|| ConnectError::Config("a connector's config must be a JSON object".into()))?;
    let mut props: Props = obj
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect();
    if let Some(name) = name {
        props.entry("name".into()).or_insert(name);
    }
    Ok(props)
}

/// Runs a standalone worker with these connectors until `shutdown` resolves;
/// `listening` is told the REST API's address once it is bound.
pub async fn run(
    worker_props: Props,
    connectors: Vec<Props>,
    plugins: Plugins,
    listening: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConnectError> {
    let config = WorkerConfig::from_props(worker_props)?;
    let offsets_file = config.offset_file.clone().ok_or_else(|| {
        ConnectError::Config(
            "Missing required configuration \"offset.storage.file.filename\" which has no default value."
                .into(),
        )
    })?;
    let offsets = Arc::new(FileOffsetStore::open(PathBuf::from(offsets_file))?);
    let (listener, bound) = bind(&config).await?;
    let id = worker_id(&config, bound);
    let cluster_id = cluster_id(&config).await?;
    tracing::info!(worker = %id, cluster = %cluster_id, "standalone worker started");
    let worker = Arc::new(Worker {
        id,
        config,
        plugins,
        offsets,
    });
    let herder = Arc::new(Herder::new(worker));
    for c in connectors {
        let name = c.get("name").cloned().unwrap_or_default();
        herder
            .put(&name, c, false)
            .await
            .map_err(|e| ConnectError::Config(format!("connector {name}: {e}")))?;
    }
    listening(bound);
    let served = crate::rest::serve(listener, herder.clone(), Some(cluster_id), shutdown).await;
    herder.shutdown().await;
    served.map_err(|e| ConnectError::Connect(format!("REST API: {e}")))
}

/// Binds the REST API's listener (`listeners`): the listener and the address it got.
pub(crate) async fn bind(
    config: &WorkerConfig,
) -> Result<(tokio::net::TcpListener, SocketAddr), ConnectError> {
    let address = config.listen_address()?;
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|e| ConnectError::Config(format!("cannot listen on {address}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| ConnectError::Connect(format!("listener: {e}")))?;
    Ok((listener, bound))
}

/// The worker's id: the advertised REST host and port (`rest.advertised.host.name`,
/// `rest.advertised.port`), else the bound address.
pub(crate) fn worker_id(config: &WorkerConfig, bound: SocketAddr) -> String {
    let host = config
        .props
        .get("rest.advertised.host.name")
        .cloned()
        .unwrap_or_else(|| bound.ip().to_string());
    let port = config
        .props
        .get("rest.advertised.port")
        .cloned()
        .unwrap_or_else(|| bound.port().to_string());
    format!("{host}:{port}")
}

/// The Kafka cluster's id; a worker that cannot reach its cluster does not start, as in
/// Kafka.
pub(crate) async fn cluster_id(config: &WorkerConfig) -> Result<String, ConnectError> {
    let mut security = strom_client::SecurityConfig::default();
    for (k, v) in &config.props {
        security.set(k, v).map_err(ConnectError::Kafka)?;
    }
    let bootstrap = config
        .bootstrap_servers
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let admin = strom_client::Admin::secured(
        bootstrap,
        "connect-worker",
        Duration::from_secs(10),
        &security,
    );
    let described = tokio::time::timeout(Duration::from_secs(60), admin.describe_cluster())
        .await
        .map_err(|_| {
            ConnectError::Connect(format!(
                "could not reach the Kafka cluster at {} within 60 s",
                config.bootstrap_servers
            ))
        })?
        .map_err(ConnectError::Kafka)?;
    Ok(described.cluster_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_files_are_properties_or_connects_json() {
        let p = connector_config(
            "name=local-file-source\nconnector.class=FileStreamSource\ntasks.max=1\nfile=test.txt\ntopic=connect-test\n",
        )
        .expect("properties");
        assert_eq!(p.get("name").map(String::as_str), Some("local-file-source"));
        assert_eq!(p.get("topic").map(String::as_str), Some("connect-test"));

        let j = connector_config(
            r#"{"name": "sink", "config": {"connector.class": "FileStreamSink", "tasks.max": 2, "topics": "t"}}"#,
        )
        .expect("json");
        assert_eq!(j.get("name").map(String::as_str), Some("sink"));
        assert_eq!(
            j.get("tasks.max").map(String::as_str),
            Some("2"),
            "numbers become text"
        );

        let flat = connector_config(r#"{"name": "x", "connector.class": "FileStreamSink"}"#)
            .expect("flat");
        assert_eq!(
            flat.get("connector.class").map(String::as_str),
            Some("FileStreamSink")
        );
        assert!(connector_config("{not json").is_err());
    }
}
