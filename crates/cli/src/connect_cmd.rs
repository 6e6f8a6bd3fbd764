//! `strom connect`: runs a Connect worker (`standalone`), and manages connectors over any
//! Connect worker's REST API (Strom's or Kafka's): list, create, status, pause, resume,
//! stop, restart, delete, offsets, plugins. Tables by default, `--output json` for scripts.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{json, Value};

use crate::tools::{table, Output};

/// `strom connect ...`.
#[derive(Debug, Subcommand)]
pub enum ConnectCmd {
    /// Run a standalone worker (offsets in a local file) with these connectors.
    ///
    /// Examples:
    ///   strom connect standalone connect-standalone.properties connect-file-source.properties
    ///   strom connect standalone worker.properties source.json sink.properties
    #[command(verbatim_doc_comment)]
    Standalone {
        /// The worker's properties (Kafka's names: bootstrap.servers, listeners,
        /// offset.storage.file.filename, key.converter ...).
        worker: PathBuf,
        /// Connector configurations: properties files or Connect's JSON.
        connectors: Vec<PathBuf>,
    },
    /// Run a distributed worker: workers with the same group.id share the connectors and
    /// tasks, kept in the config, offset and status topics; connectors are managed over
    /// the REST API of any worker.
    ///
    /// Example:
    ///   strom connect distributed connect-distributed.properties
    #[command(verbatim_doc_comment)]
    Distributed {
        /// The worker's properties (Kafka's names: bootstrap.servers, group.id, listeners,
        /// config.storage.topic, offset.storage.topic, status.storage.topic ...).
        worker: PathBuf,
    },
    /// List the connectors with their states.
    List(Url),
    /// Create a connector (or, with --update, change its configuration).
    ///
    /// Examples:
    ///   strom connect create --file sink.properties
    ///   strom connect create local-file-sink -c connector.class=FileStreamSink -c topics=t -c file=/tmp/out
    #[command(verbatim_doc_comment)]
    Create {
        /// The connector's name (else the `name` in the file).
        name: Option<String>,
        /// A configuration file (properties or JSON).
        #[arg(long)]
        file: Option<PathBuf>,
        /// key=value settings, after the file's; repeatable.
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// Replace the configuration of an existing connector.
        #[arg(long)]
        update: bool,
        #[command(flatten)]
        url: Url,
    },
    /// A connector's state and its tasks'.
    Status(Named),
    /// Pause a connector's tasks.
    Pause(Named),
    /// Resume a paused or stopped connector.
    Resume(Named),
    /// Stop a connector (no tasks run; its offsets may then be changed).
    Stop(Named),
    /// Restart a connector, and with --include-tasks its tasks.
    Restart {
        #[command(flatten)]
        named: Named,
        /// Restart the tasks too.
        #[arg(long)]
        include_tasks: bool,
        /// Only what failed.
        #[arg(long)]
        only_failed: bool,
    },
    /// Delete a connector.
    Delete(Named),
    /// A connector's offsets (source positions, or a sink's committed Kafka offsets).
    Offsets(Named),
    /// The connector plugins the worker has.
    Plugins(Url),
}

/// The worker to talk to.
#[derive(Debug, clap::Args)]
pub struct Url {
    /// The Connect REST API.
    #[arg(
        long,
        env = "STROM_CONNECT_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    url: String,
}

/// A connector on a worker.
#[derive(Debug, clap::Args)]
pub struct Named {
    /// The connector.
    name: String,
    #[command(flatten)]
    url: Url,
}

/// One HTTP request to the REST API: the status and the JSON answer (null when empty). A
/// 4xx or 5xx answer is an error carrying Kafka's message.
async fn call(
    url: &Url,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let authority = url
        .url
        .trim_end_matches('/')
        .strip_prefix("http://")
        .with_context(|| format!("--url {}: only http:// is spoken", url.url))?
        .to_string();
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .with_context(|| format!("connecting to the Connect worker at {authority}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let bytes = match &body {
        Some(b) => serde_json::to_vec(b)?,
        None => Vec::new(),
    };
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, &authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(bytes)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    let json: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    if status >= 400 {
        let message = json
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| json.to_string());
        bail!("{message} (HTTP {status})");
    }
    Ok((status, json))
}

