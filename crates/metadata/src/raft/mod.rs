//! The metadata quorum on openraft. The Raft log **is** the metadata log: each entry holds
//! the [`MetadataRecord`]s of one change, committed by a majority of the voters in
//! `controller.quorum.voters` and then applied, on every node, to the [`MetadataImage`].
//!
//! - [`log_store`]: the Raft log and the durable vote, on a `strom-storage` log.
//! - [`state_machine`]: the image the entries replay into, and its snapshots.
//! - [`rpc`]: the wire format of Raft and controller RPCs, and the TCP network.
//!
//! [`Quorum`] is the only type the rest of Strom uses: it keeps openraft's types inside
//! this module, so moving to another openraft version stays local. A single node is a
//! one-voter quorum on the same code path. Broker-only nodes are Raft learners: they
//! receive every committed entry but never vote (KRaft's observers).

// openraft's storage traits return its `StorageError` (over 200 bytes); our helpers that
// feed them return the same type rather than convert twice.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod rpc;
pub mod state_machine;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InstallSnapshotError, RaftError};
use openraft::network::RaftNetworkFactory;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, CommittedLeaderId, LogId, Membership, Raft, ServerState, SnapshotMeta};
use openraft::{SnapshotPolicy, StoredMembership};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::image::MetadataImage;
use crate::records::MetadataRecord;
use crate::MetadataError;
use log_store::LogStore;
use rpc::PeerContact;
use state_machine::StateMachine;

openraft::declare_raft_types!(
    /// Strom's openraft types: entries carry a [`Command`]; node ids are Kafka's `node.id`.
    pub TypeConfig:
        D = Command,
        R = (),
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The payload of one Raft entry: the records of one metadata change, applied together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The records, in order.
    pub records: Vec<MetadataRecord>,
}

/// How a node takes part in the quorum.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This node's `node.id`.
    pub node_id: i32,
    /// `controller.quorum.voters`: node id to the `host:port` of its Raft RPCs.
    pub voters: BTreeMap<i32, String>,
    /// Where the leader reaches this node when it is not a voter (an observer).
    pub own_addr: String,
    /// The metadata log's directory (`__cluster_metadata-0`).
    pub dir: PathBuf,
    /// `metadata.log.segment.bytes`.
    pub segment_bytes: u64,
    /// `metadata.log.max.record.bytes.between.snapshots`.
    pub snapshot_max_bytes: u64,
    /// `metadata.log.max.snapshot.interval.ms`.
    pub snapshot_interval_ms: u64,
    /// `controller.quorum.election.timeout.ms`: a follower that hears nothing from a leader
    /// for between this and twice this starts an election.
    pub election_timeout_ms: u64,
    /// The upper end of that range instead of twice the minimum (the simulation gives
    /// each node a fixed timeout of its own, drawn from its seed).
    pub election_timeout_max_ms: Option<u64>,
    /// Mutual TLS between voters, when the controller listener is SSL. Observers (broker-only
    /// nodes) are reached in plaintext on their inter-broker listener.
    pub tls: Option<QuorumTls>,
}

/// The TLS both ends of the quorum's connections to voters use: each side presents its
/// certificate and checks the other's against the truststore.
#[derive(Debug, Clone)]
pub struct QuorumTls {
    /// For connections this node opens to a voter.
    pub client: Arc<rustls::ClientConfig>,
    /// For the controller listener (it requires a client certificate).
    pub server: Arc<rustls::ServerConfig>,
}

impl QuorumConfig {
    /// Whether this node votes.
    pub fn is_voter(&self) -> bool {
        self.voters.contains_key(&self.node_id)
    }

    /// The TLS for a connection to `addr`: the quorum's when `addr` is a voter's.
    pub fn tls_for(&self, addr: &str) -> Option<Arc<rustls::ClientConfig>> {
        let tls = self.tls.as_ref()?;
        self.voters
            .values()
            .any(|v| v == addr)
            .then(|| tls.client.clone())
    }
}

