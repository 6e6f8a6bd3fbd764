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
    }
}

/// A node serving its voter address; shutting it down also closes the listener.
struct Node {
    node: Arc<MetadataNode>,
    listener: tokio::task::JoinHandle<()>,
}

impl std::ops::Deref for Node {
    type Target = MetadataNode;
    fn deref(&self) -> &MetadataNode {
        &self.node
    }
}

impl Node {
    async fn stop(&self) {
        self.listener.abort();
        self.node.shutdown().await;
    }
}

async fn start(cfg: QuorumConfig) -> Node {
    let addr = cfg.voters[&cfg.node_id].clone();
    let node = MetadataNode::start(cfg, ControllerConfig::default())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    let listener = tokio::spawn(node.clone().serve(listener));
    Node { node, listener }
}

fn create(name: &str) -> ControllerRequest {
    ControllerRequest::CreateTopic {
        name: name.into(),
        partitions: 1,
        replication_factor: 1,
        configs: BTreeMap::new(),
        assignment: Some(vec![vec![1]]),
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