fn print_status(output: Output, status: &Value) {
    if output == Output::Json {
        println!("{status}");
        return;
    }
    let mut rows = vec![vec![
        "ID".to_string(),
        "STATE".into(),
        "WORKER".into(),
        "TRACE".into(),
    ]];
    let line = |id: String, s: &Value| {
        vec![
            id,
            s["state"].as_str().unwrap_or("").to_string(),
            s["worker_id"].as_str().unwrap_or("").to_string(),
            s["trace"]
                .as_str()
                .map(|t| t.lines().next().unwrap_or("").to_string())
                .unwrap_or_default(),
        ]
    };
    rows.push(line(
        format!(
            "{} ({})",
            status["name"].as_str().unwrap_or(""),
            status["type"].as_str().unwrap_or("")
        ),
        &status["connector"],
    ));
    for t in status["tasks"].as_array().into_iter().flatten() {
        rows.push(line(format!("  task {}", t["id"]), t));
    }
    table(&rows);
}

/// Runs one `strom connect` command.
pub async fn connect(output: Output, cmd: ConnectCmd) -> anyhow::Result<()> {
    match cmd {
        ConnectCmd::Standalone { .. } | ConnectCmd::Distributed { .. } => {
            bail!("workers run outside this dispatcher")
        }
        ConnectCmd::List(url) => {
            let (_, all) = call(&url, "GET", "/connectors?expand=status", None).await?;
            if output == Output::Json {
                println!("{all}");
                return Ok(());
            }
            let mut rows = vec![vec![
                "NAME".to_string(),
                "TYPE".into(),
                "STATE".into(),
                "TASKS".into(),
            ]];
            for (name, v) in all.as_object().into_iter().flatten() {
                let s = &v["status"];
                let tasks: Vec<String> = s["tasks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| t["state"].as_str().unwrap_or("").to_string())
                    .collect();
                rows.push(vec![
                    name.clone(),
                    s["type"].as_str().unwrap_or("").to_string(),
                    s["connector"]["state"].as_str().unwrap_or("").to_string(),
                    tasks.join(","),
                ]);
            }
            table(&rows);
        }
        ConnectCmd::Create {
            name,
            file,
            config,
            update,
            url,
        } => {
            let mut props = match &file {
                Some(f) => {
                    let text = std::fs::read_to_string(f)
                        .with_context(|| format!("reading {}", f.display()))?;
                    strom_connect::standalone::connector_config(&text)?
                }
                None => Default::default(),
            };
            for c in &config {
                let (k, v) = c
                    .split_once('=')
                    .with_context(|| format!("-c '{c}' is not key=value"))?;
                props.insert(k.trim().to_string(), v.trim().to_string());
            }
            let name = name
                .or_else(|| props.get("name").cloned())
                .context("the connector needs a name (an argument or `name` in the file)")?;
            props.insert("name".into(), name.clone());
            let (status, info) = if update {
                call(
                    &url,
                    "PUT",
                    &format!("/connectors/{name}/config"),
                    Some(json!(props)),
                )
                .await?
            } else {
                call(
                    &url,
                    "POST",
                    "/connectors",
                    Some(json!({"name": name, "config": props})),
                )
                .await?
            };
            match output {
                Output::Json => println!("{info}"),
                Output::Table => eprintln!(
                    "connector {name}: {}",
                    if status == 201 { "created" } else { "updated" }
                ),
            }
        }
        ConnectCmd::Status(n) => {
            let (_, status) = call(
                &n.url,
                "GET",
                &format!("/connectors/{}/status", n.name),
                None,
            )
            .await?;
            print_status(output, &status);
        }
        ConnectCmd::Pause(n) => {
            call(
                &n.url,
                "PUT",
                &format!("/connectors/{}/pause", n.name),
                None,
            )
            .await?;
            eprintln!("connector {}: pausing", n.name);
        }
        ConnectCmd::Resume(n) => {
            call(
                &n.url,
                "PUT",
                &format!("/connectors/{}/resume", n.name),
                None,
            )
            .await?;
            eprintln!("connector {}: resuming", n.name);
        }
        ConnectCmd::Stop(n) => {
            call(&n.url, "PUT", &format!("/connectors/{}/stop", n.name), None).await?;
            eprintln!("connector {}: stopped", n.name);
        }
        ConnectCmd::Restart {
            named,
            include_tasks,
            only_failed,
        } => {
            let path = format!(
                "/connectors/{}/restart?includeTasks={include_tasks}&onlyFailed={only_failed}",
                named.name
            );
            let (_, status) = call(&named.url, "POST", &path, None).await?;
            if status.is_null() {
                eprintln!("connector {}: restarted", named.name);
            } else {
                print_status(output, &status);
            }
        }
        ConnectCmd::Delete(n) => {
            call(&n.url, "DELETE", &format!("/connectors/{}", n.name), None).await?;
            eprintln!("connector {}: deleted", n.name);
        }
        ConnectCmd::Offsets(n) => {
            let (_, offsets) = call(
                &n.url,
                "GET",
                &format!("/connectors/{}/offsets", n.name),
                None,
            )
            .await?;
            if output == Output::Json {
                println!("{offsets}");
                return Ok(());
            }
            let mut rows = vec![vec!["PARTITION".to_string(), "OFFSET".into()]];
            for o in offsets["offsets"].as_array().into_iter().flatten() {
                rows.push(vec![o["partition"].to_string(), o["offset"].to_string()]);
            }
            table(&rows);
        }
        ConnectCmd::Plugins(url) => {
            let (_, plugins) = call(&url, "GET", "/connector-plugins", None).await?;
            if output == Output::Json {
                println!("{plugins}");
                return Ok(());
            }
            let mut rows = vec![vec!["CLASS".to_string(), "TYPE".into(), "VERSION".into()]];
            for p in plugins.as_array().into_iter().flatten() {
                rows.push(vec![
                    p["class"].as_str().unwrap_or("").to_string(),
                    p["type"].as_str().unwrap_or("").to_string(),
                    p["version"].as_str().unwrap_or("").to_string(),
                ]);
            }
            table(&rows);
        }
    }
    Ok(())
}

/// A worker's properties file.
fn worker_props(path: &std::path::Path) -> anyhow::Result<strom_connect::api::Props> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(strom_types::properties::parse(&text).into_iter().collect())
}

