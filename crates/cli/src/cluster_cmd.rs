//! `strom cluster`: the brokers and the active controller (`info`), the metadata quorum's
//! health (`quorum`), its vital signs (`health`), partitions and their leaders (`partitions`, `elect-leaders`,
//! `reassign`), and a local multi-node cluster for development (`dev`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::tools::{table, Conn, Output};

/// `strom cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Cluster id, active controller, and every registered broker (address, rack, fenced).
    ///
    /// Example: strom cluster info --output json
    #[command(verbatim_doc_comment)]
    Info,
    /// The metadata quorum: leader, epoch, high watermark, and each voter's and observer's
    /// log end offset, lag and last contact with the leader.
    ///
    /// Example: strom cluster quorum -b localhost:9092
    #[command(verbatim_doc_comment)]
    Quorum,
    /// The cluster's vital signs: an active controller, every broker unfenced, the quorum
    /// led and every voter heard from, every partition led and fully in sync. Exit status 1
    /// when any is unhealthy, for scripts.
    ///
    /// Example: strom cluster health -b localhost:9092 || alert
    #[command(verbatim_doc_comment)]
    Health,
    /// Run a local cluster of N combined (broker and controller) nodes, one process each,
    /// until Ctrl-C.
    ///
    /// Examples:
    ///   strom cluster dev --nodes 3
    ///   strom cluster dev --nodes 3 --data /tmp/strom-dev --port 19092
    #[command(verbatim_doc_comment)]
    Dev(DevArgs),
    /// Every partition with its leader, leader epoch, replicas and ISR.
    ///
    /// Examples:
    ///   strom cluster partitions
    ///   strom cluster partitions --under-replicated --output json
    #[command(verbatim_doc_comment)]
    Partitions {
        /// Only partitions with fewer in-sync replicas than replicas.
        #[arg(long)]
        under_replicated: bool,
    },
    /// Elect leaders, as kafka-leader-election does: preferred (back to each partition's
    /// first replica, when in sync) or unclean (a leaderless partition takes any live
    /// replica, which may lose records).
    ///
    /// Examples:
    ///   strom cluster elect-leaders
    ///   strom cluster elect-leaders --partition orders:0 --partition orders:1
    ///   strom cluster elect-leaders --unclean --partition orders:2
    #[command(verbatim_doc_comment)]
    ElectLeaders {
        /// Unclean instead of preferred.
        #[arg(long)]
        unclean: bool,
        /// `topic:partition`, repeated; none for every partition.
        #[arg(long = "partition")]
        partitions: Vec<String>,
    },
    /// Move partition replicas between brokers, as kafka-reassign-partitions does: generate
    /// a plan, execute it (optionally throttled), verify its progress, cancel it.
    ///
    /// Examples:
    ///   strom cluster reassign generate --topics orders --brokers 2,3,4 > plan.json
    ///   strom cluster reassign execute --plan plan.json --throttle 50000000
    ///   strom cluster reassign verify --plan plan.json
    #[command(verbatim_doc_comment, subcommand)]
    Reassign(crate::reassign_cmd::ReassignCmd),
}

/// `strom cluster dev` options.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// Where the nodes keep their data (one directory per node under it).
    #[arg(long, default_value = "./strom-dev")]
    pub data: PathBuf,
    /// First broker port; node i listens on port+i-1, its controller listener on
    /// port+100+i-1.
    #[arg(long, default_value_t = 9092)]
    pub port: u16,
}

/// Runs `strom cluster info` or `quorum`.
pub async fn cluster(conn: &Conn, cmd: ClusterCmd) -> anyhow::Result<()> {
    match cmd {
        ClusterCmd::Info => info(conn).await,
        ClusterCmd::Quorum => quorum(conn).await,
        ClusterCmd::Health => {
            if !crate::health_cmd::health(conn).await? {
                std::process::exit(1);
            }
            Ok(())
        }
        ClusterCmd::Dev(_) => anyhow::bail!("`cluster dev` runs without a client"),
        ClusterCmd::Partitions { under_replicated } => partitions(conn, under_replicated).await,
        ClusterCmd::ElectLeaders {
            unclean,
            partitions,
        } => elect_leaders(conn, unclean, &partitions).await,
        ClusterCmd::Reassign(cmd) => crate::reassign_cmd::reassign(conn, cmd).await,
    }
}

