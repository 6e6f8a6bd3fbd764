//! The quorum over real TCP on loopback, nodes in one process: election, commits through
//! any node, restart, snapshots and the migration of a pre-quorum log.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strom_metadata::controller::ControllerConfig;
use strom_metadata::{ControllerReply, ControllerRequest, MetadataNode, QuorumConfig};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &std::path::Path, id: i32, voters: &BTreeMap<i32, String>) -> QuorumConfig {
    QuorumConfig {
        node_id: id,
        voters: voters.clone(),
        own_addr: voters.get(&id).cloned().unwrap_or_default(),
        dir: dir
            .join(format!("node{id}"))
            .join(strom_metadata::METADATA_DIR),
        segment_bytes: 4096,
        snapshot_max_bytes: 1 << 30,
        snapshot_interval_ms: 3_600_000,
        election_timeout_ms: 300,
        election_timeout_max_ms: None,
        tls: None,
    }
}

/// A node serving its voter address; shutting it down also closes the listener.
struct Node {
    node: Arc<MetadataNode>,
    listener: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::ops::Deref for Node {
    type Target = MetadataNode;
    fn deref(&self) -> &MetadataNode {
        &self.node
    }
}

impl Node {
    async fn stop(&self) {
        let listener = self.listener.lock().unwrap().take();
        if let Some(listener) = listener {
            listener.abort();
            // The listener closes only when the aborted task has been dropped; a node
            // restarted on the same address must not race it.
            let _ = listener.await;
        }
        self.node.shutdown().await;
    }
}

async fn start(cfg: QuorumConfig) -> Node {
    let addr = cfg.voters[&cfg.node_id].clone();
    let node = MetadataNode::start(cfg, ControllerConfig::default())
        .await
        .unwrap();
    // The address came from `free_port`, so another test's outgoing connection can hold
    // it for a moment as its local port: retry briefly rather than fail on that.
    let mut tries = 0;
    let listener = loop {
        match tokio::net::TcpListener::bind(&addr).await {
            Ok(l) => break l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    };
    let listener = tokio::spawn(node.clone().serve(listener));
    Node {
        node,
        listener: std::sync::Mutex::new(Some(listener)),
    }
}

fn create(name: &str) -> ControllerRequest {
    ControllerRequest::CreateTopics {
        topics: vec![strom_metadata::controller::NewTopic {
            name: name.into(),
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
            assignment: Some(vec![vec![1]]),
        }],
        validate_only: false,
    }
}

async fn register(node: &MetadataNode, id: i32) {
    let reply = node
        .submit(
            ControllerRequest::RegisterBroker {
                broker_id: id,
                incarnation_id: uuid::Uuid::new_v4(),
                listeners: Vec::new(),
                rack: None,
                raft_addr: String::new(),
            },
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert!(matches!(reply, ControllerReply::Registered { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_one_leader_and_commit_through_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let voters: BTreeMap<i32, String> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start(config(dir.path(), id, &voters)).await);
    }
    register(&nodes[1], 1).await;
    for (i, node) in nodes.iter().enumerate() {
        node.submit(create(&format!("t{i}")), Duration::from_secs(20))
            .await
            .unwrap();
    }
    // Every node's image converges on the same topics and cluster id.
    for node in &nodes {
        let mut rx = node.subscribe();
        tokio::time::timeout(
            Duration::from_secs(10),
            rx.wait_for(|i| i.topics.len() == 3),
        )
        .await
        .unwrap()
        .unwrap();
    }
    let ids: Vec<_> = nodes.iter().map(|n| n.image().cluster_id.clone()).collect();
    assert_eq!(ids[0].len(), 22);
    assert!(ids.iter().all(|i| *i == ids[0]));
    let leaders: Vec<_> = nodes.iter().map(|n| n.controller_id()).collect();
    assert!(leaders[0].is_some() && leaders.iter().all(|l| *l == leaders[0]));
    // The leader's status lists three voters that have everything.
    let status = nodes[0].quorum_status().await;
    assert_eq!(status.voters.len(), 3);
    assert!(status
        .voters
        .iter()
        .all(|v| v.log_end_offset >= status.high_watermark - 1));

    // Kill the leader: a new one is elected and takes writes.
    let old = leaders[0].unwrap();
    nodes[(old - 1) as usize].stop().await;
    let survivor = nodes
        .iter()
        .enumerate()
        .find(|(i, _)| *i as i32 + 1 != old)
        .unwrap()
        .1;
    survivor
        .submit(create("after-failover"), Duration::from_secs(20))
        .await
        .unwrap();
    assert_ne!(survivor.controller_id(), Some(old));
    for n in &nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_voter_keeps_its_metadata_across_restarts_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let voters: BTreeMap<i32, String> = [(1, format!("127.0.0.1:{}", free_port()))].into();
    let cfg = config(dir.path(), 1, &voters);
    let before = {
        let node = start(cfg.clone()).await;
        register(&node, 1).await;
        for i in 0..50 {
            node.submit(create(&format!("topic-{i}")), Duration::from_secs(10))
                .await
                .unwrap();
        }
        let (_, segments_before) = node.quorum().log_size();
        assert!(segments_before > 1, "small segments roll");
        node.quorum().snapshot_now().await.unwrap();
        let (_, segments_after) = node.quorum().log_size();
        assert!(
            segments_after < segments_before,
            "the snapshot lets old segments go"
        );
        node.submit(create("after-snapshot"), Duration::from_secs(10))
            .await
            .unwrap();
        let image = node.image();
        node.stop().await;
        image
    };
    let node = start(cfg).await;
    let mut rx = node.subscribe();
    let after = tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|i| i.offset >= before.offset),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    assert_eq!(after.topics, before.topics);
    assert_eq!(after.cluster_id, before.cluster_id);
    assert_eq!(after.topics.len(), 51);
    node.stop().await;
}

/// Writes a metadata log as the single-node broker did before the quorum: batches of
/// JSON records in `__cluster_metadata-0`.
fn write_legacy_log(dir: &std::path::Path, records: &[strom_metadata::MetadataRecord]) {
    use strom_storage::{AppendOrigin, Log, LogConfig, OpenOptions};
    use strom_types::compression::Compression;
    use strom_types::record::BatchBuilder;
    let (log, _) = Log::open(
        dir,
        strom_types::TopicPartition::new("__cluster_metadata", 0),
        LogConfig::default(),
        OpenOptions::standalone(),
    )
    .unwrap();
    for chunk in records.chunks(2) {
        let mut builder = BatchBuilder::new(Compression::None);
        for r in chunk {
            builder.append(0, None, Some(&r.to_bytes()), &[]);
        }
        let mut bytes = builder.build(0).unwrap();
        log.append_as_leader(&mut bytes, 0, AppendOrigin::Coordinator, 0)
            .unwrap();
    }
    log.flush().unwrap();
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_metadata_log_from_before_the_quorum_keeps_its_topics() {
    use strom_metadata::MetadataRecord;
    let dir = tempfile::tempdir().unwrap();
    let voters: BTreeMap<i32, String> = [(1, format!("127.0.0.1:{}", free_port()))].into();
    let cfg = config(dir.path(), 1, &voters);
    let id = uuid::Uuid::new_v4();
    write_legacy_log(
        &cfg.dir,
        &[
            MetadataRecord::Cluster {
                cluster_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            },
            MetadataRecord::Topic {
                name: "orders".into(),
                topic_id: id,
            },
            MetadataRecord::Partition {
                topic_id: id,
                partition: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
                adding_replicas: vec![],
                removing_replicas: vec![],
            },
            MetadataRecord::TopicConfig {
                topic: "orders".into(),
                name: "retention.ms".into(),
                value: Some("1000".into()),
            },
        ],
    );
    // Another voter set is refused, with what to do, and the log is left as it was.
    let three: BTreeMap<i32, String> = (1..=3)
        .map(|i| (i, format!("127.0.0.1:{}", free_port())))
        .collect();
    let mut refused = cfg.clone();
    refused.voters = three;
    let err = MetadataNode::start(refused, ControllerConfig::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("start this node once alone"),
        "{err}"
    );
    for round in 0..2 {
        let node = start(cfg.clone()).await;
        let image = node.image();
        assert_eq!(image.cluster_id, "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(image.topics["orders"].topic_id, id);
        assert_eq!(image.topics["orders"].configs["retention.ms"], "1000");
        assert_eq!(image.topics["orders"].partitions[&0].leader, 1);
        // And the quorum takes new changes on top.
        register(&node, 1).await;
        let name = format!("after-migration-{round}");
        node.submit(create(&name), Duration::from_secs(10))
            .await
            .unwrap();
        // Round 1 also finds round 0's topic: the migrated log restarts like any other.
        assert_eq!(node.image().topics.len(), 2 + round);
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_or_foreign_raft_rpcs_are_refused_and_the_quorum_keeps_working() {
    use std::io::{Read, Write};
    use strom_metadata::raft::rpc;
    let dir = tempfile::tempdir().unwrap();
    let voters: BTreeMap<i32, String> = [(1, format!("127.0.0.1:{}", free_port()))].into();
    let node = start(config(dir.path(), 1, &voters)).await;
    register(&node, 1).await;
    node.submit(create("before"), Duration::from_secs(10))
        .await
        .unwrap();
    let before = node.image();
    let addr = voters[&1].clone();
    let refused = |frame: Vec<u8>| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&frame).unwrap();
        let mut buf = [0u8; 16];
        // Closed without an answer.
        matches!(s.read(&mut buf), Ok(0) | Err(_))
    };
    // Not JSON.
    assert!(refused(rpc::encode_request(
        rpc::API_RAFT_APPEND,
        1,
        b"\x00garbage"
    )));
    // Well formed, from node 9, which is not a voter.
    let vote = serde_json::json!({
        "vote": {"leader_id": {"term": 99, "voted_for": 9}, "committed": false},
        "last_log_id": null
    });
    assert!(refused(rpc::encode_request(
        rpc::API_RAFT_VOTE,
        2,
        &serde_json::to_vec(&vote).unwrap()
    )));
    // An unknown key in the quorum's range, and a truncated header.
    assert!(refused(rpc::encode_request(
        rpc::API_QUORUM_STATUS + 1,
        3,
        b"{}"
    )));
    assert!(refused(vec![0, 0, 0, 3, 3, 0xe8, 0]));
    // Nothing changed: same term, same image, and writes still commit.
    assert_eq!(node.quorum().term(), 1);
    assert_eq!(node.image(), before);
    node.submit(create("after"), Duration::from_secs(10))
        .await
        .unwrap();
    node.stop().await;
}

/// openraft's own conformance suite for log stores and state machines, run on ours.
#[test]
fn the_log_store_and_state_machine_pass_openraft_s_storage_suite() {
    use strom_metadata::raft::log_store::LogStore;
    use strom_metadata::raft::state_machine::StateMachine;
    use strom_metadata::raft::TypeConfig;

    struct Builder;

    impl openraft::testing::StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir>
        for Builder
    {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachine), openraft::StorageError<u64>>
        {
            let dir = tempfile::tempdir().unwrap();
            let log = LogStore::open(dir.path(), 4096).unwrap();
            let sm = StateMachine::open(dir.path(), 1 << 20).unwrap();
            Ok((dir, log, sm))
        }
    }

    openraft::testing::Suite::test_all(Builder).unwrap();
}
