//! `strom group list|describe|reset-offsets|delete`: consumer groups, as
//! kafka-consumer-groups.sh shows and manages them (describe gives each partition's
//! committed offset, log end offset and lag, and the members).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use strom_client::{Admin, GroupDescription, OffsetSpec, TopicPartition};

use crate::tools::{table, Conn, Output};

/// `strom group ...`.
#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// List consumer groups with their state and type.
    ///
    /// Examples:
    ///   strom group list
    ///   strom group list --output json
    #[command(verbatim_doc_comment)]
    List,
    /// Show each partition's committed offset, log end offset and lag, and the members.
    ///
    /// Examples:
    ///   strom group describe billing
    ///   strom group describe billing audit --output json
    #[command(verbatim_doc_comment)]
    Describe {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Move an inactive group's committed offsets. Prints the plan; --execute applies it.
    ///
    /// Examples:
    ///   strom group reset-offsets billing --topic orders --to-earliest
    ///   strom group reset-offsets billing --topic orders:0,1 --shift-by -100 --execute
    ///   strom group reset-offsets billing --all-topics --to-datetime 2026-11-01T00:00:00Z --execute
    #[command(verbatim_doc_comment)]
    ResetOffsets(ResetArgs),
    /// Delete groups (they must have no members) and their committed offsets.
    ///
    /// Example: strom group delete billing old-billing
    #[command(verbatim_doc_comment)]
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

/// `strom group reset-offsets`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["topic", "all_topics"])))]
#[command(group(clap::ArgGroup::new("target").required(true)
    .args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])))]
pub struct ResetArgs {
    /// Group id.
    pub group: String,
    /// TOPIC or TOPIC:P,P,... (repeatable).
    #[arg(long)]
    pub topic: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    pub all_topics: bool,
    /// To the log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// To the log end offset.
    #[arg(long)]
    pub to_latest: bool,
    /// To this offset (clamped to the log's range).
    #[arg(long, allow_negative_numbers = true)]
    pub to_offset: Option<i64>,
    /// To the first offset at or after this time: YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM], UTC
    /// when no zone is given.
    #[arg(long)]
    pub to_datetime: Option<String>,
    /// By this many records from the committed offset (negative: back).
    #[arg(long, allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// Apply the plan (without it, only show it).
    #[arg(long)]
    pub execute: bool,
    /// Show the plan only (the default).
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
}

/// Runs `strom group ...`.
pub async fn group(conn: &Conn, cmd: GroupCmd) -> anyhow::Result<()> {
    match cmd {
        GroupCmd::List => list(conn).await,
        GroupCmd::Describe { groups } => describe(conn, &groups).await,
        GroupCmd::ResetOffsets(args) => reset(conn, args).await,
        GroupCmd::Delete { groups } => delete(conn, &groups).await,
    }
}

/// Prints each failure but the last on its own `error:` line and returns the last, which
/// `main` prints the same way before exiting 1: one line per group that failed.
fn report(mut failures: Vec<anyhow::Error>) -> anyhow::Result<()> {
    let Some(last) = failures.pop() else {
        return Ok(());
    };
    for e in failures {
        eprintln!("error: {e:#}");
    }
    Err(last)
}

/// Deletes each group on its own, so one that cannot go (NON_EMPTY_GROUP,
/// GROUP_ID_NOT_FOUND) does not keep the others.
async fn delete(conn: &Conn, groups: &[String]) -> anyhow::Result<()> {
    let admin = conn.admin();
    let mut deleted = Vec::new();
    let mut failures = Vec::new();
    for g in groups {
        match admin.delete_groups(std::slice::from_ref(g)).await {
            Ok(()) => deleted.push(g.clone()),
            Err(e) => failures.push(anyhow::Error::new(e).context(format!("deleting group {g}"))),
        }
    }
    match conn.output {
        Output::Table if !deleted.is_empty() => println!("deleted {}", deleted.join(", ")),
        Output::Table => {}
        Output::Json => println!("{}", serde_json::json!({ "deleted": deleted })),
    }
    report(failures)
}

