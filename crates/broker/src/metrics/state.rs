//! The metrics read from the broker's state at scrape time: partition offsets and sizes,
//! partition health, the metadata quorum, consumer-group lag, producers and transactions,
//! and the process. Written straight into Prometheus' text format: registering tens of
//! thousands of per-partition gauges in a recorder on every scrape would cost more than
//! the text itself, and a deleted topic's series would linger there.

use std::fmt::Write as _;

use strom_metadata::MetadataImage;
use strom_replication::Role;
use strom_types::TopicPartition;

use crate::broker::Broker;

/// Prometheus' text format, one metric family at a time.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Exposition {
        Exposition {
            out: String::with_capacity(capacity),
        }
    }

    /// Starts a family: its HELP and TYPE lines. Its samples must follow before the next.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> Family<'_> {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        Family {
            out: &mut self.out,
            name: name.to_string(),
        }
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help).sample(&[], value);
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// The samples of one family.
pub struct Family<'a> {
    out: &'a mut String,
    name: String,
}

impl Family<'_> {
    /// One sample with `labels`.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(&self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_into(self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        if value.fract() == 0.0 && value.abs() < 1e15 {
            let _ = write!(self.out, "{}", value as i64);
        } else {
            let _ = write!(self.out, "{value}");
        }
        self.out.push('\n');
    }
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// One local replica's figures.
struct Row {
    tp: TopicPartition,
    partition: String,
    log_start: i64,
    log_end: i64,
    high_watermark: i64,
    size: u64,
    segments: usize,
}

/// A per-partition family: name, help, and how a row gives its value.
type PerPartition = (&'static str, &'static str, fn(&Row) -> f64);

/// The state metrics of a broker.
pub async fn render(broker: &Broker, x: &mut Exposition) {
    let image = broker.image();
    partitions(broker, &image, x);
    quorum(broker, &image, x);
    groups(broker, x);
    producers(broker, x).await;
    process(x);
}

fn partitions(broker: &Broker, image: &MetadataImage, x: &mut Exposition) {
    let replicas = broker.replicas.partitions();
    let rows: Vec<Row> = replicas
        .iter()
        .map(|p| {
            let log = p.log();
            let tp = p.topic_partition().clone();
            Row {
                partition: tp.partition.to_string(),
                tp,
                log_start: log.log_start_offset(),
                log_end: log.log_end_offset(),
                high_watermark: p.high_watermark(),
                size: log.size(),
                segments: log.segment_count(),
            }
        })
        .collect();
    let per_partition: [PerPartition; 5] = [
        (
            "strom_partition_log_start_offset",
            "First offset of the replica's log (Kafka: kafka.log Log LogStartOffset).",
            |r| r.log_start as f64,
        ),
        (
            "strom_partition_log_end_offset",
            "Next offset the replica's log assigns (Kafka: kafka.log Log LogEndOffset).",
            |r| r.log_end as f64,
        ),
        (
            "strom_partition_high_watermark",
            "Offset consumers read up to, as this replica knows it (Kafka: Partition high watermark).",
            |r| r.high_watermark as f64,
        ),
        (
            "strom_partition_size_bytes",
            "Bytes of the replica's segments on disk (Kafka: kafka.log Log Size).",
            |r| r.size as f64,
        ),
        (
            "strom_partition_segments",
            "Segments of the replica's log (Kafka: kafka.log Log NumLogSegments).",
            |r| r.segments as f64,
        ),
    ];
    for (name, help, value) in per_partition {
        let mut f = x.family(name, "gauge", help);
        for r in &rows {
            f.sample(
                &[("topic", &r.tp.topic), ("partition", &r.partition)],
                value(r),
            );
        }
    }
    let (mut leaders, mut under, mut under_min, mut at_min) = (0, 0, 0, 0);
    for p in &replicas {
        if p.role() != Role::Leader {
            continue;
        }
        leaders += 1;
        let a = p.assignment();
        let min = p.min_insync_replicas().max(1) as usize;
        under += usize::from(a.isr.len() < a.replicas.len());
        under_min += usize::from(a.isr.len() < min);
        at_min += usize::from(a.isr.len() == min);
    }
    x.single(
        "strom_partitions",
        "gauge",
        "Partition replicas on this broker (Kafka: ReplicaManager PartitionCount).",
        replicas.len() as f64,
    );
    x.single(
        "strom_leader_partitions",
        "gauge",
        "Partitions this broker leads (Kafka: ReplicaManager LeaderCount).",
        leaders as f64,
    );
    x.single(
        "strom_under_replicated_partitions",
        "gauge",
        "Partitions led here whose ISR is smaller than their replicas (Kafka: ReplicaManager UnderReplicatedPartitions).",
        under as f64,
    );
    x.single(
        "strom_under_min_isr_partitions",
        "gauge",
        "Partitions led here whose ISR is below min.insync.replicas: acks=all produces fail (Kafka: ReplicaManager UnderMinIsrPartitionCount).",
        under_min as f64,
    );
    x.single(
        "strom_at_min_isr_partitions",
        "gauge",
        "Partitions led here whose ISR is exactly min.insync.replicas (Kafka: ReplicaManager AtMinIsrPartitionCount).",
        at_min as f64,
    );
    let offline = image
        .topics
        .values()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.leader < 0)
        .count();
    x.single(
        "strom_offline_partitions",
        "gauge",
        "Partitions in the cluster with no leader (Kafka: KafkaController OfflinePartitionsCount).",
        offline as f64,
    );
    let open_segments: usize = rows.iter().map(|r| r.segments).sum();
    x.single(
        "strom_open_segments",
        "gauge",
        "Log segments this broker holds open, each a log file and its indexes.",
        open_segments as f64,
    );
}

