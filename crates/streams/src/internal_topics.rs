//! The application's internal topics, set up before the stream thread joins its group (as
//! Kafka's `InternalTopicManager` does): source topics must exist; repartition topics
//! `<application.id>-<name>-repartition` get as many partitions as the largest source
//! topic of the sub-topology writing them; changelog topics
//! `<application.id>-<store>-changelog` get one partition per task of their sub-topology;
//! joined topics must have as many partitions (co-partitioning), and a repartition topic
//! joined with source topics gets their number.
//!
//! Existing internal topics are kept as they are; two instances creating one at once is
//! fine (the loser's TOPIC_ALREADY_EXISTS is ignored).

use std::collections::HashMap;

use strom_client::{Admin, ClientError};

use crate::error::StreamsError;
use crate::topology::Compiled;

/// TOPIC_ALREADY_EXISTS.
const TOPIC_ALREADY_EXISTS: i16 = 36;

/// The partitions (tasks) of each sub-topology, after creating what was missing.
pub(crate) async fn prepare(
    admin: &Admin,
    compiled: &Compiled,
    copartition: &[Vec<String>],
    replication_factor: i16,
) -> Result<Vec<i32>, StreamsError> {
    let described =
        admin
            .describe_topics(&[])
            .await
            .map_err(|source| StreamsError::InternalTopic {
                topic: "(all)".into(),
                source,
            })?;
    let mut partitions: HashMap<String, i32> = described
        .iter()
        .map(|t| (t.name.clone(), t.partitions.len() as i32))
        .collect();
    let repartition = compiled.repartition_topics();
    for plan in &compiled.subtopologies {
        for t in &plan.sources {
            if !repartition.contains(t) && !partitions.contains_key(t) {
                return Err(StreamsError::MissingSourceTopic(t.clone()));
            }
        }
    }
    // Repartition topics take their writers' source partitions; a writer may itself read a
    // repartition topic, so this runs until nothing changes.
    let mut sized: HashMap<String, i32> = repartition
        .iter()
        .filter_map(|t| partitions.get(t).map(|&n| (t.clone(), n)))
        .collect();
    loop {
        let mut changed = false;
        for t in &repartition {
            if sized.contains_key(t) {
                continue;
            }
            let writers = compiled
                .subtopologies
                .iter()
                .filter(|p| p.repartition_sinks.contains(t));
            let mut n = None;
            for w in writers {
                for s in &w.sources {
                    if let Some(&c) = partitions.get(s).or_else(|| sized.get(s)) {
                        n = Some(n.unwrap_or(0).max(c));
                    }
                }
            }
            if let Some(n) = n {
                sized.insert(t.clone(), n);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // Kafka's CopartitionedTopicsEnforcer: a repartition topic joined with other topics
    // takes their partition count (joined with repartition topics only, the largest).
    for group in copartition {
        let fixed = group
            .iter()
            .filter(|t| !repartition.contains(t))
            .find_map(|t| partitions.get(t).copied());
        let n = fixed.or_else(|| {
            group
                .iter()
                .filter_map(|t| partitions.get(t).or_else(|| sized.get(t)))
                .copied()
                .max()
        });
        let Some(n) = n else { continue };
        for t in group {
            if repartition.contains(t) && !partitions.contains_key(t) {
                sized.insert(t.clone(), n);
            }
        }
    }
    for t in &repartition {
        if partitions.contains_key(t) {
            continue;
        }
        let n = *sized.get(t).ok_or_else(|| {
            StreamsError::InvalidTopology(format!("cannot size repartition topic {t}"))
        })?;
        let configs = [
            ("cleanup.policy", "delete"),
            ("retention.ms", "-1"),
            ("segment.bytes", "52428800"),
        ];
        create(admin, t, n, replication_factor, &configs).await?;
        partitions.insert(t.clone(), n);
    }
    let mut tasks = Vec::with_capacity(compiled.subtopologies.len());
    for plan in &compiled.subtopologies {
        let n = plan
            .sources
            .iter()
            .filter_map(|t| partitions.get(t))
            .copied()
            .max()
            .unwrap_or(1);
        for store in &plan.stores {
            if !store.logged {
                continue;
            }
            let topic = store.changelog(&compiled.application_id);
            if let Some(&have) = partitions.get(&topic) {
                if have != n {
                    tracing::warn!(%topic, have, want = n, "a changelog topic has another number of partitions than its sub-topology has tasks");
                }
                continue;
            }
            let configs = store.changelog_configs();
            let configs: Vec<(&str, &str)> = configs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            create(admin, &topic, n, replication_factor, &configs).await?;
            partitions.insert(topic, n);
        }
        tasks.push(n);
    }
    for group in copartition {
        let counts: Vec<(String, i32)> = group
            .iter()
            .map(|t| (t.clone(), partitions.get(t).copied().unwrap_or(-1)))
            .collect();
        if counts.windows(2).any(|w| w[0].1 != w[1].1) {
            let list: Vec<String> = counts.iter().map(|(t, n)| format!("{t}: {n}")).collect();
            return Err(StreamsError::NotCopartitioned(format!(
                "the number of partitions differs ({})",
                list.join(", ")
            )));
        }
    }
    Ok(tasks)
}

async fn create(
    admin: &Admin,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(&str, &str)],
) -> Result<(), StreamsError> {
    let configs: Vec<(String, String)> = configs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match admin
        .create_topic(topic, partitions, replication_factor, &configs)
        .await
    {
        Ok(()) => {
            tracing::info!(%topic, partitions, "created internal topic");
            Ok(())
        }
        Err(ClientError::Kafka { code, .. }) if code == TOPIC_ALREADY_EXISTS => Ok(()),
        Err(source) => Err(StreamsError::InternalTopic {
            topic: topic.to_string(),
            source,
        }),
    }
}
