//! The client subcommands of `strom`: `topic`, `produce`, `consume` and `cluster`, built on
//! `strom-client`. Human tables by default, `--output json` for scripts; errors go to stderr
//! and exit with status 1.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use strom_client::{
    Admin, Consumer, ConsumerConfig, ConsumerRecord, Producer, ProducerConfig, ProducerRecord,
    SecurityConfig, StartAt,
};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// One JSON document for scripts.
    Json,
}

/// Where the cluster is and how to print.
#[derive(Debug, Args)]
pub struct Conn {
    /// Brokers to bootstrap from (host:port, comma-separated).
    #[arg(
        long = "bootstrap-server",
        short = 'b',
        env = "STROM_BROKERS",
        default_value = "localhost:9092",
        global = true
    )]
    pub bootstrap: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub output: Output,
    /// A client property (Kafka's name), e.g. -X security.protocol=SASL_SSL or, for produce
    /// and consume, -X enable.idempotence=false; repeatable, and after --command-config.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = kv, global = true)]
    pub property: Vec<(String, String)>,
    /// A file of client properties (as Kafka's tools take): security.protocol, sasl.*,
    /// ssl.*...
    #[arg(long, value_name = "FILE", global = true)]
    pub command_config: Option<std::path::PathBuf>,
}

impl Conn {
    /// Reads --command-config into the properties (before the -X ones, which win) and
    /// checks the security settings, so a bad one fails before anything is sent.
    pub fn load(&mut self) -> anyhow::Result<()> {
        if let Some(path) = &self.command_config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--command-config {}", path.display()))?;
            let mut props = strom_broker::BrokerConfig::parse_properties(&text);
            props.append(&mut self.property);
            self.property = props;
        }
        self.security()?
            .connector()
            .context("client security settings")?;
        Ok(())
    }

    /// The security properties among the client properties.
    pub(crate) fn security(&self) -> anyhow::Result<SecurityConfig> {
        let mut security = SecurityConfig::default();
        for (k, v) in &self.property {
            security.set(k, v)?;
        }
        Ok(security)
    }

    /// Applies every client property to a producer's or consumer's settings.
    fn apply(
        &self,
        set: &mut dyn FnMut(&str, &str) -> strom_client::Result<()>,
    ) -> anyhow::Result<()> {
        for (k, v) in &self.property {
            set(k, v).with_context(|| format!("-X {k}"))?;
        }
        Ok(())
    }

    fn servers(&self) -> Vec<String> {
        self.bootstrap
            .split(',')
            .map(|s| s.trim().to_string())
            .collect()
    }

    /// An admin client; of the client properties it takes `client.id` and the security ones
    /// (checked by [`Conn::load`]).
    pub(crate) fn admin(&self) -> Admin {
        let security = self.security().unwrap_or_default();
        // `-X client.id=...` names the client (quotas are per client id).
        let client_id = self
            .property
            .iter()
            .rev()
            .find(|(k, _)| k == "client.id")
            .map_or("strom-cli", |(_, v)| v.as_str());
        Admin::secured(
            self.servers(),
            client_id,
            Duration::from_secs(30),
            &security,
        )
    }
}

