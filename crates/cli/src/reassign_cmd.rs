//! `strom cluster reassign`: moving partition replicas between brokers, in the spirit of
//! kafka-reassign-partitions. Plans are Kafka's JSON (`{"version":1,"partitions":[{"topic",
//! "partition","replicas"}]}`), so a plan written for either tool works with both.
//!
//! `execute --throttle` sets what Kafka's tool sets: `leader.replication.throttled.rate` and
//! `follower.replication.throttled.rate` on the brokers involved, and the topics'
//! `leader.replication.throttled.replicas` (the current replicas) and
//! `follower.replication.throttled.replicas` (the ones being added). `verify` removes them
//! once every partition of the plan is done.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde::{Deserialize, Serialize};

use crate::tools::{table, Conn, Output};

/// `strom cluster reassign ...`.
#[derive(Debug, Subcommand)]
pub enum ReassignCmd {
    /// Propose a plan that spreads the topics' partitions over the brokers given
    /// (round robin, replication factor kept), and print it beside the current one.
    ///
    /// Example: strom cluster reassign generate --topics orders --brokers 1,2,3 > plan.json
    #[command(verbatim_doc_comment)]
    Generate {
        /// Topics, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        topics: Vec<String>,
        /// Broker ids to place replicas on, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        brokers: Vec<i32>,
    },
    /// Start the reassignments of a plan.
    ///
    /// Example: strom cluster reassign execute --plan plan.json --throttle 50000000
    #[command(verbatim_doc_comment)]
    Execute {
        /// The plan (Kafka's reassignment JSON).
        #[arg(long)]
        plan: PathBuf,
        /// Bytes per second the moving replicas may replicate at.
        #[arg(long)]
        throttle: Option<u64>,
    },
    /// Show each partition of a plan: done, in progress (with how far the new replicas
    /// have copied) or failed; once all are done, remove the throttles.
    ///
    /// Example: strom cluster reassign verify --plan plan.json
    #[command(verbatim_doc_comment)]
    Verify {
        /// The plan.
        #[arg(long)]
        plan: PathBuf,
    },
    /// Cancel the reassignments of a plan still in progress (back to the old replicas).
    Cancel {
        /// The plan.
        #[arg(long)]
        plan: PathBuf,
    },
    /// Every reassignment in progress in the cluster.
    List,
}

/// Kafka's reassignment plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Always 1.
    pub version: i32,
    /// The partitions and their target replicas.
    pub partitions: Vec<PlannedPartition>,
}

/// One partition of a [`Plan`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Target replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// Kafka's per-replica log dirs (`any`); kept for compatibility, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_dirs: Option<Vec<String>>,
}

impl Plan {
    /// The topics it names, each once.
    fn topics(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.partitions.iter().map(|p| p.topic.as_str()).collect();
        set.into_iter().map(str::to_string).collect()
    }
}

fn read_plan(path: &PathBuf) -> anyhow::Result<Plan> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let plan: Plan = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a reassignment plan", path.display()))?;
    anyhow::ensure!(plan.version == 1, "plan version {} is not 1", plan.version);
    Ok(plan)
}

/// Runs `strom cluster reassign ...`.
pub async fn reassign(conn: &Conn, cmd: ReassignCmd) -> anyhow::Result<()> {
    match cmd {
        ReassignCmd::Generate { topics, brokers } => generate(conn, &topics, &brokers).await,
        ReassignCmd::Execute { plan, throttle } => {
            execute(conn, &read_plan(&plan)?, throttle).await
        }
        ReassignCmd::Verify { plan } => verify(conn, &read_plan(&plan)?).await,
        ReassignCmd::Cancel { plan } => {
            let plan = read_plan(&plan)?;
            let changes: Vec<_> = plan
                .partitions
                .iter()
                .map(|p| (p.topic.clone(), p.partition, None))
                .collect();
            let results = conn.admin().alter_partition_reassignments(&changes).await?;
            print_results(conn, "cancelled", &results);
            Ok(())
        }
        ReassignCmd::List => list(conn).await,
    }
}

/// The current replicas of every partition of `topics`.
async fn current(conn: &Conn, topics: &[String]) -> anyhow::Result<Vec<PlannedPartition>> {
    let described = conn.admin().describe_topics(topics).await?;
    let mut out = Vec::new();
    for t in described {
        for p in t.partitions {
            out.push(PlannedPartition {
                topic: t.name.clone(),
                partition: p.partition,
                replicas: p.replicas,
                log_dirs: None,
            });
        }
    }
    Ok(out)
}

