//! `strom streams reset|describe`: a Kafka Streams application (Strom's or Kafka's), as
//! kafka-streams-application-reset.sh resets it and kafka-streams-groups.sh describes it.
//! The application's consumer group is its `application.id`; its internal topics are named
//! `<application.id>-...-changelog` / `-repartition` (Kafka's rule, [`is_internal_topic`]).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use clap::{Args, Subcommand};
use strom_client::{Admin, ClientError, GroupDescription, OffsetSpec, TopicPartition};

use crate::tools::{table, Conn, Output};

/// GROUP_ID_NOT_FOUND.
const GROUP_ID_NOT_FOUND: i16 = 69;

/// `strom streams ...`.
#[derive(Debug, Subcommand)]
pub enum StreamsCmd {
    /// Reset an application so it reprocesses its input: input topics' committed offsets
    /// back to the beginning (or --to-latest / --to-offset), intermediate topics' to the
    /// end, and its internal topics (APP-...-changelog, APP-...-repartition) deleted.
    /// Every instance must be stopped first. Local state (state.dir) is not touched.
    ///
    /// Examples:
    ///   strom streams reset wordcount --input-topics lines --dry-run
    ///   strom streams reset wordcount --input-topics lines,words --to-offset 100
    #[command(verbatim_doc_comment)]
    Reset(ResetArgs),
    /// Show an application's group (state, members and their partitions), its internal
    /// topics, and each partition's committed offset, log end offset and lag.
    ///
    /// Example: strom streams describe wordcount
    #[command(verbatim_doc_comment)]
    Describe {
        /// The application.id.
        app: String,
    },
}