/// `strom topic ...`.
#[derive(Debug, Subcommand)]
pub enum TopicCmd {
    /// Create a topic.
    ///
    /// Example: strom topic create orders --partitions 6 --config retention.ms=86400000
    #[command(verbatim_doc_comment)]
    Create {
        /// Topic name.
        name: String,
        /// Partitions (the broker's num.partitions when omitted).
        #[arg(long, short = 'p', default_value_t = -1)]
        partitions: i32,
        /// Replication factor (the broker's default when omitted).
        #[arg(long, short = 'r', visible_alias = "replication-factor", default_value_t = -1)]
        replicas: i16,
        /// Topic config, key=value; repeatable.
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics.
    ///
    /// Examples:
    ///   strom topic list
    ///   strom topic list --output json
    #[command(verbatim_doc_comment)]
    List,
    /// Show a topic's partitions, leaders, replicas, ISR, offsets and configs.
    ///
    /// Example: strom topic describe orders
    #[command(verbatim_doc_comment)]
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete topics and their data.
    ///
    /// Example: strom topic delete orders old-orders
    #[command(verbatim_doc_comment)]
    Delete {
        /// Topic names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Set or remove topic configs.
    ///
    /// Example: strom topic alter-config orders --set retention.ms=3600000 --delete cleanup.policy
    #[command(verbatim_doc_comment)]
    AlterConfig {
        /// Topic name.
        name: String,
        /// key=value to set; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Key to reset to its default; repeatable.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Grow a topic to a number of partitions.
    ///
    /// Example: strom topic add-partitions orders --total 12
    #[command(verbatim_doc_comment)]
    AddPartitions {
        /// Topic name.
        name: String,
        /// The new total.
        #[arg(long)]
        total: i32,
    },
}

/// `strom produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic.
    pub topic: String,
    /// Split each line into key and value at the first occurrence of this.
    #[arg(long)]
    pub key_separator: Option<String>,
    /// Header key=value on every record; repeatable.
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Partition (the partitioner's choice when omitted).
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// 0, 1 or all.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// Print partition and offset of each record.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Produce all of the input in one transaction with this transactional.id, committed
    /// at the end of input (aborted if any record fails).
    #[arg(long)]
    pub transactional_id: Option<String>,
}

/// `strom consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topics.
    #[arg(required = true)]
    pub topics: Vec<String>,
    /// Consume as a member of this consumer group: partitions are shared with the group's
    /// other members, reading resumes from the group's committed offsets, and what was
    /// printed is committed on exit (Ctrl-C, --num, --exit-at-end).
    #[arg(long, short = 'g')]
    pub group: Option<String>,
    /// beginning, end, an offset, or @TIMESTAMP (ms). With --group, beginning or end: where
    /// partitions without a committed offset start.
    #[arg(long, default_value = "end")]
    pub from: String,
    /// Only this partition (of each topic; not with --group).
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
    /// Stop after this many records.
    #[arg(long, short = 'n')]
    pub num: Option<usize>,
    /// Stop when every partition is read to its end.
    #[arg(long, short = 'e')]
    pub exit_at_end: bool,
    /// Output template: {topic} {key} {value} {partition} {offset} {timestamp} {headers}.
    #[arg(long, short = 'f', default_value = "{value}")]
    pub format: String,
    /// Shorthand for --format '{key}\t{value}'.
    #[arg(long)]
    pub print_keys: bool,
}

fn kv(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("'{s}' is not key=value"))?;
    Ok((k.to_string(), v.to_string()))
}

pub(crate) fn table(rows: &[Vec<String>]) {
    print!("{}", format_table(rows));
}

/// Rows as aligned columns, a line each.
pub(crate) fn format_table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Runs `strom topic ...`.
pub async fn topic(conn: &Conn, cmd: TopicCmd) -> anyhow::Result<()> {
    let admin = conn.admin();
    match cmd {
        TopicCmd::Create {
            name,
            partitions,
            replicas,
            configs,
        } => {
            let configs = configs
                .iter()
                .map(|c| kv(c))
                .collect::<anyhow::Result<Vec<_>>>()?;
            admin
                .create_topic(&name, partitions, replicas, &configs)
                .await?;
            match conn.output {
                Output::Json => println!("{}", serde_json::json!({ "created": name })),
                Output::Table => println!("created topic {name}"),
            }
        }
        TopicCmd::List => {
            let topics = admin.describe_topics(&[]).await?;
            match conn.output {
                Output::Json => println!(
                    "{}",
                    serde_json::json!(topics
                        .iter()
                        .map(|t| serde_json::json!({"name": t.name, "partitions": t.partitions.len(), "internal": t.internal}))
                        .collect::<Vec<_>>())
                ),
                Output::Table => {
                    let mut rows = vec![vec!["NAME".into(), "PARTITIONS".into()]];
                    rows.extend(topics.iter().map(|t| vec![t.name.clone(), t.partitions.len().to_string()]));
                    table(&rows);
                }
            }
        }
        TopicCmd::Describe { name } => {
            let d = admin
                .describe_topics(std::slice::from_ref(&name))
                .await?
                .pop()
                .with_context(|| format!("topic {name} not found"))?;
            let configs = admin.describe_topic_configs(&name).await?;
            let overrides: BTreeMap<String, String> = configs
                .iter()
                .filter(|c| c.source == 1)
                .map(|c| (c.name.clone(), c.value.clone().unwrap_or_default()))
                .collect();
            let consumer = Consumer::new(consumer_config(conn, 1)?);
            let mut offsets = Vec::new();
            for p in &d.partitions {
                let lo = consumer
                    .resolve(&name, p.partition, StartAt::Earliest)
                    .await?;
                let hi = consumer
                    .resolve(&name, p.partition, StartAt::Latest)
                    .await?;
                offsets.push((lo, hi));
            }
            match conn.output {
                Output::Json => println!(
                    "{}",
                    serde_json::json!({
                        "name": d.name,
                        "partitions": d.partitions.iter().zip(&offsets).map(|(p, (lo, hi))| serde_json::json!({
                            "partition": p.partition, "leader": p.leader, "leader_epoch": p.leader_epoch,
                            "replicas": p.replicas, "isr": p.isr,
                            "under_replicated": p.under_replicated(),
                            "log_start_offset": lo, "log_end_offset": hi,
                        })).collect::<Vec<_>>(),
                        "configs": overrides,
                    })
                ),
                Output::Table => {
                    println!("NAME        {}", d.name);
                    println!("PARTITIONS  {}", d.partitions.len());
                    for (k, v) in &overrides {
                        println!("CONFIG      {k}={v}");
                    }
                    println!();
                    let mut rows = vec![[
                        "PARTITION",
                        "LEADER",
                        "EPOCH",
                        "REPLICAS",
                        "ISR",
                        "LOG-START",
                        "HIGH-WATERMARK",
                        "",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()];
                    for (p, (lo, hi)) in d.partitions.iter().zip(&offsets) {
                        rows.push(vec![
                            p.partition.to_string(),
                            p.leader.to_string(),
                            p.leader_epoch.to_string(),
                            format!("{:?}", p.replicas),
                            format!("{:?}", p.isr),
                            lo.to_string(),
                            hi.to_string(),
                            if p.under_replicated() {
                                "under-replicated".into()
                            } else {
                                String::new()
                            },
                        ]);
                    }
                    table(&rows);
                }
            }
        }
        TopicCmd::Delete { names } => {
            for n in &names {
                admin
                    .delete_topic(n)
                    .await
                    .with_context(|| format!("deleting {n}"))?;
                if conn.output == Output::Table {
                    println!("deleted topic {n}");
                }
            }
            if conn.output == Output::Json {
                println!("{}", serde_json::json!({ "deleted": names }));
            }
        }
        TopicCmd::AlterConfig { name, set, delete } => {
            let mut changes: Vec<(String, Option<String>)> = set
                .iter()
                .map(|s| kv(s).map(|(k, v)| (k, Some(v))))
                .collect::<anyhow::Result<_>>()?;
            changes.extend(delete.into_iter().map(|k| (k, None)));
            if changes.is_empty() {
                bail!("nothing to change: give --set key=value or --delete key");
            }
            admin.alter_topic_configs(&name, &changes).await?;
            if conn.output == Output::Table {
                println!("altered {} config(s) of {name}", changes.len());
            } else {
                println!("{}", serde_json::json!({ "altered": name }));
            }
        }
        TopicCmd::AddPartitions { name, total } => {
            admin.add_partitions(&name, total).await?;
            if conn.output == Output::Table {
                println!("{name} now has {total} partitions");
            } else {
                println!(
                    "{}",
                    serde_json::json!({ "topic": name, "partitions": total })
                );
            }
        }
    }
    Ok(())
}

/// Runs `strom produce`: one record per line of stdin.
pub async fn produce(conn: &Conn, args: ProduceArgs) -> anyhow::Result<()> {
    let mut config = ProducerConfig::default();
    config.set("bootstrap.servers", &conn.bootstrap)?;
    config.set("compression.type", &args.compression)?;
    config.set("acks", &args.acks)?;
    config.set("client.id", "strom-cli")?;
    if let Some(id) = &args.transactional_id {
        config.set("transactional.id", id)?;
    }
    conn.apply(&mut |k, v| config.set(k, v))?;
    let headers: Vec<(String, Option<Bytes>)> = args
        .headers
        .iter()
        .map(|h| kv(h).map(|(k, v)| (k, Some(Bytes::from(v)))))
        .collect::<anyhow::Result<_>>()?;
    let producer = Producer::new(config);
    if args.transactional_id.is_some() {
        producer.init_transactions().await?;
        producer.begin_transaction()?;
    }
    let mut pending = Vec::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.context("reading stdin")?;
        let (key, value) = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(Bytes::from(k.to_string())), v.to_string()),
                None => (None, line.clone()),
            },
            None => (None, line.clone()),
        };
        let record = ProducerRecord {
            topic: args.topic.clone(),
            partition: args.partition,
            key,
            value: Some(Bytes::from(value)),
            headers: headers.clone(),
            timestamp: None,
        };
        pending.push(producer.send(record).await?);
    }
    producer.flush().await;
    let mut failed = 0usize;
    let mut out = std::io::stdout().lock();
    for (i, f) in pending.into_iter().enumerate() {
        match f.await {
            Ok(md) if args.verbose => writeln!(
                out,
                "record {i}: partition {} offset {}",
                md.partition, md.offset
            )?,
            Ok(_) => {}
            Err(e) => {
                failed += 1;
                eprintln!("record {i} (line {}): {e}", i + 1);
            }
        }
    }
    if args.transactional_id.is_some() {
        if failed > 0 {
            producer.abort_transaction().await?;
            producer.close().await;
            bail!("{failed} record(s) not delivered: the transaction was aborted");
        }
        producer.commit_transaction().await?;
    }
    producer.close().await;
    if failed > 0 {
        bail!("{failed} record(s) not delivered");
    }
    Ok(())
}

