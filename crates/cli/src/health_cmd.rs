//! `strom cluster health`: the cluster's vital signs in one look, for people and scripts
//! (exit status 1 when any is unhealthy). Everything comes over the Kafka protocol
//! (DescribeCluster, DescribeQuorum, Metadata, DescribeConfigs), so it works against any
//! broker of the cluster.

use std::collections::HashMap;

use crate::tools::{table, Conn, Output};

/// A voter the quorum leader has not heard from for this long is unhealthy.
const VOTER_SILENCE_MS: i64 = 10_000;

/// One vital sign.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

/// Prints every check; true when all pass.
pub async fn health(conn: &Conn) -> anyhow::Result<bool> {
    let admin = conn.admin();
    let cluster = admin.describe_cluster().await?;
    let mut checks = vec![Check {
        name: "controller",
        ok: cluster.controller >= 0,
        detail: if cluster.controller >= 0 {
            format!("node {} is the active controller", cluster.controller)
        } else {
            "no active controller".into()
        },
    }];
    let fenced: Vec<String> = cluster
        .all_brokers
        .iter()
        .filter(|b| b.fenced)
        .map(|b| b.id.to_string())
        .collect();
    checks.push(Check {
        name: "brokers",
        ok: fenced.is_empty(),
        detail: if fenced.is_empty() {
            format!("{} registered, all active", cluster.all_brokers.len())
        } else {
            format!(
                "{} registered, fenced: {}",
                cluster.all_brokers.len(),
                fenced.join(", ")
            )
        },
    });
    checks.push(match admin.describe_quorum().await {
        Ok(q) => {
            let now = now_ms();
            let silent: Vec<String> = q
                .voters
                .iter()
                .filter(|v| v.id != q.leader_id)
                .filter(|v| {
                    v.last_fetch_timestamp < 0 || now - v.last_fetch_timestamp > VOTER_SILENCE_MS
                })
                .map(|v| v.id.to_string())
                .collect();
            let max_lag = q
                .voters
                .iter()
                .chain(&q.observers)
                .filter(|r| r.log_end_offset >= 0)
                .map(|r| (q.high_watermark - r.log_end_offset).max(0))
                .max()
                .unwrap_or(0);
            Check {
                name: "quorum",
                ok: q.leader_id >= 0 && silent.is_empty(),
                detail: if q.leader_id < 0 {
                    "no leader".into()
                } else if !silent.is_empty() {
                    format!(
                        "leader {}, voters not heard from in {} s: {}",
                        q.leader_id,
                        VOTER_SILENCE_MS / 1000,
                        silent.join(", ")
                    )
                } else {
                    format!(
                        "leader {}, epoch {}, {} voters, largest lag {max_lag}",
                        q.leader_id,
                        q.leader_epoch,
                        q.voters.len()
                    )
                },
            }
        }
        Err(e) => Check {
            name: "quorum",
            ok: false,
            detail: format!("DescribeQuorum failed: {e}"),
        },
    });
    let topics = admin.describe_topics(&[]).await?;
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let min_isr: HashMap<String, usize> = admin
        .topic_config_values(&names, "min.insync.replicas")
        .await?
        .into_iter()
        .filter_map(|(t, v)| Some((t, v?.parse().ok()?)))
        .collect();
    let (mut total, mut offline, mut under, mut under_min) =
        (0, Vec::new(), Vec::new(), Vec::new());
    for t in &topics {
        for p in &t.partitions {
            total += 1;
            let name = format!("{}-{}", t.name, p.partition);
            if p.leader < 0 {
                offline.push(name);
            } else if p.isr.len() < *min_isr.get(&t.name).unwrap_or(&1) {
                under_min.push(name);
            } else if p.under_replicated() {
                under.push(name);
            }
        }
    }
    let listed = |v: &[String]| {
        let mut s = v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        if v.len() > 5 {
            s.push_str(&format!(" and {} more", v.len() - 5));
        }
        s
    };
    checks.push(Check {
        name: "partitions",
        ok: offline.is_empty() && under_min.is_empty() && under.is_empty(),
        detail: if offline.is_empty() && under_min.is_empty() && under.is_empty() {
            format!("{total} partitions, all led and fully in sync")
        } else {
            let mut parts = Vec::new();
            if !offline.is_empty() {
                parts.push(format!("{} offline: {}", offline.len(), listed(&offline)));
            }
            if !under_min.is_empty() {
                parts.push(format!(
                    "{} under min.insync.replicas: {}",
                    under_min.len(),
                    listed(&under_min)
                ));
            }
            if !under.is_empty() {
                parts.push(format!(
                    "{} under-replicated: {}",
                    under.len(),
                    listed(&under)
                ));
            }
            parts.join("; ")
        },
    });
    let healthy = checks.iter().all(|c| c.ok);
    match conn.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "healthy": healthy,
                "checks": checks.iter().map(|c| serde_json::json!({
                    "name": c.name, "ok": c.ok, "detail": c.detail,
                })).collect::<Vec<_>>(),
                "offline_partitions": offline,
                "under_min_isr_partitions": under_min,
                "under_replicated_partitions": under,
            })
        ),
        Output::Table => {
            let mut rows = vec![vec![
                "CHECK".to_string(),
                "STATUS".to_string(),
                "DETAIL".to_string(),
            ]];
            rows.extend(checks.iter().map(|c| {
                vec![
                    c.name.to_string(),
                    if c.ok { "ok" } else { "UNHEALTHY" }.to_string(),
                    c.detail.clone(),
                ]
            }));
            table(&rows);
        }
    }
    Ok(healthy)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
