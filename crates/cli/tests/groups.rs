//! The native client's consumer groups against the real broker: the classic protocol with
//! eager (range) and cooperative (cooperative-sticky) rebalancing, KIP-848, pattern
//! subscriptions, and commits (sync, async, automatic, before revocation).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Server;
use parking_lot::Mutex;
use strom_client::{
    Admin, Consumer, ConsumerConfig, ConsumerRecord, Producer, ProducerConfig, ProducerRecord,
    RebalanceListener, TopicPartition,
};
use tokio::sync::{mpsc, oneshot};

const BROKER: &[&str] = &[
    "group.initial.rebalance.delay.ms=0",
    "group.consumer.heartbeat.interval.ms=200",
];

fn consumer(addr: &str, group: &str, extra: &[(&str, &str)]) -> Consumer {
    let mut c = ConsumerConfig::default();
    for (k, v) in [
        ("bootstrap.servers", addr),
        ("group.id", group),
        ("auto.offset.reset", "earliest"),
        ("heartbeat.interval.ms", "100"),
        ("session.timeout.ms", "6000"),
        ("max.poll.interval.ms", "10000"),
        ("fetch.max.wait.ms", "100"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    {
        c.set(k, v).unwrap();
    }
    Consumer::new(c)
}

async fn produce(addr: &str, topic: &str, from: usize, n: usize) {
    let mut config = ProducerConfig::default();
    config.set("bootstrap.servers", addr).unwrap();
    let p = Producer::new(config);
    let mut acks = Vec::new();
    for i in from..from + n {
        let record = ProducerRecord {
            topic: topic.into(),
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            ..Default::default()
        };
        acks.push(p.send(record).await.unwrap());
    }
    p.flush().await;
    for a in acks {
        a.await.unwrap();
    }
}

enum Msg {
    Records(Vec<ConsumerRecord>),
    Assignment(Vec<TopicPartition>),
}

/// A consumer polling on its own task, reporting records and assignment changes.
struct Member {
    rx: mpsc::UnboundedReceiver<Msg>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    assignment: Vec<TopicPartition>,
    values: Vec<String>,
}

impl Member {
    fn spawn(mut c: Consumer) -> Member {
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut last = None;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    r = c.poll() => {
                        let records = r.expect("poll");
                        if !records.is_empty() {
                            let _ = tx.send(Msg::Records(records));
                        }
                    }
                }
                let a = c.assignment();
                if last.as_ref() != Some(&a) {
                    last = Some(a.clone());
                    let _ = tx.send(Msg::Assignment(a));
                }
            }
            c.close().await.expect("close");
        });
        Member {
            rx,
            stop: Some(stop),
            task,
            assignment: Vec::new(),
            values: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Ok(m) = self.rx.try_recv() {
            match m {
                Msg::Records(r) => self.values.extend(r.iter().map(|r| {
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
                })),
                Msg::Assignment(a) => self.assignment = a,
            }
        }
    }

    async fn stop(mut self) -> Vec<String> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.unwrap();
        self.drain();
        self.values
    }
}