fn consumer_config(conn: &Conn, wait_ms: u64) -> anyhow::Result<ConsumerConfig> {
    let mut config = ConsumerConfig::default();
    config.set("bootstrap.servers", &conn.bootstrap)?;
    config.set("client.id", "strom-cli")?;
    config.set("fetch.max.wait.ms", &wait_ms.to_string())?;
    conn.apply(&mut |k, v| config.set(k, v))?;
    Ok(config)
}

fn render(format: &str, r: &ConsumerRecord) -> String {
    let text = |b: &Option<Bytes>| {
        b.as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_else(|| "null".into())
    };
    let headers = r
        .headers
        .iter()
        .map(|(k, v)| format!("{k}={}", text(v)))
        .collect::<Vec<_>>()
        .join(",");
    format
        .replace("{topic}", &r.topic)
        .replace("{key}", &text(&r.key))
        .replace("{value}", &text(&r.value))
        .replace("{partition}", &r.partition.to_string())
        .replace("{offset}", &r.offset.to_string())
        .replace("{timestamp}", &r.timestamp.to_string())
        .replace("{headers}", &headers)
        .replace("\\t", "\t")
        .replace("\\n", "\n")
}

/// Runs `strom consume`: prints records until Ctrl-C, --num records, or the end with
/// --exit-at-end. Without --group every partition (or one) is assigned by hand; with it the
/// consumer joins the group and commits what it printed when it stops.
pub async fn consume(conn: &Conn, args: ConsumeArgs) -> anyhow::Result<()> {
    let start = match args.from.as_str() {
        "beginning" | "earliest" => StartAt::Earliest,
        "end" | "latest" => StartAt::Latest,
        s if s.starts_with('@') => {
            StartAt::Timestamp(s[1..].parse().context("--from @TIMESTAMP (ms)")?)
        }
        s => StartAt::Offset(
            s.parse()
                .context("--from: beginning, end, OFFSET or @TIMESTAMP")?,
        ),
    };
    let mut config = consumer_config(conn, 500)?;
    let mut consumer = match &args.group {
        Some(group) => {
            if args.partition.is_some() {
                anyhow::bail!("--partition cannot be used with --group (the group assigns)");
            }
            config.set("group.id", group)?;
            config.auto_offset_reset = match start {
                StartAt::Earliest | StartAt::Latest => start,
                _ => anyhow::bail!("with --group, --from takes beginning or end"),
            };
            let mut c = Consumer::new(config);
            let topics: Vec<&str> = args.topics.iter().map(String::as_str).collect();
            c.subscribe(&topics)?;
            c
        }
        None => {
            let admin = conn.admin();
            let mut assignment = Vec::new();
            for d in admin.describe_topics(&args.topics).await? {
                for p in &d.partitions {
                    if args.partition.is_none_or(|only| only == p.partition) {
                        assignment.push((d.name.clone(), p.partition, start));
                    }
                }
            }
            if assignment.is_empty() {
                anyhow::bail!("no such partition");
            }
            let mut c = Consumer::new(config);
            c.assign(&assignment).await?;
            c
        }
    };
    let format = if args.print_keys {
        "{key}\t{value}".to_string()
    } else {
        args.format.clone()
    };
    // The log end offsets where --exit-at-end stops, looked up as partitions arrive.
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    // The next offset after what was printed, per partition: what a group commits.
    let mut printed_to: HashMap<(String, i32), i64> = HashMap::new();
    let mut printed = 0usize;
    let mut out = std::io::stdout().lock();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    'outer: loop {
        if args.exit_at_end {
            let assigned = consumer.assignment();
            let mut done = !assigned.is_empty();
            for (t, p) in assigned {
                let end = match ends.get(&(t.clone(), p)) {
                    Some(e) => *e,
                    None => {
                        let e = consumer.resolve(&t, p, StartAt::Latest).await?;
                        ends.insert((t.clone(), p), e);
                        e
                    }
                };
                done &= consumer.position(&t, p).unwrap_or(0) >= end;
            }
            if done {
                break;
            }
        }
        let records = tokio::select! {
            r = consumer.poll() => r?,
            _ = &mut ctrl_c => break,
        };
        for r in records {
            let tp = (r.topic.clone(), r.partition);
            if args.exit_at_end && ends.get(&tp).is_some_and(|e| r.offset >= *e) {
                continue;
            }
            writeln!(out, "{}", render(&format, &r))?;
            printed_to.insert(tp, r.offset + 1);
            printed += 1;
            if args.num.is_some_and(|n| printed >= n) {
                break 'outer;
            }
        }
        out.flush()?;
    }
    out.flush()?;
    if args.group.is_some() {
        // Commit exactly what was printed (not records fetched but cut off by --num) of the
        // partitions still ours (revoked ones were committed when revoked), then leave.
        printed_to.retain(|(t, p), _| consumer.position(t, *p).is_some());
        for ((t, p), o) in &printed_to {
            consumer.seek(t, *p, StartAt::Offset(*o)).await?;
        }
        let offsets: Vec<((String, i32), i64)> = printed_to.into_iter().collect();
        consumer.commit_offsets(&offsets).await?;
        consumer.close().await?;
    }
    Ok(())
}