fn quorum(broker: &Broker, image: &MetadataImage, x: &mut Exposition) {
    metadata_families(&broker.metadata, image, x);
    let fenced = image.brokers.values().filter(|b| b.fenced).count();
    let mut f = x.family(
        "strom_brokers",
        "gauge",
        "Registered brokers by state (Kafka: KafkaController ActiveBrokerCount, FencedBrokerCount).",
    );
    f.sample(
        &[("state", "active")],
        (image.brokers.len() - fenced) as f64,
    );
    f.sample(&[("state", "fenced")], fenced as f64);
}

/// The metadata quorum as this node sees it: any node (a controller-only one too).
pub fn metadata_families(
    node: &strom_metadata::MetadataNode,
    image: &MetadataImage,
    x: &mut Exposition,
) {
    let quorum = node.quorum();
    let status = quorum.status();
    let me = quorum.config().node_id;
    x.single(
        "strom_active_controller",
        "gauge",
        "1 on the node that leads the metadata quorum, the active controller (Kafka: KafkaController ActiveControllerCount).",
        f64::from(u8::from(quorum.is_leader())),
    );
    x.single(
        "strom_metadata_quorum_leader",
        "gauge",
        "Node id of the metadata quorum's leader, -1 if none is known (Kafka: raft-metrics current-leader).",
        f64::from(status.leader_id),
    );
    x.single(
        "strom_metadata_quorum_epoch",
        "gauge",
        "The quorum leader's epoch (Kafka: raft-metrics current-epoch).",
        f64::from(status.leader_epoch),
    );
    x.single(
        "strom_metadata_high_watermark",
        "gauge",
        "Metadata log entries known committed (Kafka: raft-metrics high-watermark).",
        status.high_watermark as f64,
    );
    let own_end = status
        .voters
        .iter()
        .chain(&status.observers)
        .find(|r| r.replica_id == me)
        .map_or(-1, |r| r.log_end_offset);
    x.single(
        "strom_metadata_log_end_offset",
        "gauge",
        "End of this node's copy of the metadata log (Kafka: raft-metrics log-end-offset).",
        own_end as f64,
    );
    x.single(
        "strom_metadata_last_applied_offset",
        "gauge",
        "Metadata log offset this node's image reflects (Kafka: broker-metadata-metrics last-applied-record-offset).",
        image.offset as f64,
    );
    if quorum.is_leader() {
        let leader_end = own_end.max(0);
        let mut f = x.family(
            "strom_metadata_replica_lag",
            "gauge",
            "Metadata log entries each voter and observer is behind the leader, as the leader knows it (-1: unknown).",
        );
        for r in status.voters.iter().chain(&status.observers) {
            let lag = if r.log_end_offset < 0 {
                -1
            } else {
                (leader_end - r.log_end_offset).max(0)
            };
            f.sample(&[("replica", &r.replica_id.to_string())], lag as f64);
        }
    }
}