/// Waits (up to 30 s) until `done` holds over the members, draining their messages.
async fn until(members: &mut [&mut Member], what: &str, done: impl Fn(&[&mut Member]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for m in members.iter_mut() {
            m.drain();
        }
        if done(members) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn all_partitions(topic: &str, n: i32) -> BTreeSet<TopicPartition> {
    (0..n).map(|p| (topic.to_string(), p)).collect()
}

fn split_evenly(a: &Member, b: &Member, topic: &str, n: i32) -> bool {
    let (x, y): (BTreeSet<_>, BTreeSet<_>) = (
        a.assignment.iter().cloned().collect(),
        b.assignment.iter().cloned().collect(),
    );
    x.len() == y.len() && x.is_disjoint(&y) && &x | &y == all_partitions(topic, n)
}

fn values(from: usize, n: usize) -> Vec<String> {
    let mut v: Vec<String> = (from..from + n).map(|i| format!("v{i}")).collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A listener's calls in order: ("assigned" | "revoked" | "lost", partitions).
type Events = Vec<(&'static str, Vec<TopicPartition>)>;

#[derive(Default)]
struct Recorder(Arc<Mutex<Events>>);

impl RebalanceListener for Recorder {
    fn on_partitions_assigned(&mut self, p: &[TopicPartition]) {
        self.0.lock().push(("assigned", p.to_vec()));
    }
    fn on_partitions_revoked(&mut self, p: &[TopicPartition]) {
        self.0.lock().push(("revoked", p.to_vec()));
    }
    fn on_partitions_lost(&mut self, p: &[TopicPartition]) {
        self.0.lock().push(("lost", p.to_vec()));
    }
}

/// Two members share the partitions; records produced after the rebalance are read once,
/// by one of them, from where the group committed; a leaving member's partitions go back.
async fn share_and_hand_back(strategy: &[(&str, &str)], group: &str) -> Events {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), BROKER);
    let admin = Admin::new(vec![s.addr.clone()], "t", Duration::from_secs(10));
    admin.create_topic("orders", 4, 1, &[]).await.unwrap();
    produce(&s.addr, "orders", 0, 400).await;

    let events = Arc::new(Mutex::new(Vec::new()));
    let mut c = consumer(
        &s.addr,
        group,
        &[strategy, &[("enable.auto.commit", "false")]].concat(),
    );
    c.subscribe(&["orders"]).unwrap();
    c.set_rebalance_listener(Box::new(Recorder(events.clone())));
    // Alone, it gets every partition and reads every record once; then commits.
    let mut got = Vec::new();
    while got.len() < 400 {
        got.extend(c.poll().await.unwrap());
    }
    assert_eq!(
        c.assignment().into_iter().collect::<BTreeSet<_>>(),
        all_partitions("orders", 4)
    );
    assert_eq!(
        sorted(
            got.iter()
                .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap()).into_owned())
                .collect()
        ),
        values(0, 400)
    );
    c.commit_async().unwrap().await.unwrap().unwrap();
    let committed = c.committed(&c.assignment()).await.unwrap();
    for tp in c.assignment() {
        assert_eq!(
            committed.get(&tp).copied(),
            c.position(&tp.0, tp.1),
            "{tp:?}"
        );
    }

    let mut a = Member::spawn(c);
    let mut d = consumer(
        &s.addr,
        group,
        &[strategy, &[("enable.auto.commit", "false")]].concat(),
    );
    d.subscribe(&["orders"]).unwrap();
    let mut b = Member::spawn(d);
    until(&mut [&mut a, &mut b], "an even split", |m| {
        split_evenly(m[0], m[1], "orders", 4)
    })
    .await;
    produce(&s.addr, "orders", 400, 200).await;
    until(&mut [&mut a, &mut b], "the new records", |m| {
        m[0].values.len() + m[1].values.len() >= 200
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.drain();
    b.drain();
    assert_eq!(
        sorted([a.values.clone(), b.values.clone()].concat()),
        values(400, 200),
        "each new record read once"
    );

    // b leaves: a gets everything back at once (LeaveGroup, not a session timeout).
    b.stop().await;
    until(&mut [&mut a], "the hand-back", |m| {
        m[0].assignment.len() == 4
    })
    .await;
    a.stop().await;
    s.stop();
    let mut e = events.lock().clone();
    // Closing gives everything up: drop that last event, checked here.
    assert_eq!(
        e.pop(),
        Some(("revoked", all_partitions("orders", 4).into_iter().collect()))
    );
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_eager_range_group() {
    let events = share_and_hand_back(&[("partition.assignment.strategy", "range")], "eager").await;
    // Eager: the first member gave up all four partitions when the second joined.
    assert!(
        events.iter().any(|(k, p)| *k == "revoked" && p.len() == 4),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_cooperative_sticky_group() {
    let events = share_and_hand_back(
        &[("partition.assignment.strategy", "cooperative-sticky")],
        "coop",
    )
    .await;
    // Cooperative: only the two partitions that moved were revoked, never all four, and
    // nothing was lost.
    let revoked: Vec<&Vec<TopicPartition>> = events
        .iter()
        .filter(|(k, _)| *k == "revoked")
        .map(|(_, p)| p)
        .collect();
    assert!(!revoked.is_empty(), "{events:?}");
    assert!(revoked.iter().all(|p| p.len() == 2), "{events:?}");
    assert!(!events.iter().any(|(k, _)| *k == "lost"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_group() {
    let events = share_and_hand_back(&[("group.protocol", "consumer")], "modern").await;
    let revoked: Vec<&Vec<TopicPartition>> = events
        .iter()
        .filter(|(k, _)| *k == "revoked")
        .map(|(_, p)| p)
        .collect();
    assert!(revoked.iter().all(|p| p.len() == 2), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_subscriptions_follow_new_topics_and_auto_commit() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), BROKER);
    let admin = Admin::new(vec![s.addr.clone()], "t", Duration::from_secs(10));
    admin.create_topic("pat-a", 2, 1, &[]).await.unwrap();
    admin.create_topic("other", 1, 1, &[]).await.unwrap();
    produce(&s.addr, "pat-a", 0, 50).await;
    produce(&s.addr, "other", 1000, 10).await;
    for (group, protocol) in [("pc", "classic"), ("pm", "consumer")] {
        let mut c = consumer(
            &s.addr,
            group,
            &[
                ("group.protocol", protocol),
                ("metadata.max.age.ms", "300"),
                ("auto.commit.interval.ms", "100"),
            ],
        );
        c.subscribe_pattern("pat-.*").unwrap();
        let mut got: Vec<String> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() < 50 {
            assert!(Instant::now() < deadline, "{protocol}: pat-a");
            got.extend(c.poll().await.unwrap().iter().map(|r| r.topic.clone()));
        }
        if protocol == "classic" {
            admin.create_topic("pat-b", 1, 1, &[]).await.unwrap();
            produce(&s.addr, "pat-b", 50, 20).await;
        }
        while got.len() < 70 {
            assert!(Instant::now() < deadline, "{protocol}: pat-b");
            got.extend(c.poll().await.unwrap().iter().map(|r| r.topic.clone()));
        }
        let counts: HashMap<String, usize> = got.iter().fold(HashMap::new(), |mut m, t| {
            *m.entry(t.clone()).or_default() += 1;
            m
        });
        assert_eq!(counts.get("pat-a"), Some(&50), "{protocol}: {counts:?}");
        assert_eq!(counts.get("pat-b"), Some(&20), "{protocol}: {counts:?}");
        assert_eq!(counts.get("other"), None, "{protocol}");
        // Auto commit catches up with the positions while polling.
        let mine = c.assignment();
        loop {
            assert!(Instant::now() < deadline, "{protocol}: auto commit");
            c.poll().await.unwrap();
            let committed = c.committed(&mine).await.unwrap();
            if mine
                .iter()
                .all(|tp| committed.get(tp).copied() == c.position(&tp.0, tp.1))
            {
                break;
            }
        }
        c.close().await.unwrap();
    }
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_needs_a_group_id() {
    let mut c = Consumer::new(ConsumerConfig::default());
    let e = c.subscribe(&["t"]).unwrap_err();
    assert!(e.to_string().contains("INVALID_GROUP_ID"), "{e}");
    let mut config = ConsumerConfig::default();
    assert!(config
        .set("partition.assignment.strategy", "fancy")
        .is_err());
    assert!(config.set("group.protocol", "consumer").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_polling_leaves_and_comes_back() {
    use std::sync::atomic::{AtomicBool, Ordering};
    for protocol in ["classic", "consumer"] {
        let dir = tempfile::tempdir().unwrap();
        let s = Server::start(dir.path(), BROKER);
        let admin = Admin::new(vec![s.addr.clone()], "t", Duration::from_secs(10));
        admin.create_topic("slow", 2, 1, &[]).await.unwrap();
        let group = format!("slow-{protocol}");
        // A session long enough that only leaving can hand a's partitions over in time.
        let conf = [
            ("group.protocol", protocol),
            ("max.poll.interval.ms", "1500"),
            ("session.timeout.ms", "60000"),
        ];
        let events = Arc::new(Mutex::new(Vec::new()));
        let assigned = Arc::new(Mutex::new(0usize));
        let paused = Arc::new(AtomicBool::new(false));
        let mut a = consumer(&s.addr, &group, &conf);
        a.subscribe(&["slow"]).unwrap();
        a.set_rebalance_listener(Box::new(Recorder(events.clone())));
        let task = {
            let (assigned, paused) = (assigned.clone(), paused.clone());
            tokio::spawn(async move {
                loop {
                    if paused.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    a.poll().await.unwrap();
                    *assigned.lock() = a.assignment().len();
                    if *assigned.lock() == 1 && events.lock().iter().any(|(k, _)| *k == "lost") {
                        return a;
                    }
                }
            })
        };
        let mut b_consumer = consumer(&s.addr, &group, &[("group.protocol", protocol)]);
        b_consumer.subscribe(&["slow"]).unwrap();
        let mut b = Member::spawn(b_consumer);
        until(&mut [&mut b], "an even split", |m| {
            m[0].assignment.len() == 1 && *assigned.lock() == 1
        })
        .await;
        // a stops polling: it keeps no session alive by heartbeats alone past
        // max.poll.interval.ms, it leaves, and b gets everything.
        paused.store(true, Ordering::Relaxed);
        until(&mut [&mut b], "b takes over", |m| {
            m[0].assignment.len() == 2
        })
        .await;
        // a polls again: its partition was lost; it joins again and gets its share.
        paused.store(false, Ordering::Relaxed);
        let a = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("a comes back")
            .unwrap();
        until(&mut [&mut b], "b's half", |m| m[0].assignment.len() == 1).await;
        b.stop().await;
        a.close().await.unwrap();
        s.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manually_assigned_consumer_commits_for_its_group_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), BROKER);
    let admin = Admin::new(vec![s.addr.clone()], "t", Duration::from_secs(10));
    admin.create_topic("man", 1, 1, &[]).await.unwrap();
    produce(&s.addr, "man", 0, 20).await;
    let mut c = consumer(&s.addr, "manual", &[("auto.commit.interval.ms", "100")]);
    c.assign(&[("man".into(), 0, strom_client::StartAt::Offset(5))])
        .await
        .unwrap();
    let mut got = 0;
    while got < 15 {
        got += c.poll().await.unwrap().len();
    }
    c.commit_sync().await.unwrap();
    let tp = ("man".to_string(), 0);
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp],
        20
    );
    // Auto commit covers manual assignment too: each poll sends the positions once
    // auto.commit.interval.ms has passed.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        c.seek("man", 0, strom_client::StartAt::Offset(12))
            .await
            .unwrap();
        c.poll().await.unwrap();
        if c.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp] == 12 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "auto commit of a manual assignment"
        );
    }
    c.seek("man", 0, strom_client::StartAt::Offset(20))
        .await
        .unwrap();
    c.commit_sync().await.unwrap();
    let listed = admin.list_group_offsets("manual").await.unwrap();
    assert_eq!(
        listed.iter().map(|o| o.offset).collect::<Vec<_>>(),
        vec![20]
    );
    // Without a group.id there is nowhere to commit.
    let mut anonymous = Consumer::new(ConsumerConfig {
        bootstrap_servers: vec![s.addr.clone()],
        ..Default::default()
    });
    let e = anonymous.commit_sync().await.unwrap_err();
    assert!(e.to_string().contains("INVALID_GROUP_ID"), "{e}");
}