async fn partitions(conn: &Conn, only_under_replicated: bool) -> anyhow::Result<()> {
    let topics = conn.admin().describe_topics(&[]).await?;
    let rows: Vec<(&str, &strom_client::admin::PartitionDescription)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.as_str(), p)))
        .filter(|(_, p)| !only_under_replicated || p.under_replicated())
        .collect();
    match conn.output {
        Output::Json => println!(
            "{}",
            serde_json::json!(rows
                .iter()
                .map(|(t, p)| serde_json::json!({
                    "topic": t, "partition": p.partition, "leader": p.leader,
                    "leader_epoch": p.leader_epoch, "replicas": p.replicas, "isr": p.isr,
                    "under_replicated": p.under_replicated(),
                }))
                .collect::<Vec<_>>())
        ),
        Output::Table => {
            let mut out = vec![[
                "TOPIC",
                "PARTITION",
                "LEADER",
                "EPOCH",
                "REPLICAS",
                "ISR",
                "",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()];
            out.extend(rows.iter().map(|(t, p)| {
                vec![
                    t.to_string(),
                    p.partition.to_string(),
                    p.leader.to_string(),
                    p.leader_epoch.to_string(),
                    format!("{:?}", p.replicas),
                    format!("{:?}", p.isr),
                    if p.under_replicated() {
                        "under-replicated"
                    } else {
                        ""
                    }
                    .to_string(),
                ]
            }));
            table(&out);
        }
    }
    Ok(())
}

async fn elect_leaders(conn: &Conn, unclean: bool, wanted: &[String]) -> anyhow::Result<()> {
    let mut list = Vec::with_capacity(wanted.len());
    for w in wanted {
        let (topic, partition) = w
            .rsplit_once(':')
            .with_context(|| format!("{w}: expected topic:partition"))?;
        let partition: i32 = partition
            .parse()
            .with_context(|| format!("{w}: the partition is not a number"))?;
        list.push((topic.to_string(), partition));
    }
    let results = conn
        .admin()
        .elect_leaders(unclean, (!list.is_empty()).then_some(list.as_slice()))
        .await?;
    let name = |code: i16| match code {
        0 => "elected".to_string(),
        84 => "not needed".to_string(),
        80 => "preferred leader not available".to_string(),
        83 => "no eligible leader".to_string(),
        3 => "unknown partition".to_string(),
        other => format!("error {other}"),
    };
    print_outcomes(conn, &results, |code, _| name(code));
    Ok(())
}

/// Per-partition outcomes (topic, partition, error code, message) of an election or a
/// reassignment, as a table or JSON; `outcome` words each one.
pub(crate) fn print_outcomes(
    conn: &Conn,
    results: &[strom_client::admin::ElectionResult],
    outcome: impl Fn(i16, &Option<String>) -> String,
) {
    match conn.output {
        Output::Json => println!(
            "{}",
            serde_json::json!(results
                .iter()
                .map(|(t, p, code, msg)| serde_json::json!({
                    "topic": t, "partition": p, "error_code": code,
                    "outcome": outcome(*code, msg), "message": msg,
                }))
                .collect::<Vec<_>>())
        ),
        Output::Table => {
            let mut out = vec![vec![
                "TOPIC".to_string(),
                "PARTITION".into(),
                "OUTCOME".into(),
            ]];
            out.extend(
                results
                    .iter()
                    .map(|(t, p, code, msg)| vec![t.clone(), p.to_string(), outcome(*code, msg)]),
            );
            table(&out);
        }
    }
}

async fn info(conn: &Conn) -> anyhow::Result<()> {
    let c = conn.admin().describe_cluster().await?;
    match conn.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "cluster_id": c.cluster_id,
                "controller": c.controller,
                "brokers": c.all_brokers.iter().map(|b| serde_json::json!({
                    "id": b.id, "address": b.address, "rack": b.rack, "fenced": b.fenced,
                })).collect::<Vec<_>>(),
            })
        ),
        Output::Table => {
            println!("CLUSTER     {}", c.cluster_id);
            println!("CONTROLLER  {}", c.controller);
            println!();
            let mut rows = vec![vec![
                "ID".to_string(),
                "ADDRESS".to_string(),
                "RACK".to_string(),
                "STATE".to_string(),
            ]];
            rows.extend(c.all_brokers.iter().map(|b| {
                vec![
                    b.id.to_string(),
                    b.address.clone(),
                    b.rack.clone().unwrap_or_else(|| "-".into()),
                    if b.fenced { "fenced" } else { "active" }.to_string(),
                ]
            }));
            table(&rows);
        }
    }
    Ok(())
}

