//! The native client's group administration (`Admin`: list, describe and delete groups;
//! list, alter and delete committed offsets; list partition offsets) against the real
//! broker, for an offsets-only group and for live classic and KIP-848 groups.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Server;
use strom_client::{
    Admin, ClientError, Consumer, ConsumerConfig, GroupDescription, OffsetSpec, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};
use tokio::sync::oneshot;

const BROKER: &[&str] = &[
    "group.initial.rebalance.delay.ms=0",
    "group.consumer.heartbeat.interval.ms=200",
];

/// 2026-01-01T00:00:00Z.
const TS0: i64 = 1_767_225_600_000;

fn admin(s: &Server) -> Admin {
    Admin::new(vec![s.addr.clone()], "admin-test", Duration::from_secs(10))
}

/// The Kafka error code of `e`, failing the test for any other kind of error.
fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> i16 {
    match r {
        Err(ClientError::Kafka { code, .. }) => code,
        other => panic!("expected a Kafka error, got {other:?}"),
    }
}

/// `n` records on `partition`, one a second from TS0.
async fn produce(addr: &str, topic: &str, partition: i32, n: i64) {
    let mut config = ProducerConfig::default();
    config.set("bootstrap.servers", addr).unwrap();
    let p = Producer::new(config);
    let mut acks = Vec::new();
    for i in 0..n {
        let record = ProducerRecord {
            topic: topic.into(),
            partition: Some(partition),
            value: Some(Bytes::from(format!("v{i}"))),
            timestamp: Some(TS0 + i * 1000),
            ..Default::default()
        };
        acks.push(p.send(record).await.unwrap());
    }
    p.flush().await;
    for a in acks {
        a.await.unwrap();
    }
}

fn tp(t: &str, p: i32) -> TopicPartition {
    (t.to_string(), p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_offsets_by_earliest_latest_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), BROKER);
    let admin = admin(&s);
    admin.create_topic("lo", 2, 1, &[]).await.unwrap();
    produce(&s.addr, "lo", 0, 20).await;
    produce(&s.addr, "lo", 1, 10).await;
    let parts = [tp("lo", 0), tp("lo", 1)];

    let latest = admin
        .list_offsets(&parts, OffsetSpec::Latest)
        .await
        .unwrap();
    assert_eq!(
        (latest[&parts[0]].offset, latest[&parts[1]].offset),
        (20, 10)
    );
    let earliest = admin
        .list_offsets(&parts, OffsetSpec::Earliest)
        .await
        .unwrap();
    assert_eq!(
        (earliest[&parts[0]].offset, earliest[&parts[1]].offset),
        (0, 0)
    );
    // The first record at or after the time, with its timestamp.
    let at = admin
        .list_offsets(&parts, OffsetSpec::Timestamp(TS0 + 4_500))
        .await
        .unwrap();
    assert_eq!(
        (at[&parts[0]].offset, at[&parts[0]].timestamp),
        (5, TS0 + 5_000)
    );
    assert_eq!(at[&parts[1]].offset, 5);
    // After the last record: no offset (-1).
    let after = admin
        .list_offsets(&parts[..1], OffsetSpec::Timestamp(TS0 + 60_000))
        .await
        .unwrap();
    assert_eq!(after[&parts[0]].offset, -1);
    // Records deleted below 8: the log start moves.
    assert_eq!(admin.delete_records("lo", 0, 8).await.unwrap(), 8);
    let earliest = admin
        .list_offsets(&parts[..1], OffsetSpec::Earliest)
        .await
        .unwrap();
    assert_eq!(earliest[&parts[0]].offset, 8);
    // A partition that does not exist.
    assert_eq!(
        code(admin.list_offsets(&[tp("lo", 9)], OffsetSpec::Latest).await),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_of_an_inactive_group_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), BROKER);
    let admin = admin(&s);
    admin.create_topic("ao", 2, 1, &[]).await.unwrap();
    admin.create_topic("ab", 1, 1, &[]).await.unwrap();

    // No such group, as Kafka describes it.
    assert_eq!(code(admin.describe_groups(&["nobody".into()]).await), 69);
    assert!(admin.list_group_offsets("nobody").await.unwrap().is_empty());

    // An admin commit (generation -1, no member) creates an offsets-only group.
    admin
        .alter_group_offsets(
            "ops",
            &[(tp("ao", 0), 7), (tp("ao", 1), 3), (tp("ab", 0), 0)],
        )
        .await
        .unwrap();
    let listed = admin.list_group_offsets("ops").await.unwrap();
    let got: Vec<(&str, i32, i64, &str)> = listed
        .iter()
        .map(|o| (o.topic.as_str(), o.partition, o.offset, o.metadata.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![("ab", 0, 0, ""), ("ao", 0, 7, ""), ("ao", 1, 3, "")]
    );
    admin
        .alter_group_offsets("ops", &[(tp("ao", 1), 5)])
        .await
        .unwrap();
    assert_eq!(admin.list_group_offsets("ops").await.unwrap()[2].offset, 5);

    let d = admin.describe_groups(&["ops".into()]).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (
            d[0].group_id.as_str(),
            d[0].state.as_str(),
            d[0].group_type.as_str()
        ),
        ("ops", "Empty", "classic")
    );
    assert!(d[0].members.is_empty());
    let listing = admin.list_groups().await.unwrap();
    let ops = listing
        .iter()
        .find(|g| g.group_id == "ops")
        .expect("listed");
    assert_eq!(ops.state, "Empty");

    // Offsets of one partition go; the rest stay.
    admin
        .delete_group_offsets("ops", &[tp("ao", 0)])
        .await
        .unwrap();
    let left: Vec<TopicPartition> = admin
        .list_group_offsets("ops")
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.topic, o.partition))
        .collect();
    assert_eq!(left, vec![tp("ab", 0), tp("ao", 1)]);
    assert_eq!(
        code(admin.delete_group_offsets("nobody", &[tp("ao", 0)]).await),
        69,
        "GROUP_ID_NOT_FOUND"
    );

    // Deleting takes the group and its offsets; then it is gone.
    admin.delete_groups(&["ops".into()]).await.unwrap();
    assert!(admin.list_group_offsets("ops").await.unwrap().is_empty());
    assert_eq!(code(admin.delete_groups(&["ops".into()]).await), 69);
    assert_eq!(code(admin.describe_groups(&["ops".into()]).await), 69);
    assert!(!admin
        .list_groups()
        .await
        .unwrap()
        .iter()
        .any(|g| g.group_id == "ops"));
    s.stop();
}

