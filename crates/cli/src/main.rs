//! The `strom` command. `strom server` runs a broker: with no arguments a single node
//! (broker and controller) on 127.0.0.1:9092 with its data in ./strom-data. `strom topic`,
//! `produce`, `consume`, `group`, `streams`, `txn`, `user`, `acl`, `quota`, `perf` and
//! `cluster` are clients of any Kafka-compatible cluster (`--bootstrap-server`, or
//! `STROM_BROKERS`).
//! `strom connect` runs a Connect worker and manages connectors over Connect's REST API.

mod acl_cmd;
mod cluster_cmd;
mod connect_cmd;
mod group_cmd;
mod health_cmd;
mod quota_cmd;
mod reassign_cmd;
mod streams_cmd;
mod tools;
mod top_cmd;
mod txn_cmd;
mod user_cmd;

use std::path::PathBuf;

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use strom_broker::config::SecurityProtocol;
use strom_broker::tls::SslSettings;
use strom_broker::{Broker, BrokerConfig};
use strom_metadata::records::Endpoint;

#[derive(Parser)]
#[command(
    name = "strom",
    version,
    about = "Strom: a Kafka-compatible streaming platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    conn: tools::Conn,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (single node by default).
    ///
    /// Examples:
    ///   strom server
    ///   strom server --config server.properties --override log.dirs=/var/lib/strom
    #[command(verbatim_doc_comment)]
    Server {
        /// A server.properties file (Kafka's property names).
        #[arg(long)]
        config: Option<PathBuf>,
        /// key=value, overriding the file; repeatable.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Create, list, describe, delete and configure topics.
    Topic {
        #[command(subcommand)]
        cmd: tools::TopicCmd,
    },
    /// Produce records from stdin, one per line.
    ///
    /// Examples:
    ///   printf 'k1:hello\n' | strom produce orders --key-separator :
    ///   strom produce orders --header source=import --compression zstd --acks all < lines.txt
    #[command(verbatim_doc_comment)]
    Produce(tools::ProduceArgs),
    /// Print records of topics.
    ///
    /// Examples:
    ///   strom consume orders --from beginning -e -f '{partition}:{offset} {key}={value}'
    ///   strom consume orders payments --group audit --from beginning
    ///   strom consume orders --from @1767225600000 -n 10
    #[command(verbatim_doc_comment)]
    Consume(tools::ConsumeArgs),
    /// Consumer groups: list, describe (offsets, lag, members), reset offsets, delete.
    Group {
        #[command(subcommand)]
        cmd: group_cmd::GroupCmd,
    },
    /// Kafka Streams applications: reset one to reprocess its input, describe one.
    Streams {
        #[command(subcommand)]
        cmd: streams_cmd::StreamsCmd,
    },
    /// Load generators: producer throughput and latency, consumer throughput.
    Perf {
        #[command(subcommand)]
        cmd: tools::PerfCmd,
    },
    /// Throughput per topic and lag per consumer group, redrawn every second until Ctrl-C.
    ///
    /// Examples:
    ///   strom top
    ///   strom top --interval 5 --iterations 12 > five-minutes.txt
    #[command(verbatim_doc_comment)]
    Top(top_cmd::TopArgs),
    /// Transactions: list and describe transactional ids, a partition's producers, abort a
    /// hanging transaction.
    Txn {
        #[command(subcommand)]
        cmd: txn_cmd::TxnCmd,
    },
    /// SCRAM users: create (or set a password), list, delete.
    User {
        #[command(subcommand)]
        cmd: user_cmd::UserCmd,
    },
    /// ACLs: create, list, delete (kafka-acls.sh's flags).
    Acl {
        #[command(subcommand)]
        cmd: acl_cmd::AclCmd,
    },
    /// Client quotas: set, describe (by user, client id or both; defaults too).
    Quota {
        #[command(subcommand)]
        cmd: quota_cmd::QuotaCmd,
    },
    /// The cluster: brokers and controller, the metadata quorum, a local dev cluster.
    Cluster {
        #[command(subcommand)]
        cmd: cluster_cmd::ClusterCmd,
    },
    /// Connect: run a standalone worker; list, create, pause, restart, delete connectors
    /// over a worker's REST API.
    Connect {
        #[command(subcommand)]
        cmd: connect_cmd::ConnectCmd,
    },
}