async fn quorum(conn: &Conn) -> anyhow::Result<()> {
    let q = conn.admin().describe_quorum().await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let lag = |end: i64| {
        if end < 0 {
            -1
        } else {
            (q.high_watermark - end).max(0)
        }
    };
    let ago = |t: i64| if t < 0 { -1 } else { (now - t).max(0) };
    let replicas = q
        .voters
        .iter()
        .map(|r| (r, "voter"))
        .chain(q.observers.iter().map(|r| (r, "observer")));
    match conn.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "leader_id": q.leader_id,
                "leader_epoch": q.leader_epoch,
                "high_watermark": q.high_watermark,
                "replicas": replicas.map(|(r, role)| serde_json::json!({
                    "id": r.id, "role": role, "log_end_offset": r.log_end_offset,
                    "lag": lag(r.log_end_offset),
                    "last_fetch_timestamp": r.last_fetch_timestamp,
                    "last_caught_up_timestamp": r.last_caught_up_timestamp,
                })).collect::<Vec<_>>(),
            })
        ),
        Output::Table => {
            println!("LEADER          {}", q.leader_id);
            println!("EPOCH           {}", q.leader_epoch);
            println!("HIGH WATERMARK  {}", q.high_watermark);
            println!();
            let mut rows = vec![vec![
                "ID".to_string(),
                "ROLE".to_string(),
                "LOG END".to_string(),
                "LAG".to_string(),
                "LAST CONTACT".to_string(),
            ]];
            rows.extend(replicas.map(|(r, role)| {
                let role = if r.id == q.leader_id { "leader" } else { role };
                let contact = match ago(r.last_fetch_timestamp) {
                    -1 => "never".to_string(),
                    ms => format!("{ms} ms ago"),
                };
                vec![
                    r.id.to_string(),
                    role.to_string(),
                    r.log_end_offset.to_string(),
                    lag(r.log_end_offset).to_string(),
                    contact,
                ]
            }));
            table(&rows);
        }
    }
    Ok(())
}

/// Runs `strom cluster dev`: N `strom server` processes of one cluster on loopback, with
/// their data under one directory. Ctrl-C (or SIGTERM) stops them all, each gracefully.
pub fn dev(args: DevArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    let exe = std::env::current_exe().context("finding the strom binary")?;
    let n = args.nodes;
    let broker_port = |i: u16| args.port + i - 1;
    let controller_port = |i: u16| args.port + 100 + i - 1;
    // Node 1 gets the default HTTP port; the others the ones after it.
    let http_port = |i: u16| 9644 + i - 1;
    let voters: Vec<String> = (1..=n)
        .map(|i| format!("{i}@127.0.0.1:{}", controller_port(i)))
        .collect();
    let mut children: Vec<(u16, Child)> = Vec::new();
    for i in 1..=n {
        let dir = args.data.join(format!("node-{i}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = std::fs::File::create(dir.join("server.log"))?;
        let child = Command::new(&exe)
            .arg("server")
            .args(["--override", &format!("node.id={i}")])
            .args(["--override", "process.roles=broker,controller"])
            .args([
                "--override",
                &format!(
                    "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                    broker_port(i),
                    controller_port(i)
                ),
            ])
            .args(["--override", "controller.listener.names=CONTROLLER"])
            .args([
                "--override",
                &format!("http.listeners=http://127.0.0.1:{}", http_port(i)),
            ])
            .args([
                "--override",
                &format!("controller.quorum.voters={}", voters.join(",")),
            ])
            .args(["--override", &format!("log.dirs={}", dir.display())])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {i}"))?;
        children.push((i, child));
    }
    println!(
        "strom dev cluster: {n} nodes, data under {}",
        args.data.display()
    );
    for i in 1..=n {
        println!(
            "  node {i}: broker 127.0.0.1:{}  controller 127.0.0.1:{}  http 127.0.0.1:{}  log {}",
            broker_port(i),
            controller_port(i),
            http_port(i),
            args.data
                .join(format!("node-{i}"))
                .join("server.log")
                .display()
        );
    }
    let bootstrap: Vec<String> = (1..=n)
        .map(|i| format!("127.0.0.1:{}", broker_port(i)))
        .collect();
    println!("bootstrap servers: {}", bootstrap.join(","));
    println!("Ctrl-C stops every node.");
    let runtime = tokio::runtime::Runtime::new()?;
    let exited = runtime.block_on(async {
        let mut poll = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = crate::shutdown_signal() => return None,
                _ = poll.tick() => {
                    for (i, c) in &mut children {
                        if let Ok(Some(status)) = c.try_wait() {
                            return Some((*i, status));
                        }
                    }
                }
            }
        }
    });
    if let Some((i, status)) = exited {
        eprintln!("node {i} exited ({status}); stopping the others");
    }
    for (_, c) in &children {
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
    }
    for (i, c) in &mut children {
        let status = c.wait()?;
        println!("node {i} stopped ({status})");
    }
    Ok(())
}