async fn list(conn: &Conn) -> anyhow::Result<()> {
    let groups = conn.admin().list_groups().await?;
    match conn.output {
        Output::Json => println!(
            "{}",
            serde_json::json!(groups
                .iter()
                .map(|g| serde_json::json!({
                    "group": g.group_id, "state": g.state,
                    "type": g.group_type, "protocol_type": g.protocol_type,
                }))
                .collect::<Vec<_>>())
        ),
        Output::Table => {
            let dash = |v: &String| if v.is_empty() { "-".into() } else { v.clone() };
            let mut rows = vec![["GROUP", "STATE", "TYPE", "PROTOCOL"]
                .map(String::from)
                .to_vec()];
            rows.extend(groups.iter().map(|g| {
                vec![
                    g.group_id.clone(),
                    dash(&g.state),
                    dash(&g.group_type),
                    dash(&g.protocol_type),
                ]
            }));
            table(&rows);
        }
    }
    Ok(())
}

/// One row of `describe`: a partition the group commits to or is assigned.
struct Row {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    end: i64,
    member: Option<(String, String, String)>,
}

async fn rows(admin: &Admin, g: &GroupDescription) -> anyhow::Result<Vec<Row>> {
    let committed: BTreeMap<TopicPartition, i64> = admin
        .list_group_offsets(&g.group_id)
        .await?
        .into_iter()
        .map(|o| ((o.topic, o.partition), o.offset))
        .collect();
    let mut owner: BTreeMap<TopicPartition, (String, String, String)> = BTreeMap::new();
    for m in &g.members {
        for tp in &m.assignment {
            owner.insert(
                tp.clone(),
                (m.member_id.clone(), m.host.clone(), m.client_id.clone()),
            );
        }
    }
    let parts: BTreeSet<TopicPartition> = committed.keys().chain(owner.keys()).cloned().collect();
    let list: Vec<TopicPartition> = parts.iter().cloned().collect();
    let ends = if list.is_empty() {
        Default::default()
    } else {
        admin.list_offsets(&list, OffsetSpec::Latest).await?
    };
    Ok(parts
        .into_iter()
        .map(|tp| Row {
            committed: committed.get(&tp).copied(),
            end: ends.get(&tp).map_or(-1, |o| o.offset),
            member: owner.get(&tp).cloned(),
            topic: tp.0,
            partition: tp.1,
        })
        .collect())
}