fn groups(broker: &Broker, x: &mut Exposition) {
    let groups = broker.coordinator.overview();
    {
        let mut f = x.family(
            "strom_consumer_group_members",
            "gauge",
            "Members of each group this broker coordinates (Kafka: GroupMetadataManager NumGroups, per group).",
        );
        for g in &groups {
            f.sample(
                &[("group", &g.group_id), ("state", g.state), ("type", g.kind)],
                g.members as f64,
            );
        }
    }
    {
        let mut f = x.family(
            "strom_consumer_group_rebalances_total",
            "counter",
            "Rebalances each group has completed: its generation (classic) or group epoch (consumer protocol) (Kafka: group-coordinator-metrics rebalance-count).",
        );
        for g in &groups {
            f.sample(&[("group", &g.group_id)], f64::from(g.epoch.max(0)));
        }
    }
    let mut f = x.family(
        "strom_consumer_group_lag",
        "gauge",
        "Records between a group's committed offset and the partition's high watermark, for partitions with a replica on the coordinating broker (Kafka: the consumer's records-lag, seen from the broker).",
    );
    for g in &groups {
        for (topic, partition, offset) in &g.offsets {
            let Some(p) = broker
                .replicas
                .get(&TopicPartition::new(topic.as_str(), *partition))
            else {
                continue;
            };
            let lag = (p.high_watermark() - offset).max(0);
            f.sample(
                &[
                    ("group", &g.group_id),
                    ("topic", topic),
                    ("partition", &partition.to_string()),
                ],
                lag as f64,
            );
        }
    }
}

async fn producers(broker: &Broker, x: &mut Exposition) {
    let ids: usize = broker
        .replicas
        .partitions()
        .iter()
        .filter(|p| p.role() == Role::Leader)
        .map(|p| p.log().producer_count())
        .sum();
    x.single(
        "strom_producer_ids",
        "gauge",
        "Idempotent and transactional producers whose sequences the partitions led here track (Kafka: ProducerStateManager ProducerIdCount).",
        ids as f64,
    );
    // A transaction's state is locked while its log append is under way: a scrape waits
    // a moment for them, then leaves the family out rather than stall.
    let Ok(listings) = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        broker.transactions.list(&[], &[], -1),
    )
    .await
    else {
        return;
    };
    let mut by_state = std::collections::BTreeMap::<&str, usize>::new();
    for l in &listings {
        *by_state.entry(l.state).or_default() += 1;
    }
    let mut f = x.family(
        "strom_transactions",
        "gauge",
        "Transactional ids this broker coordinates, by state (Kafka: TransactionStateManager, per state).",
    );
    for (state, n) in by_state {
        f.sample(&[("state", state)], n as f64);
    }
}

/// The standard process families, from /proc (Linux).
pub fn process(x: &mut Exposition) {
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        x.single(
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            entries.count() as f64,
        );
    }
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        if let Some(max) = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse::<f64>().ok())
        {
            x.single(
                "process_max_fds",
                "gauge",
                "Limit on open file descriptors.",
                max,
            );
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = 100.0; // USER_HZ on Linux
        let num = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        if let (Some(user), Some(system)) = (num(11), num(12)) {
            x.single(
                "process_cpu_seconds_total",
                "counter",
                "User and system CPU time.",
                (user + system) / ticks,
            );
        }
        if let Some(pages) = num(21) {
            x.single(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory.",
                pages * rustix::param::page_size() as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_with_help_type_and_escaped_labels() {
        let mut x = Exposition::default();
        let mut f = x.family("strom_x", "gauge", "An example.");
        f.sample(&[("topic", "a\"b\\c\nd"), ("partition", "0")], 3.0);
        f.sample(&[], 0.5);
        x.single("strom_y", "counter", "Another.", 7.0);
        assert_eq!(
            x.finish(),
            "# HELP strom_x An example.\n# TYPE strom_x gauge\n\
             strom_x{topic=\"a\\\"b\\\\c\\nd\",partition=\"0\"} 3\nstrom_x 0.5\n\
             # HELP strom_y Another.\n# TYPE strom_y counter\nstrom_y 7\n"
        );
    }
}