/// Round-robin placement over `brokers`, each partition starting one broker further.
fn propose(current: &[PlannedPartition], brokers: &[i32]) -> anyhow::Result<Vec<PlannedPartition>> {
    let mut out = Vec::with_capacity(current.len());
    for (i, p) in current.iter().enumerate() {
        let rf = p.replicas.len();
        anyhow::ensure!(
            rf <= brokers.len(),
            "{}-{} has {rf} replicas but only {} brokers were given",
            p.topic,
            p.partition,
            brokers.len()
        );
        let replicas = (0..rf).map(|j| brokers[(i + j) % brokers.len()]).collect();
        out.push(PlannedPartition {
            replicas,
            ..p.clone()
        });
    }
    Ok(out)
}

async fn generate(conn: &Conn, topics: &[String], brokers: &[i32]) -> anyhow::Result<()> {
    let mut seen = BTreeSet::new();
    anyhow::ensure!(
        brokers.iter().all(|b| seen.insert(*b)),
        "--brokers names a broker twice"
    );
    let current = current(conn, topics).await?;
    anyhow::ensure!(!current.is_empty(), "no partitions found for {topics:?}");
    let proposed = propose(&current, brokers)?;
    let as_plan = |partitions: Vec<PlannedPartition>| Plan {
        version: 1,
        partitions,
    };
    match conn.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({"current": as_plan(current), "proposed": as_plan(proposed)})
        ),
        Output::Table => {
            println!("Current partition replica assignment");
            println!("{}\n", serde_json::to_string(&as_plan(current))?);
            println!("Proposed partition reassignment configuration");
            println!("{}", serde_json::to_string(&as_plan(proposed))?);
        }
    }
    Ok(())
}

const LEADER_RATE: &str = "leader.replication.throttled.rate";
const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

async fn execute(conn: &Conn, plan: &Plan, throttle: Option<u64>) -> anyhow::Result<()> {
    let topics = plan.topics();
    let before = current(conn, &topics).await?;
    if let Some(rate) = throttle {
        let mut leaders: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut followers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut brokers = BTreeSet::new();
        for p in &plan.partitions {
            let Some(now) = before
                .iter()
                .find(|c| c.topic == p.topic && c.partition == p.partition)
            else {
                continue;
            };
            for r in &now.replicas {
                leaders
                    .entry(&p.topic)
                    .or_default()
                    .push(format!("{}:{r}", p.partition));
                brokers.insert(*r);
            }
            for r in p.replicas.iter().filter(|r| !now.replicas.contains(r)) {
                followers
                    .entry(&p.topic)
                    .or_default()
                    .push(format!("{}:{r}", p.partition));
                brokers.insert(*r);
            }
        }
        let admin = conn.admin();
        for b in &brokers {
            admin
                .alter_broker_configs(
                    Some(*b),
                    &[
                        (LEADER_RATE.into(), Some(rate.to_string())),
                        (FOLLOWER_RATE.into(), Some(rate.to_string())),
                    ],
                )
                .await
                .with_context(|| format!("setting the throttle rate on broker {b}"))?;
        }
        for t in &topics {
            let list = |m: &BTreeMap<&str, Vec<String>>| m.get(t.as_str()).map(|v| v.join(","));
            let mut changes = Vec::new();
            if let Some(v) = list(&leaders) {
                changes.push((LEADER_REPLICAS.to_string(), Some(v)));
            }
            if let Some(v) = list(&followers) {
                changes.push((FOLLOWER_REPLICAS.to_string(), Some(v)));
            }
            if !changes.is_empty() {
                admin
                    .alter_topic_configs(t, &changes)
                    .await
                    .with_context(|| format!("setting the throttled replicas of {t}"))?;
            }
        }
        eprintln!(
            "throttle of {rate} B/s set on brokers {brokers:?}; `reassign verify` removes it when done"
        );
    }
    let changes: Vec<_> = plan
        .partitions
        .iter()
        .map(|p| (p.topic.clone(), p.partition, Some(p.replicas.clone())))
        .collect();
    let results = conn.admin().alter_partition_reassignments(&changes).await?;
    print_results(conn, "started", &results);
    anyhow::ensure!(
        results.iter().all(|r| r.2 == 0),
        "some reassignments were refused"
    );
    Ok(())
}

fn print_results(conn: &Conn, ok: &str, results: &[strom_client::admin::ElectionResult]) {
    crate::cluster_cmd::print_outcomes(conn, results, |code, msg| {
        if code == 0 {
            ok.to_string()
        } else {
            format!(
                "error {code}: {}",
                msg.clone()
                    .unwrap_or_else(|| strom_client::ClientError::kafka(code).to_string())
            )
        }
    });
}

