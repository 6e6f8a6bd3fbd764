//! The native client's transactions against the real broker: a transactional producer
//! commits and aborts across partitions, read back by the native read_committed and
//! read_uncommitted consumers; offsets committed in a transaction take effect only with it;
//! a second producer with the same transactional.id fences the first (a fatal error).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::Server;
use strom_client::{
    Admin, ClientError, Consumer, ConsumerConfig, GroupMetadata, Producer, ProducerConfig,
    ProducerRecord, StartAt,
};

fn producer(addr: &str, id: &str) -> Producer {
    let mut config = ProducerConfig::default();
    config.set("bootstrap.servers", addr).unwrap();
    config.set("transactional.id", id).unwrap();
    config.set("linger.ms", "1").unwrap();
    Producer::new(config)
}

async fn send(p: &Producer, topic: &str, partition: i32, value: &str) {
    let ack = p
        .send(ProducerRecord {
            topic: topic.into(),
            partition: Some(partition),
            value: Some(Bytes::from(value.to_string())),
            ..Default::default()
        })
        .await
        .unwrap();
    drop(ack);
}

/// Every value of `topic`'s `partitions` up to their end, as a consumer with the given
/// isolation sees it.
async fn read(addr: &str, topic: &str, partitions: i32, read_committed: bool) -> Vec<String> {
    let mut c = Consumer::new(ConsumerConfig {
        bootstrap_servers: vec![addr.to_string()],
        read_committed,
        ..Default::default()
    });
    c.assign(
        &(0..partitions)
            .map(|p| (topic.to_string(), p, StartAt::Earliest))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let mut quiet = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while quiet < 5 && std::time::Instant::now() < deadline {
        let got = c.poll().await.unwrap();
        if got.is_empty() {
            quiet += 1;
        } else {
            quiet = 0;
        }
        out.extend(
            got.into_iter()
                .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into()),
        );
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_abort_commit_and_offsets_in_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let admin = Admin::new(vec![s.addr.clone()], "t", Duration::from_secs(10));
    admin.create_topic("ntx", 2, 1, &[]).await.unwrap();
    let p = producer(&s.addr, "native-1");
    // Sending before init_transactions / outside a transaction is refused.
    assert!(matches!(
        p.begin_transaction(),
        Err(ClientError::TxnState(_))
    ));
    p.init_transactions().await.unwrap();
    assert!(p
        .send(ProducerRecord {
            topic: "ntx".into(),
            value: Some(Bytes::from_static(b"outside")),
            ..Default::default()
        })
        .await
        .is_err());
    let group = GroupMetadata {
        group_id: "ntx-group".into(),
        generation: -1,
        member_id: String::new(),
        instance_id: None,
    };
    for (i, commit) in [true, false, true].into_iter().enumerate() {
        p.begin_transaction().unwrap();
        for k in 0..4 {
            send(&p, "ntx", k % 2, &format!("t{i}-{k}")).await;
        }
        p.send_offsets_to_transaction(&[(("in".to_string(), 0), 10 * (i as i64 + 1))], &group)
            .await
            .unwrap();
        if commit {
            p.commit_transaction().await.unwrap();
        } else {
            p.abort_transaction().await.unwrap();
        }
    }
    let mut expected: Vec<String> = [0, 2]
        .iter()
        .flat_map(|i| (0..4).map(move |k| format!("t{i}-{k}")))
        .collect();
    expected.sort();
    assert_eq!(read(&s.addr, "ntx", 2, true).await, expected);
    assert_eq!(read(&s.addr, "ntx", 2, false).await.len(), 12);
    // The third transaction's offset is the committed one; the aborted second's never was.
    let committed = admin
        .list_group_offsets("ntx-group")
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.topic == "in" && o.partition == 0)
        .map(|o| o.offset);
    assert_eq!(committed, Some(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_producer_fences_the_older_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let admin = Admin::new(vec![s.addr.clone()], "t", Duration::from_secs(10));
    admin.create_topic("nz", 1, 1, &[]).await.unwrap();
    let old = producer(&s.addr, "native-z");
    old.init_transactions().await.unwrap();
    old.begin_transaction().unwrap();
    send(&old, "nz", 0, "zombie").await;
    old.flush().await;
    let new = producer(&s.addr, "native-z");
    new.init_transactions().await.unwrap();
    new.begin_transaction().unwrap();
    send(&new, "nz", 0, "successor").await;
    new.commit_transaction().await.unwrap();
    let err = old.commit_transaction().await.unwrap_err();
    assert!(matches!(err, ClientError::Fatal(_)), "{err}");
    assert!(matches!(
        old.begin_transaction(),
        Err(ClientError::Fatal(_))
    ));
    assert_eq!(read(&s.addr, "nz", 1, true).await, vec!["successor"]);
}