async fn describe(conn: &Conn, groups: &[String]) -> anyhow::Result<()> {
    let admin = conn.admin();
    let mut json = Vec::new();
    let mut failures = Vec::new();
    for group in groups {
        // One group at a time: a missing one is an error line, the others still show.
        let g = match admin.describe_groups(std::slice::from_ref(group)).await {
            Ok(mut d) => match d.pop() {
                Some(g) => g,
                None => continue,
            },
            Err(e) => {
                failures.push(anyhow::Error::new(e).context(format!("describing group {group}")));
                continue;
            }
        };
        let rows = rows(&admin, &g).await?;
        let lag = |r: &Row| r.committed.map(|c| (r.end - c).max(0));
        match conn.output {
            Output::Json => json.push(serde_json::json!({
                "group": g.group_id,
                "state": g.state,
                "type": g.group_type,
                "protocol_type": g.protocol_type,
                "assignor": g.assignor,
                "members": g.members.iter().map(|m| serde_json::json!({
                    "member_id": m.member_id, "instance_id": m.instance_id,
                    "client_id": m.client_id, "host": m.host,
                    "assignment": m.assignment.iter()
                        .map(|(t, p)| serde_json::json!({"topic": t, "partition": p}))
                        .collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "offsets": rows.iter().map(|r| serde_json::json!({
                    "topic": r.topic, "partition": r.partition,
                    "committed": r.committed, "log_end": r.end, "lag": lag(r),
                    "member_id": r.member.as_ref().map(|m| &m.0),
                })).collect::<Vec<_>>(),
            })),
            Output::Table => {
                println!(
                    "GROUP {}  STATE {}  TYPE {}  ASSIGNOR {}  MEMBERS {}",
                    g.group_id,
                    g.state,
                    g.group_type,
                    if g.assignor.is_empty() {
                        "-"
                    } else {
                        &g.assignor
                    },
                    g.members.len()
                );
                println!();
                let dash = || "-".to_string();
                let mut t = vec![[
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "CONSUMER-ID",
                    "HOST",
                    "CLIENT-ID",
                ]
                .map(String::from)
                .to_vec()];
                for r in &rows {
                    let (id, host, client) =
                        r.member.clone().unwrap_or_else(|| (dash(), dash(), dash()));
                    t.push(vec![
                        r.topic.clone(),
                        r.partition.to_string(),
                        r.committed.map_or_else(dash, |c| c.to_string()),
                        r.end.to_string(),
                        lag(r).map_or_else(dash, |l| l.to_string()),
                        id,
                        host,
                        client,
                    ]);
                }
                table(&t);
                if !g.members.is_empty() {
                    println!();
                    let mut m = vec![[
                        "MEMBER-ID",
                        "INSTANCE-ID",
                        "CLIENT-ID",
                        "HOST",
                        "ASSIGNMENT",
                    ]
                    .map(String::from)
                    .to_vec()];
                    for member in &g.members {
                        m.push(vec![
                            member.member_id.clone(),
                            member.instance_id.clone().unwrap_or_else(dash),
                            member.client_id.clone(),
                            member.host.clone(),
                            member
                                .assignment
                                .iter()
                                .map(|(t, p)| format!("{t}-{p}"))
                                .collect::<Vec<_>>()
                                .join(","),
                        ]);
                    }
                    table(&m);
                }
                println!();
            }
        }
    }
    // Nothing to show when every group failed: only the error lines.
    if conn.output == Output::Json && (!json.is_empty() || failures.is_empty()) {
        println!("{}", serde_json::Value::Array(json));
    }
    report(failures)
}

async fn reset(conn: &Conn, a: ResetArgs) -> anyhow::Result<()> {
    let admin = conn.admin();
    let g = admin.describe_groups(std::slice::from_ref(&a.group)).await;
    match g {
        Ok(g) => {
            if let Some(g) = g.first() {
                if !g.members.is_empty() || !matches!(g.state.as_str(), "Empty" | "Dead") {
                    bail!(
                        "offsets can only be reset while group '{}' is inactive; its state is {} with {} member(s)",
                        a.group,
                        g.state,
                        g.members.len()
                    );
                }
            }
        }
        // A group that does not exist yet can be given offsets.
        Err(strom_client::ClientError::Kafka { code: 69, .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let committed: BTreeMap<TopicPartition, i64> = admin
        .list_group_offsets(&a.group)
        .await?
        .into_iter()
        .map(|o| ((o.topic, o.partition), o.offset))
        .collect();
    // The partitions in scope.
    let mut parts: BTreeSet<TopicPartition> = BTreeSet::new();
    if a.all_topics {
        parts.extend(committed.keys().cloned());
    }
    for spec in &a.topic {
        match spec.split_once(':') {
            Some((t, ps)) => {
                for p in ps.split(',') {
                    let p: i32 = p
                        .trim()
                        .parse()
                        .with_context(|| format!("--topic {spec}"))?;
                    parts.insert((t.to_string(), p));
                }
            }
            None => {
                let d = admin
                    .describe_topics(std::slice::from_ref(spec))
                    .await?
                    .pop()
                    .with_context(|| format!("topic {spec} not found"))?;
                parts.extend(d.partitions.iter().map(|p| (spec.clone(), p.partition)));
            }
        }
    }
    if parts.is_empty() {
        bail!("no partitions to reset");
    }
    let list: Vec<TopicPartition> = parts.iter().cloned().collect();
    let earliest = admin.list_offsets(&list, OffsetSpec::Earliest).await?;
    let latest = admin.list_offsets(&list, OffsetSpec::Latest).await?;
    let at_time = match &a.to_datetime {
        Some(text) => {
            let ms = parse_datetime(text)?;
            Some(admin.list_offsets(&list, OffsetSpec::Timestamp(ms)).await?)
        }
        None => None,
    };
    let mut plan = Vec::new();
    for tp in &list {
        let lo = earliest.get(tp).map_or(0, |o| o.offset);
        let hi = latest.get(tp).map_or(0, |o| o.offset);
        let current = committed.get(tp).copied();
        let target = if a.to_earliest {
            lo
        } else if a.to_latest {
            hi
        } else if let Some(o) = a.to_offset {
            o
        } else if let Some(found) = &at_time {
            // No record at or after the time: the end, as Kafka does.
            found
                .get(tp)
                .map(|o| o.offset)
                .filter(|o| *o >= 0)
                .unwrap_or(hi)
        } else if let Some(by) = a.shift_by {
            // Kafka's tool refuses too: there is nothing to shift from.
            let Some(from) = current else {
                bail!(
                    "cannot shift the offset of {}-{}: group '{}' has no committed offset there",
                    tp.0,
                    tp.1,
                    a.group
                );
            };
            from.saturating_add(by)
        } else {
            bail!("no target given");
        };
        plan.push((tp.clone(), current, target.clamp(lo, hi)));
    }
    if a.execute {
        let offsets: Vec<(TopicPartition, i64)> =
            plan.iter().map(|(tp, _, o)| (tp.clone(), *o)).collect();
        admin.alter_group_offsets(&a.group, &offsets).await?;
    }
    match conn.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "group": a.group,
                "executed": a.execute,
                "offsets": plan.iter().map(|((t, p), cur, new)| serde_json::json!({
                    "topic": t, "partition": p, "current": cur, "new": new,
                })).collect::<Vec<_>>(),
            })
        ),
        Output::Table => {
            let mut rows = vec![["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]
                .map(String::from)
                .to_vec()];
            for ((t, p), cur, new) in &plan {
                rows.push(vec![
                    t.clone(),
                    p.to_string(),
                    cur.map_or_else(|| "-".into(), |c| c.to_string()),
                    new.to_string(),
                ]);
            }
            table(&rows);
            if !a.execute {
                println!("(dry run: add --execute to apply)");
            }
        }
    }
    Ok(())
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]` (UTC without a
/// zone). Written here because no date crate is in the dependency set and this is the one
/// format Kafka's tool takes.
fn parse_datetime(text: &str) -> anyhow::Result<i64> {
    let bad =
        || anyhow::anyhow!("--to-datetime '{text}': expected YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM]");
    let (date, rest) = text.split_once('T').ok_or_else(bad)?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, mo, da) = match (d.next(), d.next(), d.next(), d.next()) {
        (Some(Ok(y)), Some(Ok(m)), Some(Ok(d)), None) => (y, m, d),
        _ => return Err(bad()),
    };
    let (time, offset_min) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, z) = rest.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (h, m) = z[1..].split_once(':').ok_or_else(bad)?;
        let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        (t, sign * (h * 60 + m))
    } else {
        (rest, 0)
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (h, mi, se) = match (t.next(), t.next(), t.next(), t.next()) {
        (Some(Ok(h)), Some(Ok(m)), Some(Ok(s)), None) => (h, m, s),
        _ => return Err(bad()),
    };
    let ms: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}")[..3].parse().map_err(|_| bad())?
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    // Days from 1970-01-01 in the proleptic Gregorian calendar (the civil-from-days inverse).
    let (y, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + h) * 60 + mi - offset_min) * 60_000 + se * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::parse_datetime;

    #[test]
    fn datetimes_match_known_epochs() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_datetime("2026-01-01T00:00:00").unwrap(),
            1_767_225_600_000
        );
        assert_eq!(
            parse_datetime("2000-02-29T12:30:15.250Z").unwrap(),
            951_827_415_250
        );
        assert_eq!(
            parse_datetime("2026-01-01T02:00:00+02:00").unwrap(),
            1_767_225_600_000
        );
        assert!(parse_datetime("2026-13-01T00:00:00").is_err());
        assert!(parse_datetime("yesterday").is_err());
    }
}