/// Why the quorum did not take a write.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// This node is not the leader; `leader` is the one it knows of.
    #[error("this node is not the active controller (the leader is {leader:?})")]
    NotLeader {
        /// The leader's node id, if known.
        leader: Option<i32>,
    },
    /// openraft failed.
    #[error("the metadata quorum failed")]
    Raft(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The state DescribeQuorum reports, as the leader sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QuorumStatus {
    /// The leader, -1 when none is known.
    pub leader_id: i32,
    /// The leader's term (Kafka's leader epoch).
    pub leader_epoch: i32,
    /// The committed log end: entries below it are committed.
    pub high_watermark: i64,
    /// Every voter.
    pub voters: Vec<ReplicaStatus>,
    /// Every observer (broker-only nodes).
    pub observers: Vec<ReplicaStatus>,
}

/// One replica of the metadata log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// Node id.
    pub replica_id: i32,
    /// The end of its log as the leader knows it (-1: unknown).
    pub log_end_offset: i64,
    /// When it last answered the leader, in ms since the epoch (-1: never).
    pub last_fetch_timestamp: i64,
    /// When it was last known to have every committed entry (-1: never).
    pub last_caught_up_timestamp: i64,
}

/// One node's part in the metadata quorum.
pub struct Quorum {
    raft: Raft<TypeConfig>,
    log: LogStore,
    sm: StateMachine,
    config: QuorumConfig,
    contact: Arc<PeerContact>,
    tasks: parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quorum")
            .field("node_id", &self.config.node_id)
            .finish()
    }
}

fn raft_error(e: impl std::error::Error + Send + Sync + 'static) -> QuorumError {
    QuorumError::Raft(Box::new(e))
}

fn nodes(voters: &BTreeMap<i32, String>) -> BTreeMap<u64, BasicNode> {
    voters
        .iter()
        .map(|(id, addr)| (*id as u64, BasicNode::new(addr)))
        .collect()
}

impl Quorum {
    /// Opens the metadata log in `config.dir` over the TCP network and joins the quorum.
    pub async fn start(config: QuorumConfig) -> Result<Arc<Quorum>, MetadataError> {
        let contact = Arc::new(PeerContact::default());
        let network = rpc::TcpNetwork::new(contact.clone(), config.clone());
        Self::start_with(config, network, contact).await
    }

