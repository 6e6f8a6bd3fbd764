//! `strom top`: throughput per topic and lag per consumer group in the terminal, redrawn
//! every interval. The figures come over the Kafka protocol: end offsets (ListOffsets) and
//! replica sizes (DescribeLogDirs) for the rates, committed offsets (OffsetFetch) for lag.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::Args;
use strom_client::group_admin::OffsetSpec;
use strom_client::{Admin, TopicPartition};

use crate::tools::{format_table, Conn};

/// `strom top` options.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Stop after this many refreshes (0: until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub iterations: u64,
    /// Include internal topics (`__consumer_offsets`, `__transaction_state`).
    #[arg(long)]
    pub internal: bool,
}

/// One look at the cluster.
struct Sample {
    at: Instant,
    /// Per topic: the sum of its partitions' end offsets, and its leaders' bytes on disk.
    topics: HashMap<String, (i64, i64)>,
    /// Per group: its state, members, and total lag over its committed partitions.
    groups: Vec<(String, String, usize, i64)>,
}

async fn sample(admin: &Admin, internal: bool) -> anyhow::Result<Sample> {
    let at = Instant::now();
    let described = admin.describe_topics(&[]).await?;
    let topics: Vec<_> = described
        .iter()
        .filter(|t| internal || !t.internal)
        .collect();
    let partitions: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.partition)))
        .collect();
    let ends = admin.offsets_of(&partitions, OffsetSpec::Latest).await?;
    let mut sizes: HashMap<(String, i32, i32), i64> = HashMap::new();
    for (id, address) in admin.describe_cluster().await?.brokers {
        if let Ok(replicas) = admin.replica_sizes(&address).await {
            for (t, p, bytes) in replicas {
                sizes.insert((t, p, id), bytes);
            }
        }
    }
    let topics = topics
        .iter()
        .map(|t| {
            let records = t
                .partitions
                .iter()
                .filter_map(|p| ends.get(&(t.name.clone(), p.partition)))
                .sum();
            let bytes = t
                .partitions
                .iter()
                .filter_map(|p| sizes.get(&(t.name.clone(), p.partition, p.leader)))
                .sum();
            (t.name.clone(), (records, bytes))
        })
        .collect();
    let listed = admin.list_groups().await?;
    let ids: Vec<String> = listed.iter().map(|g| g.group_id.clone()).collect();
    let described = if ids.is_empty() {
        Vec::new()
    } else {
        admin.describe_groups(&ids).await?
    };
    let mut groups = Vec::new();
    for g in listed {
        let lag = admin
            .group_lag(&g.group_id)
            .await
            .unwrap_or_default()
            .iter()
            .filter(|(_, _, end)| *end >= 0)
            .map(|(_, committed, end)| (end - committed).max(0))
            .sum();
        let members = described
            .iter()
            .find(|d| d.group_id == g.group_id)
            .map_or(0, |d| d.members.len());
        groups.push((g.group_id, g.state, members, lag));
    }
    Ok(Sample { at, topics, groups })
}

/// The screen for `now`, with rates against `before`.
fn render(before: Option<&Sample>, now: &Sample) -> String {
    let secs = before.map_or(0.0, |b| now.at.duration_since(b.at).as_secs_f64());
    let rate = |now_v: i64, before_v: Option<i64>| match before_v {
        Some(b) if secs > 0.0 => ((now_v - b).max(0) as f64 / secs).round() as i64,
        _ => 0,
    };
    let mut names: Vec<&String> = now.topics.keys().collect();
    names.sort();
    let mut rows = vec![vec![
        "TOPIC".to_string(),
        "RECORDS/S".into(),
        "BYTES/S".into(),
        "RECORDS".into(),
        "SIZE".into(),
    ]];
    for name in names {
        let (records, bytes) = now.topics[name];
        let prev = before.and_then(|b| b.topics.get(name));
        rows.push(vec![
            name.clone(),
            rate(records, prev.map(|p| p.0)).to_string(),
            rate(bytes, prev.map(|p| p.1)).to_string(),
            records.to_string(),
            bytes.to_string(),
        ]);
    }
    let mut out = format_table(&rows);
    out.push('\n');
    let mut rows = vec![vec![
        "GROUP".to_string(),
        "STATE".into(),
        "MEMBERS".into(),
        "LAG".into(),
        "LAG CHANGE/S".into(),
    ]];
    for (id, state, members, lag) in &now.groups {
        let prev = before.and_then(|b| b.groups.iter().find(|g| &g.0 == id).map(|g| g.3));
        let change = match prev {
            Some(p) if secs > 0.0 => format!("{:+}", ((lag - p) as f64 / secs).round() as i64),
            _ => "-".into(),
        };
        rows.push(vec![
            id.clone(),
            state.clone(),
            members.to_string(),
            lag.to_string(),
            change,
        ]);
    }
    out.push_str(&format_table(&rows));
    out
}

/// Runs `strom top`.
pub async fn top(conn: &Conn, args: TopArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.interval > 0.0, "--interval must be above 0");
    let admin = conn.admin();
    let interval = Duration::from_secs_f64(args.interval);
    let terminal = std::io::stdout().is_terminal();
    let mut before: Option<Sample> = None;
    let mut done = 0u64;
    let mut tick = tokio::time::interval(interval);
    // A slow sample delays the next instead of bunching ticks (the rates divide by the
    // real time between samples anyway).
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = crate::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => return Ok(()),
        }
        let now = tokio::select! {
            now = sample(&admin, args.internal) => now?,
            _ = &mut stop => return Ok(()),
        };
        let screen = render(before.as_ref(), &now);
        let mut out = std::io::stdout().lock();
        if terminal {
            // Home and clear, then the screen: one redraw per refresh.
            write!(out, "\x1b[H\x1b[2J")?;
        } else if done > 0 {
            writeln!(out, "--")?;
        }
        write!(out, "{screen}")?;
        out.flush()?;
        drop(out);
        before = Some(now);
        done += 1;
        if args.iterations > 0 && done >= args.iterations {
            return Ok(());
        }
    }
}