/// A subscribed consumer polling on its own task until told to stop, then closing (it
/// leaves the group).
struct Member {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Member {
    fn start(addr: &str, group: &str, protocol: &str, topic: &str) -> Member {
        let mut config = ConsumerConfig::default();
        for (k, v) in [
            ("bootstrap.servers", addr),
            ("group.id", group),
            ("group.protocol", protocol),
            ("client.id", "admin-test-member"),
            ("auto.offset.reset", "earliest"),
            ("heartbeat.interval.ms", "100"),
            ("fetch.max.wait.ms", "100"),
        ] {
            config.set(k, v).unwrap();
        }
        let mut c = Consumer::new(config);
        c.subscribe(&[topic]).unwrap();
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    r = c.poll() => { r.expect("poll"); }
                }
            }
            c.close().await.expect("close");
        });
        Member { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// Describes `group` until `done` holds (up to 30 s).
async fn describe_until(
    admin: &Admin,
    group: &str,
    what: &str,
    done: impl Fn(&GroupDescription) -> bool,
) -> GroupDescription {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut d) = admin.describe_groups(&[group.to_string()]).await {
            let g = d.pop().expect("one description");
            if done(&g) {
                return g;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_groups_are_described_and_protected() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), BROKER);
    let admin = admin(&s);
    admin.create_topic("live", 3, 1, &[]).await.unwrap();
    produce(&s.addr, "live", 0, 10).await;
    for (protocol, group) in [("classic", "live-classic"), ("consumer", "live-848")] {
        let member = Member::start(&s.addr, group, protocol, "live");
        let d = describe_until(&admin, group, "the member's assignment", |g| {
            g.state == "Stable" && g.members.len() == 1 && g.members[0].assignment.len() == 3
        })
        .await;
        let m = &d.members[0];
        assert_eq!(m.client_id, "admin-test-member", "{protocol}");
        assert!(!m.member_id.is_empty() && !m.host.is_empty(), "{m:?}");
        let mut assigned = m.assignment.clone();
        assigned.sort();
        assert_eq!(assigned, vec![tp("live", 0), tp("live", 1), tp("live", 2)]);
        assert_eq!(d.group_type, protocol);
        assert_eq!(d.protocol_type, "consumer");
        if protocol == "classic" {
            assert_eq!(d.assignor, "range");
        } else {
            assert!(!d.assignor.is_empty(), "the coordinator's assignor");
        }
        let listing = admin.list_groups().await.unwrap();
        let l = listing
            .iter()
            .find(|g| g.group_id == group)
            .expect("listed");
        assert_eq!(
            (l.state.as_str(), l.group_type.as_str()),
            ("Stable", protocol)
        );

        // An active group can be neither deleted nor given offsets by an admin.
        assert_eq!(
            code(admin.delete_groups(&[group.to_string()]).await),
            68,
            "NON_EMPTY_GROUP"
        );
        assert!(
            matches!(
                admin
                    .alter_group_offsets(group, &[(tp("live", 0), 0)])
                    .await,
                Err(ClientError::Kafka { .. })
            ),
            "{protocol}: an admin commit to an active group"
        );
        assert_eq!(
            code(admin.delete_group_offsets(group, &[tp("live", 0)]).await),
            86,
            "{protocol}: GROUP_SUBSCRIBED_TO_TOPIC"
        );

        // Once the member has left, the group is empty and can go.
        member.stop().await;
        let d = describe_until(&admin, group, "an empty group", |g| g.members.is_empty()).await;
        assert_eq!(d.state, "Empty");
        admin
            .alter_group_offsets(group, &[(tp("live", 0), 4)])
            .await
            .unwrap();
        admin.delete_groups(&[group.to_string()]).await.unwrap();
        assert_eq!(code(admin.describe_groups(&[group.to_string()]).await), 69);
    }
    s.stop();
}