    /// [`Quorum::start`] over any network (the simulation's, in tests).
    pub async fn start_with<N: RaftNetworkFactory<TypeConfig>>(
        config: QuorumConfig,
        network: N,
        contact: Arc<PeerContact>,
    ) -> Result<Arc<Quorum>, MetadataError> {
        let log = LogStore::open(&config.dir, config.segment_bytes)?;
        let sm = StateMachine::open(&config.dir, config.snapshot_max_bytes)?;
        migrate_legacy(&config, &log, &sm)?;
        let fresh = log.is_fresh() && !sm.has_snapshot();
        let (election_min, election_max) = election_window(&config);
        let raft_config = openraft::Config {
            cluster_name: "strom-metadata".into(),
            election_timeout_min: election_min,
            election_timeout_max: election_max,
            heartbeat_interval: (config.election_timeout_ms / 20)
                .max(10)
                .min(election_min - 1),
            install_snapshot_timeout: 10_000,
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: 0,
            ..Default::default()
        }
        .validate()
        .map_err(|e| MetadataError::Quorum(raft_error(e)))?;
        let raft = Raft::new(
            config.node_id as u64,
            Arc::new(raft_config),
            network,
            log.clone(),
            sm.clone(),
        )
        .await
        .map_err(|e| MetadataError::Quorum(raft_error(e)))?;
        if fresh && config.is_voter() {
            // Every voter proposes the same initial membership; all but the first are told
            // the log is not empty any more, which is fine.
            if let Err(e) = raft.initialize(nodes(&config.voters)).await {
                tracing::debug!(error = %e, "quorum already initialized");
            }
        }
        let quorum = Arc::new(Quorum {
            raft,
            log,
            sm,
            config,
            contact,
            tasks: parking_lot::Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(snapshot_loop(Arc::downgrade(&quorum)));
        quorum.tasks.lock().push(task);
        Ok(quorum)
    }

    /// This node's config.
    pub fn config(&self) -> &QuorumConfig {
        &self.config
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.sm.image()
    }

    /// Every newly applied image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.sm.subscribe()
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<i32> {
        self.raft
            .metrics()
            .borrow()
            .current_leader
            .map(|l| l as i32)
    }

    /// The Raft term this node is in.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// Resolves when the leader or this node's role may have changed.
    pub async fn leader_changed(&self) {
        let mut metrics = self.raft.metrics();
        let before = {
            let m = metrics.borrow_and_update();
            (m.current_leader, m.state, m.current_term)
        };
        while metrics.changed().await.is_ok() {
            let m = metrics.borrow();
            if (m.current_leader, m.state, m.current_term) != before {
                return;
            }
        }
    }

    /// The Raft address of `node`: its voter address, else the one the membership holds.
    pub fn address_of(&self, node: i32) -> Option<String> {
        if let Some(a) = self.config.voters.get(&node) {
            return Some(a.clone());
        }
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .get_node(&(node as u64))
            .map(|n| n.addr.clone())
    }

    /// Appends `records` as one entry and waits until it is committed and applied here;
    /// returns its log index. Only the leader takes writes.
    pub async fn write(&self, records: Vec<MetadataRecord>) -> Result<i64, QuorumError> {
        match self.raft.client_write(Command { records }).await {
            Ok(r) => Ok(r.log_id.index as i64),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(QuorumError::NotLeader {
                    leader: f.leader_id.map(|l| l as i32),
                })
            }
            Err(e) => Err(raft_error(e)),
        }
    }

    /// Waits until this node, as leader, has applied everything committed before now: the
    /// image it then holds is the latest (a read barrier for the controller).
    pub async fn linearize(&self) -> Result<(), QuorumError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(QuorumError::NotLeader {
                    leader: f.leader_id.map(|l| l as i32),
                })
            }
            // A leader that cannot reach a majority: no one can commit now, so the caller
            // retries until its deadline, as it does while there is no leader.
            Err(RaftError::APIError(openraft::error::CheckIsLeaderError::QuorumNotEnough(_))) => {
                Err(QuorumError::NotLeader { leader: None })
            }
            Err(e) => Err(raft_error(e)),
        }
    }

    /// Waits until the local image has applied `offset`, or `timeout` passes; returns the
    /// image either way.
    pub async fn wait_for_offset(&self, offset: i64, timeout: Duration) -> Arc<MetadataImage> {
        let mut rx = self.subscribe();
        let wait = rx.wait_for(|image| image.offset >= offset);
        let _ = tokio::time::timeout(timeout, wait).await;
        self.image()
    }

    /// Makes `node` an observer (a learner) at `addr`, unless it is already a member.
    pub async fn add_observer(&self, node: i32, addr: &str) -> Result<(), QuorumError> {
        let known = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            m.membership_config
                .membership()
                .get_node(&(node as u64))
                .is_some_and(|n| n.addr == addr)
        };
        if known || self.config.voters.contains_key(&node) {
            return Ok(());
        }
        match self
            .raft
            .add_learner(node as u64, BasicNode::new(addr), false)
            .await
        {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(QuorumError::NotLeader {
                    leader: f.leader_id.map(|l| l as i32),
                })
            }
            Err(e) => Err(raft_error(e)),
        }
    }

    /// Whether `node` is a configured voter (Raft RPCs from anyone else are refused).
    pub fn is_configured_voter(&self, node: u64) -> bool {
        i32::try_from(node).is_ok_and(|n| self.config.voters.contains_key(&n))
    }

    /// Handles a Vote from a peer; `None` when the sender is not a voter.
    pub async fn vote(
        &self,
        rpc: VoteRequest<u64>,
    ) -> Option<Result<VoteResponse<u64>, RaftError<u64>>> {
        let from = rpc.vote.leader_id.voted_for().unwrap_or(u64::MAX);
        if !self.is_configured_voter(from) {
            tracing::warn!(
                from,
                "refused a Raft vote request from a node that is not a voter"
            );
            return None;
        }
        Some(self.raft.vote(rpc).await)
    }

    /// Handles an AppendEntries from a leader; `None` when the sender is not a voter.
    pub async fn append_entries(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> Option<Result<AppendEntriesResponse<u64>, RaftError<u64>>> {
        let from = rpc.vote.leader_id.voted_for().unwrap_or(u64::MAX);
        if !self.is_configured_voter(from) {
            tracing::warn!(from, "refused Raft entries from a node that is not a voter");
            return None;
        }
        Some(self.raft.append_entries(rpc).await)
    }

    /// Handles a snapshot chunk from a leader; `None` when the sender is not a voter.
    pub async fn install_snapshot(
        &self,
        rpc: InstallSnapshotRequest<TypeConfig>,
    ) -> Option<Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>> {
        let from = rpc.vote.leader_id.voted_for().unwrap_or(u64::MAX);
        if !self.is_configured_voter(from) {
            tracing::warn!(
                from,
                "refused a Raft snapshot from a node that is not a voter"
            );
            return None;
        }
        Some(self.raft.install_snapshot(rpc).await)
    }

    /// The quorum as this node sees it (complete on the leader).
    pub fn status(&self) -> QuorumStatus {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let me = self.config.node_id as u64;
        let now = strom_storage::now_ms();
        let last_applied = m.last_applied.map_or(-1, |l| l.index as i64);
        let replication = m.replication.clone().unwrap_or_default();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let replica = |id: u64| {
            if id == me {
                let end = m.last_log_index.map_or(0, |i| i as i64 + 1);
                return ReplicaStatus {
                    replica_id: id as i32,
                    log_end_offset: end,
                    last_fetch_timestamp: now,
                    last_caught_up_timestamp: now,
                };
            }
            let matched = replication.get(&id).copied().flatten();
            let end = matched.map_or(-1, |l| l.index as i64 + 1);
            let last = self.contact.last(id).unwrap_or(-1);
            ReplicaStatus {
                replica_id: id as i32,
                log_end_offset: end,
                last_fetch_timestamp: last,
                last_caught_up_timestamp: if end > last_applied { last } else { -1 },
            }
        };
        QuorumStatus {
            leader_id: m.current_leader.map_or(-1, |l| l as i32),
            leader_epoch: m.current_term.min(i32::MAX as u64) as i32,
            high_watermark: last_applied + 1,
            voters: voters.iter().map(|id| replica(*id)).collect(),
            observers: membership.learner_ids().map(replica).collect(),
        }
    }

    /// Bytes in the metadata log's segments and how many segments there are.
    pub fn log_size(&self) -> (u64, usize) {
        (self.log.size(), self.log.segment_count())
    }

    /// The current snapshot's size in bytes.
    pub fn snapshot_size(&self) -> Option<usize> {
        self.sm.snapshot_size()
    }

    /// Takes a snapshot now and waits for it (tests, tools).
    pub async fn snapshot_now(&self) -> Result<(), QuorumError> {
        self.raft.trigger().snapshot().await.map_err(raft_error)?;
        let applied = self.raft.metrics().borrow().last_applied;
        let mut metrics = self.raft.metrics();
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            metrics.wait_for(|m| m.snapshot >= applied),
        )
        .await;
        Ok(())
    }

    /// Stops Raft and closes the log.
    pub async fn shutdown(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "stopping the metadata quorum");
        }
        self.log.close();
    }
}