/// `strom perf ...`.
#[derive(Debug, Subcommand)]
pub enum PerfCmd {
    /// Produce generated records as fast as allowed and report throughput and latency.
    ///
    /// Example: strom perf produce bench --records 1000000 --record-size 100 --acks all
    #[command(verbatim_doc_comment)]
    Produce(PerfProduceArgs),
    /// Read a topic from the beginning and report throughput.
    ///
    /// Example: strom perf consume bench --records 1000000
    #[command(verbatim_doc_comment)]
    Consume {
        /// Topic.
        topic: String,
        /// Stop after this many records.
        #[arg(long)]
        records: usize,
    },
}

/// `strom perf produce`.
#[derive(Debug, Args)]
pub struct PerfProduceArgs {
    /// Topic.
    pub topic: String,
    /// Records to send.
    #[arg(long)]
    pub records: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Records per second at most (-1: no limit).
    #[arg(long, default_value_t = -1)]
    pub throughput: i64,
    /// 0, 1 or all.
    #[arg(long, default_value = "1")]
    pub acks: String,
    /// batch.size in bytes.
    #[arg(long, default_value_t = 16384)]
    pub batch_size: usize,
    /// linger.ms.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// Send in transactions of this transactional.id (as kafka-producer-perf-test's
    /// --transactional-id).
    #[arg(long)]
    pub transactional_id: Option<String>,
    /// Records per transaction, with --transactional-id.
    #[arg(long, default_value_t = 1000, requires = "transactional_id")]
    pub transaction_records: usize,
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1000.0
}