async fn verify(conn: &Conn, plan: &Plan) -> anyhow::Result<()> {
    let admin = conn.admin();
    let ongoing = admin.list_partition_reassignments().await?;
    let topics = plan.topics();
    let now = current(conn, &topics).await?;
    let cluster = admin.describe_cluster().await?;
    // The replica sizes of every broker a reassignment of the plan copies from or to.
    let mut involved = BTreeSet::new();
    for o in &ongoing {
        if plan
            .partitions
            .iter()
            .any(|p| p.topic == o.topic && p.partition == o.partition)
        {
            involved.extend(o.replicas.iter().copied());
        }
    }
    let mut sizes: BTreeMap<i32, Vec<(String, i32, i64)>> = BTreeMap::new();
    for b in involved {
        if let Some((_, addr)) = cluster.brokers.iter().find(|x| x.0 == b) {
            sizes.insert(b, admin.replica_sizes(addr).await.unwrap_or_default());
        }
    }
    let size_of = |broker: i32, topic: &str, partition: i32| -> Option<i64> {
        sizes
            .get(&broker)?
            .iter()
            .find(|(t, p, _)| t == topic && *p == partition)
            .map(|s| s.2)
    };
    let mut rows = Vec::new();
    let mut all_done = true;
    for p in &plan.partitions {
        let status = if let Some(o) = ongoing
            .iter()
            .find(|o| o.topic == p.topic && o.partition == p.partition)
        {
            all_done = false;
            let source = o.replicas.iter().copied().find(|r| !o.adding.contains(r));
            let total = source.and_then(|s| size_of(s, &p.topic, p.partition));
            let mut parts = Vec::new();
            for a in &o.adding {
                let copied = size_of(*a, &p.topic, p.partition).unwrap_or(0);
                let pct = match total {
                    Some(t) if t > 0 => {
                        format!("{:.0}%", (copied as f64 * 100.0 / t as f64).min(100.0))
                    }
                    _ => "?".into(),
                };
                parts.push(format!("broker {a}: {copied} bytes ({pct})"));
            }
            format!("in progress: {}", parts.join(", "))
        } else {
            match now
                .iter()
                .find(|c| c.topic == p.topic && c.partition == p.partition)
            {
                Some(c) if c.replicas == p.replicas => "complete".to_string(),
                Some(c) => {
                    all_done = false;
                    format!("not reassigned: replicas are {:?}", c.replicas)
                }
                None => {
                    all_done = false;
                    "no such partition".to_string()
                }
            }
        };
        rows.push((p.topic.clone(), p.partition, status));
    }
    if all_done {
        remove_throttles(conn, &topics, &cluster.brokers).await?;
    }
    match conn.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "complete": all_done,
                "partitions": rows.iter().map(|(t, p, s)| serde_json::json!({
                    "topic": t, "partition": p, "status": s,
                })).collect::<Vec<_>>(),
            })
        ),
        Output::Table => {
            let mut out = vec![vec![
                "TOPIC".to_string(),
                "PARTITION".into(),
                "STATUS".into(),
            ]];
            out.extend(
                rows.iter()
                    .map(|(t, p, s)| vec![t.clone(), p.to_string(), s.clone()]),
            );
            table(&out);
            if all_done {
                println!("every reassignment of the plan is complete; throttles removed");
            }
        }
    }
    Ok(())
}

async fn remove_throttles(
    conn: &Conn,
    topics: &[String],
    brokers: &[(i32, String)],
) -> anyhow::Result<()> {
    let admin = conn.admin();
    for t in topics {
        admin
            .alter_topic_configs(
                t,
                &[
                    (LEADER_REPLICAS.into(), None),
                    (FOLLOWER_REPLICAS.into(), None),
                ],
            )
            .await?;
    }
    for b in brokers {
        admin
            .alter_broker_configs(
                Some(b.0),
                &[(LEADER_RATE.into(), None), (FOLLOWER_RATE.into(), None)],
            )
            .await?;
    }
    Ok(())
}

async fn list(conn: &Conn) -> anyhow::Result<()> {
    let ongoing = conn.admin().list_partition_reassignments().await?;
    match conn.output {
        Output::Json => println!(
            "{}",
            serde_json::json!(ongoing
                .iter()
                .map(|o| serde_json::json!({
                    "topic": o.topic, "partition": o.partition, "replicas": o.replicas,
                    "adding": o.adding, "removing": o.removing,
                }))
                .collect::<Vec<_>>())
        ),
        Output::Table => {
            let mut out = vec![["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()];
            out.extend(ongoing.iter().map(|o| {
                vec![
                    o.topic.clone(),
                    o.partition.to_string(),
                    format!("{:?}", o.replicas),
                    format!("{:?}", o.adding),
                    format!("{:?}", o.removing),
                ]
            }));
            table(&out);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_plan_json_reads_and_the_proposal_keeps_the_replication_factor() {
        let plan: Plan = serde_json::from_str(
            r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2],"log_dirs":["any","any"]}]}"#,
        )
        .unwrap();
        let proposed = propose(&plan.partitions, &[3, 4, 5]).unwrap();
        assert_eq!(proposed[0].replicas, vec![3, 4]);
        assert!(propose(&plan.partitions, &[3]).is_err());
    }
}
