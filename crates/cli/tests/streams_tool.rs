//! `strom streams reset|describe` (Kafka's kafka-streams-application-reset.sh and
//! kafka-streams-groups.sh --describe), run as the real `strom` binary against a real
//! broker: offsets set with the native client are rewound, internal topics deleted and
//! others kept, --dry-run changes nothing, a running application is refused, and describe
//! shows the lag.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Server;
use strom_client::{
    Admin, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use tokio::sync::oneshot;

const BROKER: &[&str] = &[
    "group.initial.rebalance.delay.ms=0",
    "group.consumer.heartbeat.interval.ms=200",
];

fn admin(s: &Server) -> Admin {
    Admin::new(
        vec![s.addr.clone()],
        "streams-tool-test",
        Duration::from_secs(10),
    )
}

fn tp(t: &str, p: i32) -> TopicPartition {
    (t.to_string(), p)
}

/// What a run of `strom` did.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `strom <args> --bootstrap-server <addr>` off the async workers.
async fn strom(addr: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strom"));
    cmd.args(args).arg("--bootstrap-server").arg(addr);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run strom"))
        .await
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `n` records on `partition`.
async fn produce(addr: &str, topic: &str, partition: i32, n: usize) {
    let mut config = ProducerConfig::default();
    config.set("bootstrap.servers", addr).unwrap();
    let p = Producer::new(config);
    let mut acks = Vec::new();
    for i in 0..n {
        let record = ProducerRecord {
            topic: topic.into(),
            partition: Some(partition),
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

/// The group's committed offsets.
async fn committed(admin: &Admin, group: &str) -> BTreeMap<TopicPartition, i64> {
    admin
        .list_group_offsets(group)
        .await
        .unwrap()
        .into_iter()
        .map(|o| ((o.topic, o.partition), o.offset))
        .collect()
}

async fn topics(admin: &Admin) -> Vec<String> {
    admin
        .describe_topics(&[])
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect()
}

/// The topics once `gone` are no longer listed (up to 30 s).
async fn topics_without(admin: &Admin, gone: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let names = topics(admin).await;
        if !names.iter().any(|n| gone.contains(&n.as_str())) {
            return names;
        }
        assert!(
            Instant::now() < deadline,
            "{gone:?} still listed: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The cells of the line of a table whose first cells are `first`.
fn row<'a>(text: &'a str, first: &[&str]) -> Option<Vec<&'a str>> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.starts_with(first))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_rewinds_inputs_skips_intermediates_and_deletes_internal_topics() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), BROKER);
    let admin = admin(&s);
    for (t, n) in [
        ("in", 2),
        ("in2", 1),
        ("mid", 1),
        ("app-store-changelog", 1),
        ("app-KSTREAM-x-repartition", 2),
        ("app-other", 1),
    ] {
        admin.create_topic(t, n, 1, &[]).await.unwrap();
    }
    produce(&s.addr, "in", 0, 10).await;
    produce(&s.addr, "in", 1, 5).await;
    produce(&s.addr, "in2", 0, 3).await;
    produce(&s.addr, "mid", 0, 7).await;
    let before = [
        (tp("in", 0), 10),
        (tp("in", 1), 5),
        (tp("in2", 0), 3),
        (tp("mid", 0), 2),
    ];
    admin.alter_group_offsets("app", &before).await.unwrap();
    let before: BTreeMap<TopicPartition, i64> = before.into_iter().collect();

    let reset = [
        "streams",
        "reset",
        "app",
        "--input-topics",
        "in,in2",
        "--intermediate-topics",
        "mid",
    ];
    // A dry run says what it would do and changes nothing.
    let dry = strom(&s.addr, &[&reset[..], &["--dry-run"]].concat()).await;
    assert!(dry.ok, "{}", dry.stderr);
    assert!(dry.stdout.contains("app-store-changelog"), "{}", dry.stdout);
    assert!(dry.stdout.contains("app-KSTREAM-x-repartition"));
    assert!(!dry.stdout.contains("app-other"), "{}", dry.stdout);
    assert_eq!(
        row(&dry.stdout, &["in", "0"]).unwrap(),
        ["in", "0", "10", "0"]
    );
    assert_eq!(
        row(&dry.stdout, &["mid", "0"]).unwrap(),
        ["mid", "0", "2", "7"]
    );
    assert_eq!(committed(&admin, "app").await, before);
    let all = topics(&admin).await;
    for t in [
        "app-store-changelog",
        "app-KSTREAM-x-repartition",
        "app-other",
    ] {
        assert!(all.iter().any(|n| n == t), "{t} kept by the dry run");
    }

    // The reset: inputs back to the beginning, intermediates at the end, internal topics
    // gone, the rest kept, and the hint about local state.
    let run = strom(&s.addr, &reset).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("state.dir"), "{}", run.stdout);
    let after = committed(&admin, "app").await;
    assert_eq!(
        after,
        [
            (tp("in", 0), 0),
            (tp("in", 1), 0),
            (tp("in2", 0), 0),
            (tp("mid", 0), 7)
        ]
        .into_iter()
        .collect()
    );
    let left = topics_without(
        &admin,
        &["app-store-changelog", "app-KSTREAM-x-repartition"],
    )
    .await;
    for t in ["in", "in2", "mid", "app-other"] {
        assert!(left.iter().any(|n| n == t), "{t} kept: {left:?}");
    }

    // --to-offset, clamped to each log's end; --to-latest.
    let run = strom(
        &s.addr,
        &[
            "streams",
            "reset",
            "app",
            "--input-topics",
            "in",
            "--to-offset",
            "8",
        ],
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
    let after = committed(&admin, "app").await;
    assert_eq!((after[&tp("in", 0)], after[&tp("in", 1)]), (8, 5));
    let run = strom(
        &s.addr,
        &[
            "streams",
            "reset",
            "app",
            "--input-topics",
            "in2",
            "--to-latest",
        ],
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(committed(&admin, "app").await[&tp("in2", 0)], 3);

    // A missing input topic fails the run, naming it; the topics given still reset.
    let run = strom(
        &s.addr,
        &["streams", "reset", "app", "--input-topics", "nope,in"],
    )
    .await;
    assert!(!run.ok);
    assert!(run.stderr.contains("nope"), "{}", run.stderr);
    assert_eq!(committed(&admin, "app").await[&tp("in", 0)], 0);
    s.stop();
}

/// A consumer of group `group` polling on its own task (without committing) until told to
/// stop, then leaving the group.
struct Member {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Member {
    fn start(addr: &str, group: &str, topic: &str) -> Member {
        let mut config = ConsumerConfig::default();
        for (k, v) in [
            ("bootstrap.servers", addr),
            ("group.id", group),
            ("client.id", "app-StreamThread-1-consumer"),
            ("enable.auto.commit", "false"),
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

/// Waits (up to 30 s) until the group has `members` members, each with an assignment.
async fn members_until(admin: &Admin, group: &str, members: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(d) = admin.describe_groups(&[group.to_string()]).await {
            if d.first().is_some_and(|g| {
                g.members.len() == members && g.members.iter().all(|m| !m.assignment.is_empty())
            }) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {members} members"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_refuses_while_the_application_runs() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), BROKER);
    let admin = admin(&s);
    admin.create_topic("in", 1, 1, &[]).await.unwrap();
    admin
        .create_topic("app-store-changelog", 1, 1, &[])
        .await
        .unwrap();
    produce(&s.addr, "in", 0, 10).await;
    admin
        .alter_group_offsets("app", &[(tp("in", 0), 4)])
        .await
        .unwrap();

    let member = Member::start(&s.addr, "app", "in");
    members_until(&admin, "app", 1).await;
    // describe shows the running instance and what it reads.
    let d = strom(&s.addr, &["streams", "describe", "app"]).await;
    assert!(d.ok, "{}", d.stderr);
    assert!(
        d.stdout.contains("app-StreamThread-1-consumer"),
        "{}",
        d.stdout
    );
    assert!(d.stdout.contains("in-0"), "{}", d.stdout);

    let run = strom(
        &s.addr,
        &["streams", "reset", "app", "--input-topics", "in"],
    )
    .await;
    assert!(!run.ok, "refused: {}", run.stdout);
    assert!(
        run.stderr.contains("Consumer group 'app' is still active"),
        "{}",
        run.stderr
    );
    assert_eq!(committed(&admin, "app").await[&tp("in", 0)], 4);
    assert!(topics(&admin)
        .await
        .iter()
        .any(|t| t == "app-store-changelog"));

    // Once the instance is stopped, the reset goes ahead.
    member.stop().await;
    members_until(&admin, "app", 0).await;
    let run = strom(
        &s.addr,
        &["streams", "reset", "app", "--input-topics", "in"],
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(committed(&admin, "app").await[&tp("in", 0)], 0);
    topics_without(&admin, &["app-store-changelog"]).await;
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_offsets_lag_and_internal_topics() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), BROKER);
    let admin = admin(&s);
    admin.create_topic("in", 2, 1, &[]).await.unwrap();
    admin
        .create_topic(
            "app-store-changelog",
            3,
            1,
            &[("cleanup.policy".into(), "compact".into())],
        )
        .await
        .unwrap();
    admin
        .create_topic("app-KSTREAM-x-repartition", 2, 1, &[])
        .await
        .unwrap();
    admin.create_topic("app-other", 1, 1, &[]).await.unwrap();
    produce(&s.addr, "in", 0, 10).await;
    produce(&s.addr, "in", 1, 3).await;
    admin
        .alter_group_offsets("app", &[(tp("in", 0), 4), (tp("in", 1), 3)])
        .await
        .unwrap();

    let d = strom(&s.addr, &["streams", "describe", "app"]).await;
    assert!(d.ok, "{}", d.stderr);
    assert!(d.stdout.contains("STATE Empty"), "{}", d.stdout);
    // TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG MEMBER-ID
    assert_eq!(
        row(&d.stdout, &["in", "0"]).unwrap(),
        ["in", "0", "4", "10", "6", "-"]
    );
    assert_eq!(
        row(&d.stdout, &["in", "1"]).unwrap(),
        ["in", "1", "3", "3", "0", "-"]
    );
    assert_eq!(
        row(&d.stdout, &["app-store-changelog"]).unwrap(),
        ["app-store-changelog", "3", "compact"]
    );
    assert_eq!(
        row(&d.stdout, &["app-KSTREAM-x-repartition"]).unwrap(),
        ["app-KSTREAM-x-repartition", "2", "delete"]
    );
    assert!(!d.stdout.contains("app-other"), "{}", d.stdout);

    // The same as JSON.
    let j = strom(&s.addr, &["streams", "describe", "app", "--output", "json"]).await;
    assert!(j.ok, "{}", j.stderr);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["offsets"][0]["lag"], 6);
    assert_eq!(v["internal_topics"].as_array().unwrap().len(), 2);

    // An application with neither a group nor internal topics is an error.
    let none = strom(&s.addr, &["streams", "describe", "ghost"]).await;
    assert!(!none.ok);
    assert!(none.stderr.contains("ghost"), "{}", none.stderr);
    s.stop();
}