/// Runs `strom perf ...`.
pub async fn perf(conn: &Conn, cmd: PerfCmd) -> anyhow::Result<()> {
    match cmd {
        PerfCmd::Produce(a) => perf_produce(conn, a).await,
        PerfCmd::Consume { topic, records } => perf_consume(conn, &topic, records).await,
    }
}

async fn perf_produce(conn: &Conn, a: PerfProduceArgs) -> anyhow::Result<()> {
    let mut config = ProducerConfig::default();
    config.set("bootstrap.servers", &conn.bootstrap)?;
    config.set("acks", &a.acks)?;
    config.set("compression.type", &a.compression)?;
    config.set("batch.size", &a.batch_size.to_string())?;
    config.set("linger.ms", &a.linger_ms.to_string())?;
    config.set("client.id", "strom-perf")?;
    conn.apply(&mut |k, v| config.set(k, v))?;
    if let Some(id) = &a.transactional_id {
        config.set("transactional.id", id)?;
    }
    let producer = Producer::new(config);
    // Records per transaction (0: not transactional).
    let per_txn = if a.transactional_id.is_some() {
        producer.init_transactions().await?;
        producer.begin_transaction()?;
        a.transaction_records.max(1)
    } else {
        0
    };
    let mut transactions = 0usize;
    let value = Bytes::from(vec![b'x'; a.record_size]);
    let (tx, mut rx) = tokio::sync::mpsc::channel(100_000);
    // Completions are collected concurrently, in send order: a record's outcome is awaited
    // once those before it are in, so the collector sleeps once per batch rather than once
    // per record (records of one partition are acknowledged in order anyway). Latency is
    // send to acknowledgement as this task sees it.
    let collector = tokio::spawn(async move {
        let mut latencies: Vec<u64> = Vec::new();
        let mut errors = 0usize;
        let mut window = (std::time::Instant::now(), 0usize, 0u64, 0u64);
        while let Some((started, fut)) = rx.recv().await {
            let started: std::time::Instant = started;
            let result: strom_client::Result<strom_client::RecordMetadata> = fut.await;
            let us = started.elapsed().as_micros() as u64;
            match result {
                Ok(_) => latencies.push(us),
                Err(_) => errors += 1,
            }
            window.1 += 1;
            window.2 += us;
            window.3 = window.3.max(us);
            let elapsed = window.0.elapsed();
            if elapsed >= Duration::from_secs(1) {
                eprintln!(
                    "{} records acknowledged, {:.0} records/s, {:.1} ms avg latency, {:.1} ms max",
                    latencies.len(),
                    window.1 as f64 / elapsed.as_secs_f64(),
                    window.2 as f64 / window.1.max(1) as f64 / 1000.0,
                    window.3 as f64 / 1000.0
                );
                window = (std::time::Instant::now(), 0, 0, 0);
            }
        }
        (latencies, errors)
    });
    let start = std::time::Instant::now();
    for i in 0..a.records {
        if a.throughput > 0 {
            let due = start + Duration::from_secs_f64(i as f64 / a.throughput as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let record = ProducerRecord {
            topic: a.topic.clone(),
            value: Some(value.clone()),
            ..Default::default()
        };
        let sent = std::time::Instant::now();
        let fut = producer.send(record).await?;
        tx.send((sent, fut)).await?;
        if per_txn > 0 && (i + 1).is_multiple_of(per_txn) {
            producer.commit_transaction().await?;
            transactions += 1;
            if i + 1 < a.records {
                producer.begin_transaction()?;
            }
        }
    }
    drop(tx);
    if per_txn > 0 && !a.records.is_multiple_of(per_txn) {
        producer.commit_transaction().await?;
        transactions += 1;
    }
    producer.flush().await;
    let (mut latencies, errors) = collector.await?;
    let elapsed = start.elapsed().as_secs_f64();
    producer.close().await;
    latencies.sort_unstable();
    let n = latencies.len();
    println!(
        "{n} records sent, {:.0} records/s ({:.2} MB/s), {:.2} ms avg latency, {:.2} ms max; latency p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
        n as f64 / elapsed,
        (n * a.record_size) as f64 / elapsed / 1e6,
        latencies.iter().sum::<u64>() as f64 / n.max(1) as f64 / 1000.0,
        latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
    );
    if per_txn > 0 {
        println!(
            "{transactions} transactions committed, {:.0} transactions/s",
            transactions as f64 / elapsed
        );
    }
    if errors > 0 {
        bail!("{errors} record(s) not delivered");
    }
    Ok(())
}

async fn perf_consume(conn: &Conn, topic: &str, records: usize) -> anyhow::Result<()> {
    let d = conn
        .admin()
        .describe_topics(&[topic.to_string()])
        .await?
        .pop()
        .with_context(|| format!("topic {topic} not found"))?;
    let mut config = consumer_config(conn, 100)?;
    config.set("max.partition.fetch.bytes", &(8 << 20).to_string())?;
    let mut consumer = Consumer::new(config);
    let assignment: Vec<(String, i32, StartAt)> = d
        .partitions
        .iter()
        .map(|p| (topic.to_string(), p.partition, StartAt::Earliest))
        .collect();
    consumer.assign(&assignment).await?;
    let start = std::time::Instant::now();
    let (mut n, mut bytes) = (0usize, 0usize);
    while n < records {
        let batch = consumer.poll().await?;
        if batch.is_empty() && start.elapsed() > Duration::from_secs(60) {
            bail!("only {n} records after 60 s");
        }
        for r in batch {
            bytes += r.value.as_ref().map_or(0, |v| v.len());
            n += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{n} records consumed, {:.0} records/s ({:.2} MB/s)",
        n as f64 / elapsed,
        bytes as f64 / elapsed / 1e6
    );
    Ok(())
}
