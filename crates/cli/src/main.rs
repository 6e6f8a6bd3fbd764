//! The `strom` command. `strom server` runs a broker: with no arguments a single node
//! (broker and controller) on 127.0.0.1:9092 with its data in ./strom-data. `strom topic`,
//! `produce`, `consume`, `group`, `perf` and `cluster` are clients of any Kafka-compatible cluster
//! (`--bootstrap-server`, or `STROM_BROKERS`).

mod group_cmd;
mod tools;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use strom_broker::{Broker, BrokerConfig};

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
    /// Load generators: producer throughput and latency, consumer throughput.
    Perf {
        #[command(subcommand)]
        cmd: tools::PerfCmd,
    },
    /// The cluster's id, controller and brokers.
    Cluster {
        #[command(subcommand)]
        cmd: ClusterCmd,
    },
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Cluster id, controller and brokers.
    ///
    /// Example: strom cluster info --output json
    #[command(verbatim_doc_comment)]
    Info,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
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
        Command::Group { cmd } => client(Box::pin(group_cmd::group(conn, cmd))),
        Command::Cluster {
            cmd: ClusterCmd::Info,
        } => client(Box::pin(tools::cluster_info(conn))),
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
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener_cfg = config.listeners[0].clone();
        let listener =
            tokio::net::TcpListener::bind((listener_cfg.host.as_str(), listener_cfg.port))
                .await
                .with_context(|| format!("binding {}:{}", listener_cfg.host, listener_cfg.port))?;
        let local = listener.local_addr()?;
        let broker = tokio::task::block_in_place(|| Broker::open(config.clone()))?;
        if config.advertised_listeners[0].port == 0 {
            broker.set_advertised_port(local.port());
        }
        tracing::info!(
            node_id = config.node_id,
            listener = %local,
            log_dirs = ?config.log_dirs,
            cluster_id = %broker.image().cluster_id,
            "Strom broker started (single node: broker and controller)"
        );
        println!(
            "strom server listening on {local}, data in {}",
            config
                .log_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        strom_broker::server::run(listener, broker.clone(), shutdown_signal()).await;
        tracing::info!("shutting down");
        tokio::task::block_in_place(|| broker.shutdown())?;
        tracing::info!("stopped cleanly");
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