/// `strom connect standalone`: runs until SIGTERM or Ctrl-C, then stops the tasks (their
/// offsets stored) and exits.
pub async fn standalone(worker: PathBuf, connectors: Vec<PathBuf>) -> anyhow::Result<()> {
    let stop = crate::Stop::install();
    let worker_props = worker_props(&worker)?;
    let mut configs = Vec::new();
    for c in &connectors {
        let text =
            std::fs::read_to_string(c).with_context(|| format!("reading {}", c.display()))?;
        configs.push(
            strom_connect::standalone::connector_config(&text)
                .with_context(|| c.display().to_string())?,
        );
    }
    strom_connect::standalone::run(
        worker_props,
        configs,
        strom_connect::worker::Plugins::default(),
        |addr| crate::say(&format!("strom connect listening on {addr}")),
        async move { stop.wait().await },
    )
    .await?;
    tracing::info!("the worker stopped");
    Ok(())
}

/// `strom connect distributed`: runs until SIGTERM or Ctrl-C, then stops its tasks and
/// leaves the group, so the others take over at once.
pub async fn distributed(worker: PathBuf) -> anyhow::Result<()> {
    let stop = crate::Stop::install();
    let worker_props = worker_props(&worker)?;
    strom_connect::distributed::run(
        worker_props,
        strom_connect::worker::Plugins::default(),
        |addr| crate::say(&format!("strom connect listening on {addr}")),
        async move { stop.wait().await },
    )
    .await?;
    tracing::info!("the worker stopped");
    Ok(())
}