/// The range this node draws its election timeout from, so that it stands for election
/// between `controller.quorum.election.timeout.ms` (t) and 2t after it last heard the
/// leader, as Kafka's followers do.
///
/// openraft waits longer than the drawn timeout: a follower that knew a committed leader
/// first waits out that leader's lease, which it sets to the window's upper end. So the
/// window lies in [t/2, t), and the wait is its end plus the draw.
///
/// openraft draws once, at start, and checks on a tick: voters started together whose
/// timeouts fall on the same tick would split the vote round after round (seen: 14
/// elections, 23 s, after a kill). So each voter gets its own slice by its rank among the
/// voters, the slices half a slice apart; the waits then differ by more than a slice, which
/// is several ticks (the heartbeat is t/20, the tick 1.5 heartbeats). The simulation sets
/// the range itself.
fn election_window(config: &QuorumConfig) -> (u64, u64) {
    let t = config.election_timeout_ms.max(20);
    if let Some(max) = config.election_timeout_max_ms.filter(|m| *m > t) {
        return (t, max);
    }
    let base = t / 2;
    let voters = config.voters.len().max(1) as u64;
    let rank = config
        .voters
        .keys()
        .position(|id| *id == config.node_id)
        .unwrap_or(0) as u64;
    let slice = base / voters;
    let min = base + rank * slice;
    (min, min + (slice / 2).max(1))
}