/// Logs to standard error: `levels` (`RUST_LOG` when set), as text (coloured only on a
/// terminal) or as JSON lines.
fn init_logging(levels: &str, json: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let filter = match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(f) => f,
        Err(_) => tracing_subscriber::EnvFilter::try_new(levels)
            .map_err(|e| anyhow::anyhow!("logger.levels '{levels}': {e}"))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    if !matches!(cli.command, Command::Server { .. }) {
        init_logging("info,openraft=warn", false)?;
    }
    if !matches!(cli.command, Command::Server { .. }) {
        if let Err(e) = cli.conn.load() {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
    let client = |f: std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>| {
        tokio::runtime::Runtime::new()?.block_on(f)
    };
    let conn = &cli.conn;
    let outcome = match cli.command {
        Command::Server { config, overrides } => return server(config, overrides),
        Command::Topic { cmd } => client(Box::pin(tools::topic(conn, cmd))),
        Command::Produce(args) => client(Box::pin(tools::produce(conn, args))),
        Command::Consume(args) => client(Box::pin(tools::consume(conn, args))),
        Command::Perf { cmd } => client(Box::pin(tools::perf(conn, cmd))),
        Command::Top(args) => client(Box::pin(top_cmd::top(conn, args))),
        Command::Group { cmd } => client(Box::pin(group_cmd::group(conn, cmd))),
        Command::Streams { cmd } => client(Box::pin(streams_cmd::streams(conn, cmd))),
        Command::Txn { cmd } => client(Box::pin(txn_cmd::txn(conn, cmd))),
        Command::User { cmd } => client(Box::pin(user_cmd::user(conn, cmd))),
        Command::Acl { cmd } => client(Box::pin(acl_cmd::acl(conn, cmd))),
        Command::Quota { cmd } => client(Box::pin(quota_cmd::quota(conn, cmd))),
        Command::Cluster {
            cmd: cluster_cmd::ClusterCmd::Dev(args),
        } => return cluster_cmd::dev(args),
        Command::Cluster { cmd } => client(Box::pin(cluster_cmd::cluster(conn, cmd))),
        Command::Connect {
            cmd: connect_cmd::ConnectCmd::Standalone { worker, connectors },
        } => client(Box::pin(connect_cmd::standalone(worker, connectors))),
        Command::Connect {
            cmd: connect_cmd::ConnectCmd::Distributed { worker },
        } => client(Box::pin(connect_cmd::distributed(worker))),
        Command::Connect { cmd } => client(Box::pin(connect_cmd::connect(conn.output, cmd))),
    };
    // Client commands: one clear line and exit status 1, which scripts can trust.
    if let Err(e) = outcome {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

fn server(file: Option<PathBuf>, overrides: Vec<String>) -> anyhow::Result<()> {
    let mut pairs = Vec::new();
    if let Some(path) = &file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        pairs.extend(BrokerConfig::parse_properties(&text));
    }
    for o in &overrides {
        let (k, v) = o
            .split_once('=')
            .with_context(|| format!("--override '{o}' is not key=value"))?;
        pairs.push((k.trim().to_string(), v.trim().to_string()));
    }
    let config = BrokerConfig::from_pairs(&pairs)?;
    init_logging(&config.logger_levels, config.logger_format == "json")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run_node(config))
}

/// Runs one node in the roles its config gives until SIGTERM or Ctrl-C: binds its
/// listeners, joins the metadata quorum, and serves. A broker shuts down under control
/// (its leaderships move first).
async fn run_node(config: BrokerConfig) -> anyhow::Result<()> {
    let stop = Stop::install();
    let bind = |l: &strom_broker::config::Listener| {
        let (host, port) = (l.host.clone(), l.port);
        async move {
            tokio::net::TcpListener::bind((host.as_str(), port))
                .await
                .with_context(|| format!("binding {host}:{port}"))
        }
    };
    let mut bound = Vec::new();
    if config.is_broker() {
        for l in config.broker_listeners() {
            bound.push((l.clone(), bind(l).await?));
        }
    }
    let controller_listener = match config
        .controller_listener()
        .filter(|_| config.is_controller())
    {
        Some(l) => Some(bind(l).await?),
        None => None,
    };
    let advertised = advertised_endpoints(&config, &bound)?;
    let broker_addr = config
        .inter_broker_listener()
        .and_then(|name| advertised.iter().find(|e| e.name == name))
        .or(advertised.first())
        .map(|e| format!("{}:{}", e.host, e.port));
    let controller_addr = match &controller_listener {
        Some(l) => Some(l.local_addr()?.to_string()),
        None => None,
    };
    let raft_addr = controller_addr
        .clone()
        .or_else(|| broker_addr.clone())
        .context("a node needs a listener")?;
    let http_sockets = strom_http::bind(&config.http_listeners).await?;
    let http_addrs: Vec<String> = http_sockets
        .iter()
        .filter_map(|s| s.local_addr().ok())
        .map(|a| a.to_string())
        .collect();
    let metadata = strom_broker::broker::start_metadata(&config, &raft_addr).await?;
    let controller_task = controller_listener.map(|l| tokio::spawn(metadata.clone().serve(l)));
    // The console is a client of this node, through its inter-broker listener.
    let console = match (&broker_addr, config.is_broker()) {
        (Some(addr), true) => Some(strom_http::console::Console::new(
            vec![addr.clone()],
            strom_broker::auth::inter_broker_security(&config)?,
            config.console_actions_enable,
        )),
        _ => None,
    };
    let http_node = strom_http::Node::new(metadata.clone(), config.is_broker(), console);
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http_task = tokio::spawn(strom_http::serve(http_sockets, http_node.clone(), async {
        let _ = http_stopped.await;
    }));
    for addr in &http_addrs {
        tracing::info!(%addr, "HTTP listener: /metrics, /health/live, /health/ready");
    }
    // Said on its own line after the start line, which scripts read first.
    let http_line =
        (!http_addrs.is_empty()).then(|| format!("strom http on {}", http_addrs.join(", ")));
    let roles = config.process_roles.join(",");
    let dirs = config
        .log_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    if bound.is_empty() {
        tracing::info!(node_id = config.node_id, controller = ?controller_addr, "Strom controller started");
        say(&format!(
            "strom controller listening on {}, data in {dirs}",
            controller_addr.unwrap_or_default()
        ));
        if let Some(line) = &http_line {
            say(line);
        }
        stop.wait().await;
        tracing::info!("shutting down");
        let _ = http_stop.send(());
        let _ = http_task.await;
        metadata.shutdown().await;
        return Ok(());
    }
    let mut listeners = Vec::with_capacity(bound.len());
    for (l, socket) in bound {
        let tls = match config.security_protocol(&l.name) {
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => {
                let settings = SslSettings::resolve(&config.raw, &l.name);
                let tls = settings
                    .server_config()
                    .with_context(|| format!("listener {}", l.name))?;
                let rules = settings
                    .principal_rules()
                    .with_context(|| format!("listener {}", l.name))?;
                Some((tls, std::sync::Arc::new(rules)))
            }
            _ => None,
        };
        listeners.push(strom_broker::server::BoundListener {
            socket,
            name: l.name.as_str().into(),
            tls,
        });
    }
    let local = listeners[0].socket.local_addr()?;
    let also: String = listeners[1..]
        .iter()
        .filter_map(|l| Some(format!("; {} on {}", l.name, l.socket.local_addr().ok()?)))
        .collect();
    let node_id = config.node_id;
    let broker = Broker::start(config, metadata.clone(), advertised).await?;
    http_node.attach(broker.clone());
    tracing::info!(
        node_id,
        listener = %local,
        roles = %roles,
        cluster_id = %broker.image().cluster_id,
        "Strom broker started"
    );
    match &controller_addr {
        Some(c) => say(&format!(
            "strom server listening on {local}, controller on {c}, data in {dirs}{also}"
        )),
        None => say(&format!(
            "strom server listening on {local}, data in {dirs}{also}"
        )),
    }
    if let Some(line) = &http_line {
        say(line);
    }
    let stopping = broker.clone();
    let shutdown = async move {
        stop.wait().await;
        tracing::info!("controlled shutdown: moving this broker's leaderships away");
        if !stopping.controlled_shutdown(Duration::from_secs(30)).await {
            tracing::warn!("the controller did not complete the controlled shutdown in time");
        }
    };
    strom_broker::server::run(listeners, broker.clone(), shutdown).await;
    tracing::info!("shutting down");
    let _ = http_stop.send(());
    let _ = http_task.await;
    if let Some(t) = controller_task {
        t.abort();
    }
    broker.shutdown().await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// What this node tells clients and brokers of each advertised listener: a port of 0 (a
/// test's "any free port") becomes the port its listener was bound to.
fn advertised_endpoints(
    config: &BrokerConfig,
    bound: &[(strom_broker::config::Listener, tokio::net::TcpListener)],
) -> anyhow::Result<Vec<Endpoint>> {
    let mut out = Vec::new();
    for a in &config.advertised_listeners {
        let port = match bound
            .iter()
            .find(|(l, _)| l.name == a.name)
            .or(bound.first())
        {
            Some((_, socket)) if a.port == 0 => socket.local_addr()?.port(),
            _ => a.port,
        };
        out.push(Endpoint {
            name: a.name.clone(),
            host: a.host.clone(),
            port,
        });
    }
    Ok(out)
}

/// A line on standard output for whoever started the node. A reader that stopped reading
/// (a script took the first line and closed the pipe) must not bring the node down, as
/// `println!` would on a broken pipe.
pub(crate) fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

pub(crate) async fn shutdown_signal() {
    Stop::install().wait().await
}

/// SIGTERM and SIGINT (Ctrl-C), caught from the moment this is made: a signal that
/// arrives while the node is still starting is kept, not lost to the default action.
pub(crate) struct Stop {
    term: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Stop {
    pub(crate) fn install() -> Stop {
        use tokio::signal::unix::{signal, SignalKind};
        Stop {
            term: signal(SignalKind::terminate()).ok(),
            interrupt: signal(SignalKind::interrupt()).ok(),
        }
    }

    pub(crate) async fn wait(mut self) {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.term) => {}
            _ = next(&mut self.interrupt) => {}
        }
    }
}