/// `strom streams reset`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").args(["to_earliest", "to_latest", "to_offset"])))]
pub struct ResetArgs {
    /// The application.id (its consumer group).
    pub app: String,
    /// Input topics, comma-separated (repeatable): their offsets are reset.
    #[arg(long, value_delimiter = ',', value_name = "TOPICS")]
    pub input_topics: Vec<String>,
    /// Intermediate topics (both written and read by the application), comma-separated:
    /// their offsets go to the end.
    #[arg(long, value_delimiter = ',', value_name = "TOPICS")]
    pub intermediate_topics: Vec<String>,
    /// Input topics to the log start offset (the default).
    #[arg(long)]
    pub to_earliest: bool,
    /// Input topics to the log end offset.
    #[arg(long)]
    pub to_latest: bool,
    /// Input topics to this offset (clamped to each log's range).
    #[arg(long, allow_negative_numbers = true)]
    pub to_offset: Option<i64>,
    /// Show what would be done, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `strom streams ...`.
pub async fn streams(conn: &Conn, cmd: StreamsCmd) -> anyhow::Result<()> {
    match cmd {
        StreamsCmd::Reset(args) => reset(conn, args).await,
        StreamsCmd::Describe { app } => describe(conn, &app).await,
    }
}

/// Kafka's rule (StreamsResetter): a topic of application `app` is internal when it starts
/// with `app-` and has the name of a changelog, repartition or foreign-key-join topic.
pub fn is_internal_topic(app: &str, topic: &str) -> bool {
    let Some(rest) = topic.strip_prefix(app).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    !rest.is_empty() && matches_internal_format(topic)
}

/// Kafka's `matchesInternalTopicFormat`.
fn matches_internal_format(topic: &str) -> bool {
    // `.+<marker>\d+-topic`: only the last occurrence of the marker can be followed by
    // nothing but digits and `-topic`.
    let fk_join = |marker: &str| match topic.rfind(marker) {
        Some(i) if i > 0 => topic[i + marker.len()..]
            .strip_suffix("-topic")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        _ => false,
    };
    topic.ends_with("-changelog")
        || topic.ends_with("-repartition")
        || topic.ends_with("-subscription-registration-topic")
        || topic.ends_with("-subscription-response-topic")
        || fk_join("-KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-")
        || fk_join("-KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-")
}

/// The application's group, `None` when it does not exist (no member ever joined and
/// nothing was committed).
async fn group_of(admin: &Admin, app: &str) -> anyhow::Result<Option<GroupDescription>> {
    match admin.describe_groups(&[app.to_string()]).await {
        Ok(mut d) => Ok(d.pop()),
        Err(ClientError::Kafka {
            code: GROUP_ID_NOT_FOUND,
            ..
        }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Every topic with its partition count.
async fn all_topics(admin: &Admin) -> anyhow::Result<BTreeMap<String, usize>> {
    Ok(admin
        .describe_topics(&[])
        .await?
        .into_iter()
        .map(|t| (t.name, t.partitions.len()))
        .collect())
}

/// The partitions of `topics` that exist, and the names of those that do not.
fn partitions_of(
    topics: &[String],
    all: &BTreeMap<String, usize>,
) -> (Vec<TopicPartition>, Vec<String>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for t in topics.iter().collect::<BTreeSet<_>>() {
        match all.get(t) {
            Some(n) => found.extend((0..*n as i32).map(|p| (t.clone(), p))),
            None => missing.push(t.clone()),
        }
    }
    (found, missing)
}

/// One partition of the plan: (partition, committed now, new offset).
type Move = (TopicPartition, Option<i64>, i64);

async fn reset(conn: &Conn, a: ResetArgs) -> anyhow::Result<()> {
    let admin = conn.admin();
    // Kafka's check: no instance may run while its offsets and topics change under it.
    if let Some(g) = group_of(&admin, &a.app).await? {
        if !g.members.is_empty() {
            let members: Vec<String> = g
                .members
                .iter()
                .map(|m| format!("{} ({}, {})", m.member_id, m.client_id, m.host))
                .collect();
            bail!(
                "Consumer group '{}' is still active and has following members: [{}]. Make sure \
                 to stop all running application instances before running the reset tool.",
                a.app,
                members.join(", ")
            );
        }
    }
    let all = all_topics(&admin).await?;
    let (inputs, missing_inputs) = partitions_of(&a.input_topics, &all);
    let (intermediates, missing_intermediates) = partitions_of(&a.intermediate_topics, &all);

    let committed: BTreeMap<TopicPartition, i64> = admin
        .list_group_offsets(&a.app)
        .await?
        .into_iter()
        .map(|o| ((o.topic, o.partition), o.offset))
        .collect();
    let both: Vec<TopicPartition> = inputs.iter().chain(&intermediates).cloned().collect();
    let earliest = admin.offsets_of(&both, OffsetSpec::Earliest).await?;
    let latest = admin.offsets_of(&both, OffsetSpec::Latest).await?;
    let mut notes = Vec::new();
    let mut plan = |parts: &[TopicPartition], to_end: bool| -> Vec<Move> {
        parts
            .iter()
            .map(|tp| {
                let lo = earliest.get(tp).copied().unwrap_or(0);
                let hi = latest.get(tp).copied().unwrap_or(0);
                let target = if to_end || a.to_latest {
                    hi
                } else if let Some(o) = a.to_offset {
                    // As Kafka's tool: out of range goes to the nearest end, and says so.
                    if o > hi {
                        notes.push(format!(
                            "{}-{}: offset {o} is past the log end offset; using {hi}",
                            tp.0, tp.1
                        ));
                    } else if o < lo {
                        notes.push(format!(
                            "{}-{}: offset {o} is before the log start offset; using {lo}",
                            tp.0, tp.1
                        ));
                    }
                    o.clamp(lo, hi.max(lo))
                } else {
                    lo
                };
                (tp.clone(), committed.get(tp).copied(), target)
            })
            .collect()
    };
    let input_plan = plan(&inputs, false);
    let intermediate_plan = plan(&intermediates, true);

    // Input and intermediate topics named like internal ones are never deleted (KAFKA-7930).
    let named: BTreeSet<&String> = a
        .input_topics
        .iter()
        .chain(&a.intermediate_topics)
        .collect();
    let internal: Vec<String> = all
        .keys()
        .filter(|t| is_internal_topic(&a.app, t) && !named.contains(t))
        .cloned()
        .collect();

    let mut failures = Vec::new();
    let mut deleted = Vec::new();
    if !a.dry_run {
        let offsets: Vec<(TopicPartition, i64)> = input_plan
            .iter()
            .chain(&intermediate_plan)
            .map(|(tp, _, o)| (tp.clone(), *o))
            .collect();
        if !offsets.is_empty() {
            admin.alter_group_offsets(&a.app, &offsets).await?;
        }
        for t in &internal {
            match admin.delete_topic(t).await {
                Ok(()) => deleted.push(t.clone()),
                Err(e) => {
                    failures.push(anyhow::Error::new(e).context(format!("deleting topic {t}")))
                }
            }
        }
    }

    let target = if a.to_latest {
        "the log end offset".to_string()
    } else if let Some(o) = a.to_offset {
        format!("offset {o}")
    } else {
        "the log start offset".to_string()
    };
    match conn.output {
        Output::Json => {
            let moves = |plan: &[Move]| {
                plan.iter()
                    .map(|((t, p), cur, new)| {
                        serde_json::json!({
                            "topic": t, "partition": p, "current": cur, "new": new,
                        })
                    })
                    .collect::<Vec<_>>()
            };
            println!(
                "{}",
                serde_json::json!({
                    "application": a.app,
                    "dry_run": a.dry_run,
                    "input_offsets": moves(&input_plan),
                    "intermediate_offsets": moves(&intermediate_plan),
                    "internal_topics": internal,
                    "deleted_topics": deleted,
                    "missing_input_topics": missing_inputs,
                    "missing_intermediate_topics": missing_intermediates,
                })
            );
        }
        Output::Table => {
            let will = |what: &str| {
                if a.dry_run {
                    format!("would be {what}")
                } else {
                    what.to_string()
                }
            };
            if a.dry_run {
                println!("Dry run: the actions a reset of '{}' would take.", a.app);
            }
            let moves_table = |plan: &[Move]| {
                let mut rows = vec![["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]
                    .map(String::from)
                    .to_vec()];
                for ((t, p), cur, new) in plan {
                    rows.push(vec![
                        t.clone(),
                        p.to_string(),
                        cur.map_or_else(|| "-".into(), |c| c.to_string()),
                        new.to_string(),
                    ]);
                }
                table(&rows);
            };
            if a.input_topics.is_empty() && a.intermediate_topics.is_empty() {
                println!("No input or intermediate topics given: no offsets to reset.");
            }
            if !missing_inputs.is_empty() {
                println!(
                    "Input topics not found, skipped: {}",
                    missing_inputs.join(", ")
                );
            }
            if !missing_intermediates.is_empty() {
                println!(
                    "Intermediate topics not found, skipped: {}",
                    missing_intermediates.join(", ")
                );
            }
            if !input_plan.is_empty() {
                println!(
                    "Input topic offsets of group '{}' {} {target}:",
                    a.app,
                    will("reset to")
                );
                moves_table(&input_plan);
            }
            for n in &notes {
                println!("{n}");
            }
            if !intermediate_plan.is_empty() {
                println!(
                    "Intermediate topic offsets of group '{}' {} the log end offset:",
                    a.app,
                    will("moved to")
                );
                moves_table(&intermediate_plan);
            }
            if internal.is_empty() {
                println!("No internal topics of '{}' to delete.", a.app);
            } else if a.dry_run {
                println!(
                    "Internal topics that would be deleted: {}",
                    internal.join(", ")
                );
            } else if !deleted.is_empty() {
                println!("Deleted internal topics: {}", deleted.join(", "));
            }
            println!(
                "{}",
                if a.dry_run {
                    "(dry run: nothing was changed)"
                } else {
                    "Done."
                }
            );
            println!(
                "Local state is not touched: before restarting, delete the application's \
                 state.dir (Kafka's default: /tmp/kafka-streams/{}) on every instance, or \
                 call KafkaStreams#cleanUp().",
                a.app
            );
        }
    }
    // A missing topic fails the run as in Kafka's tool, after everything else was done.
    if !missing_inputs.is_empty() || !missing_intermediates.is_empty() {
        let missing: Vec<String> = missing_inputs
            .into_iter()
            .chain(missing_intermediates)
            .collect();
        failures.push(anyhow::anyhow!("topics not found: {}", missing.join(", ")));
    }
    report(failures)
}

/// Prints each failure but the last on its own `error:` line and returns the last, which
/// `main` prints the same way before exiting 1.
fn report(mut failures: Vec<anyhow::Error>) -> anyhow::Result<()> {
    let Some(last) = failures.pop() else {
        return Ok(());
    };
    for e in failures {
        eprintln!("error: {e:#}");
    }
    Err(last)
}

/// One partition the application reads: committed or assigned.
struct Row {
    tp: TopicPartition,
    committed: Option<i64>,
    /// The log end offset; `None` for a topic that no longer exists.
    end: Option<i64>,
    /// The member it is assigned to.
    member: Option<String>,
}

impl Row {
    fn lag(&self) -> Option<i64> {
        Some((self.end? - self.committed?).max(0))
    }
}

async fn describe(conn: &Conn, app: &str) -> anyhow::Result<()> {
    let admin = conn.admin();
    let group = group_of(&admin, app).await?;
    let all = all_topics(&admin).await?;
    let internal: Vec<(String, usize)> = all
        .iter()
        .filter(|(t, _)| is_internal_topic(app, t))
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    if group.is_none() && internal.is_empty() {
        bail!("no Streams application '{app}': no consumer group and no internal topics");
    }
    let names: Vec<String> = internal.iter().map(|(t, _)| t.clone()).collect();
    let policies: BTreeMap<String, Option<String>> = admin
        .topic_config_values(&names, "cleanup.policy")
        .await?
        .into_iter()
        .collect();

    let committed: BTreeMap<TopicPartition, i64> = match &group {
        Some(_) => admin
            .list_group_offsets(app)
            .await?
            .into_iter()
            .map(|o| ((o.topic, o.partition), o.offset))
            .collect(),
        None => BTreeMap::new(),
    };
    let mut owner: BTreeMap<TopicPartition, String> = BTreeMap::new();
    for m in group.iter().flat_map(|g| &g.members) {
        for tp in &m.assignment {
            owner.insert(tp.clone(), m.member_id.clone());
        }
    }
    let parts: BTreeSet<TopicPartition> = committed.keys().chain(owner.keys()).cloned().collect();
    // Only partitions of live topics have an end (offsets may outlive a deleted topic).
    let live: Vec<TopicPartition> = parts
        .iter()
        .filter(|(t, p)| all.get(t).is_some_and(|n| (*p as usize) < *n))
        .cloned()
        .collect();
    let ends = admin.offsets_of(&live, OffsetSpec::Latest).await?;
    let rows: Vec<Row> = parts
        .into_iter()
        .map(|tp| Row {
            committed: committed.get(&tp).copied(),
            end: ends.get(&tp).copied(),
            member: owner.get(&tp).cloned(),
            tp,
        })
        .collect();

    let (state, group_type, members) = match &group {
        Some(g) => (g.state.as_str(), g.group_type.as_str(), &g.members[..]),
        None => ("Dead", "-", &[][..]),
    };
    let policy = |t: &String| policies.get(t).cloned().flatten();
    match conn.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "application": app,
                "group": {
                    "state": state,
                    "type": group_type,
                    "members": members.iter().map(|m| serde_json::json!({
                        "member_id": m.member_id, "instance_id": m.instance_id,
                        "client_id": m.client_id, "host": m.host,
                        "assignment": m.assignment.iter()
                            .map(|(t, p)| serde_json::json!({"topic": t, "partition": p}))
                            .collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                },
                "internal_topics": internal.iter().map(|(t, n)| serde_json::json!({
                    "name": t, "partitions": n, "cleanup_policy": policy(t),
                })).collect::<Vec<_>>(),
                "offsets": rows.iter().map(|r| serde_json::json!({
                    "topic": r.tp.0, "partition": r.tp.1, "committed": r.committed,
                    "log_end": r.end, "lag": r.lag(), "member_id": r.member,
                })).collect::<Vec<_>>(),
            })
        ),
        Output::Table => {
            let dash = || "-".to_string();
            println!(
                "APPLICATION {app}  GROUP {app}  STATE {state}  TYPE {group_type}  MEMBERS {}",
                members.len()
            );
            if !members.is_empty() {
                println!();
                let mut t = vec![["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"]
                    .map(String::from)
                    .to_vec()];
                for m in members {
                    let mut assigned = m.assignment.clone();
                    assigned.sort();
                    t.push(vec![
                        m.member_id.clone(),
                        m.client_id.clone(),
                        m.host.clone(),
                        assigned
                            .iter()
                            .map(|(t, p)| format!("{t}-{p}"))
                            .collect::<Vec<_>>()
                            .join(","),
                    ]);
                }
                table(&t);
            }
            println!();
            if internal.is_empty() {
                println!("No internal topics.");
            } else {
                let mut t = vec![["INTERNAL-TOPIC", "PARTITIONS", "CLEANUP-POLICY"]
                    .map(String::from)
                    .to_vec()];
                for (name, n) in &internal {
                    t.push(vec![
                        name.clone(),
                        n.to_string(),
                        policy(name).unwrap_or_else(dash),
                    ]);
                }
                table(&t);
            }
            println!();
            if rows.is_empty() {
                println!("No committed offsets.");
            } else {
                let mut t = vec![[
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "MEMBER-ID",
                ]
                .map(String::from)
                .to_vec()];
                for r in &rows {
                    t.push(vec![
                        r.tp.0.clone(),
                        r.tp.1.to_string(),
                        r.committed.map_or_else(dash, |c| c.to_string()),
                        r.end.map_or_else(dash, |e| e.to_string()),
                        r.lag().map_or_else(dash, |l| l.to_string()),
                        r.member.clone().unwrap_or_else(dash),
                    ]);
                }
                table(&t);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_internal_topic;

    #[test]
    fn internal_topics_follow_kafkas_naming_rule() {
        assert!(is_internal_topic("app", "app-store-changelog"));
        assert!(is_internal_topic("app", "app-KSTREAM-x-repartition"));
        assert!(is_internal_topic(
            "app",
            "app-KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-0000000006-topic"
        ));
        assert!(is_internal_topic(
            "app",
            "app-KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-12-topic"
        ));
        assert!(is_internal_topic(
            "app",
            "app-fk-subscription-registration-topic"
        ));
        assert!(!is_internal_topic("app", "app-other"));
        assert!(!is_internal_topic("app", "other-store-changelog"));
        assert!(!is_internal_topic("app", "application-store-changelog"));
        assert!(!is_internal_topic("app", "app-changelog-x"));
        assert!(!is_internal_topic(
            "app",
            "app-KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-x1-topic"
        ));
    }
}