/// Triggers a snapshot once `metadata.log.max.record.bytes.between.snapshots` of records
/// were applied since the last, or `metadata.log.max.snapshot.interval.ms` passed with any.
async fn snapshot_loop(quorum: std::sync::Weak<Quorum>) {
    loop {
        let Some((sm, interval)) = quorum
            .upgrade()
            .map(|q| (q.sm.clone(), q.config.snapshot_interval_ms.max(1)))
        else {
            return;
        };
        let _ = tokio::time::timeout(Duration::from_millis(interval), sm.snapshot_due()).await;
        let Some(q) = quorum.upgrade() else { return };
        if q.sm.bytes_since_snapshot() > 0 {
            if let Err(e) = q.raft.trigger().snapshot().await {
                tracing::warn!(error = %e, "could not trigger a metadata snapshot");
            }
        }
    }
}

/// A metadata log written before the quorum existed (a one-voter log of plain records in
/// `__cluster_metadata-0`, with no `quorum-state`) becomes the quorum's first snapshot, so
/// the node starts with its topics intact. Only a node that is the sole voter may do so; any
/// other is refused with what to do.
fn migrate_legacy(
    config: &QuorumConfig,
    log: &LogStore,
    sm: &StateMachine,
) -> Result<(), MetadataError> {
    let has_state = config.dir.join(log_store::QUORUM_STATE).exists();
    if has_state {
        return Ok(());
    }
    let seed_id = LogId::new(CommittedLeaderId::new(0, config.node_id as u64), 0);
    if sm.has_snapshot() {
        // A migration stopped after the snapshot was written: finish it.
        return log
            .seed_purged(seed_id)
            .map_err(|e| MetadataError::Quorum(raft_error(e)));
    }
    if log.is_fresh() {
        return Ok(());
    }
    let only_me = config.voters.len() == 1 && config.is_voter();
    if !only_me {
        return Err(MetadataError::Legacy {
            dir: config.dir.clone(),
        });
    }
    let mut image = crate::log::read_legacy(log)?;
    image.offset = 0;
    tracing::warn!(
        dir = %config.dir.display(),
        topics = image.topics.len(),
        "moving a single-node metadata log under the Raft quorum: its image becomes the first snapshot"
    );
    let membership = Membership::new(
        vec![config.voters.keys().map(|id| *id as u64).collect()],
        nodes(&config.voters),
    );
    let meta = SnapshotMeta {
        last_log_id: Some(seed_id),
        last_membership: StoredMembership::new(Some(seed_id), membership),
        snapshot_id: "pre-raft".into(),
    };
    sm.seed(meta, image)
        .map_err(|e| MetadataError::Quorum(raft_error(e)))?;
    log.seed_purged(seed_id)
        .map_err(|e| MetadataError::Quorum(raft_error(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_stand_for_election_between_t_and_2t_several_ticks_apart() {
        let voters: BTreeMap<i32, String> = (1..=3).map(|i| (i, String::new())).collect();
        let config = |node_id| QuorumConfig {
            node_id,
            voters: voters.clone(),
            own_addr: String::new(),
            dir: PathBuf::new(),
            segment_bytes: 1 << 20,
            snapshot_max_bytes: 1 << 20,
            snapshot_interval_ms: 1000,
            election_timeout_ms: 1000,
            election_timeout_max_ms: None,
            tls: None,
        };
        // What openraft waits: the lease (the window's end) plus the draw.
        let waits: Vec<_> = (1..=3)
            .map(|id| {
                let (min, max) = election_window(&config(id));
                (max + min, max + max)
            })
            .collect();
        let tick = (1000 / 20) * 3 / 2;
        for pair in waits.windows(2) {
            let ((_, end), (start, _)) = (pair[0], pair[1]);
            assert!(start >= end + 2 * tick, "{waits:?}");
        }
        assert!(waits[0].0 >= 1000 && waits[2].1 <= 2000, "{waits:?}");
    }
}
