//! A seeded simulation of the metadata quorum: three voters on our log store and state
//! machine, joined by an in-memory network that delays, drops and duplicates messages and
//! cuts links, while nodes crash and restart. Time is tokio's paused clock, so simulated
//! seconds pass in milliseconds.
//!
//! Checked for every seed: at most one leader per term; every write the quorum
//! acknowledged is in every node's image at the end; writes are applied in the order they
//! were acknowledged (a counter config never goes back); all images converge.
//!
//! A seed fixes every fault, delay and node's election timeout. Tokio's choice among tasks
//! woken at the same instant is not seeded, so a failing seed reproduces its fault
//! schedule, though not always the exact interleaving. Run one seed:
//! `STROM_SIM_SEED=42 cargo test -p strom-metadata --test simulation`; more seeds:
//! `STROM_SIM_SEEDS=1000`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strom_metadata::raft::rpc::PeerContact;
use strom_metadata::raft::TypeConfig;
use strom_metadata::{MetadataRecord, Quorum, QuorumConfig};

const NODES: u64 = 3;

/// The network and the nodes on it.
struct World {
    rng: Mutex<StdRng>,
    nodes: Mutex<BTreeMap<u64, Arc<Quorum>>>,
    /// Links cut, as (from, to).
    cut: Mutex<BTreeSet<(u64, u64)>>,
    drop_rate: f64,
    duplicate_rate: f64,
}

impl World {
    fn chance(&self, p: f64) -> bool {
        self.rng.lock().gen_bool(p)
    }

    fn delay(&self) -> Duration {
        Duration::from_millis(self.rng.lock().gen_range(0..25))
    }

    fn reachable(&self, from: u64, to: u64) -> Option<Arc<Quorum>> {
        if self.cut.lock().contains(&(from, to)) {
            return None;
        }
        self.nodes.lock().get(&to).cloned()
    }
}

#[derive(Clone)]
struct SimNetwork {
    me: u64,
    world: Arc<World>,
}

struct SimPeer {
    from: u64,
    to: u64,
    world: Arc<World>,
}

impl RaftNetworkFactory<TypeConfig> for SimNetwork {
    type Network = SimPeer;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> SimPeer {
        SimPeer {
            from: self.me,
            to: target,
            world: self.world.clone(),
        }
    }
}

fn unreachable<E: std::error::Error>() -> RPCError<u64, BasicNode, RaftError<u64, E>> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other("simulated loss")))
}

impl SimPeer {
    /// Delivers one message: delayed, maybe lost on the way there or back, maybe
    /// delivered twice.
    async fn deliver<T, E, F, Fut>(
        &self,
        call: F,
    ) -> Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        E: std::error::Error,
        F: Fn(Arc<Quorum>) -> Fut,
        Fut: std::future::Future<Output = Option<Result<T, RaftError<u64, E>>>>,
    {
        tokio::time::sleep(self.world.delay()).await;
        if self.world.chance(self.world.drop_rate) {
            return Err(unreachable());
        }
        let Some(target) = self.world.reachable(self.from, self.to) else {
            return Err(unreachable());
        };
        if self.world.chance(self.world.duplicate_rate) {
            let _ = call(target.clone()).await;
        }
        let answer = call(target).await.ok_or_else(unreachable)?;
        tokio::time::sleep(self.world.delay()).await;
        if self.world.chance(self.world.drop_rate)
            || self.world.reachable(self.to, self.from).is_none()
        {
            return Err(unreachable());
        }
        answer.map_err(|e| RPCError::RemoteError(openraft::error::RemoteError::new(self.to, e)))
    }
}

impl RaftNetwork<TypeConfig> for SimPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.deliver(|q| {
            let rpc = rpc.clone();
            async move { q.append_entries(rpc).await }
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.deliver(|q| {
            let rpc = rpc.clone();
            async move { q.install_snapshot(rpc).await }
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.deliver(|q| {
            let rpc = rpc.clone();
            async move { q.vote(rpc).await }
        })
        .await
    }
}

struct Sim {
    world: Arc<World>,
    dirs: BTreeMap<u64, PathBuf>,
    timeouts: BTreeMap<u64, u64>,
    voters: BTreeMap<i32, String>,
    /// Leader seen per term.
    leaders: BTreeMap<u64, u64>,
}

impl Sim {
    async fn start_node(&self, id: u64) {
        let config = QuorumConfig {
            node_id: id as i32,
            voters: self.voters.clone(),
            own_addr: String::new(),
            dir: self.dirs[&id].clone(),
            segment_bytes: 2048,
            snapshot_max_bytes: 1500,
            snapshot_interval_ms: 3_600_000,
            election_timeout_ms: self.timeouts[&id],
            election_timeout_max_ms: Some(self.timeouts[&id] + 1),
            tls: None,
        };
        let network = SimNetwork {
            me: id,
            world: self.world.clone(),
        };
        let q = Quorum::start_with(config, network, Arc::new(PeerContact::default()))
            .await
            .expect("node starts");
        self.world.nodes.lock().insert(id, q);
    }

    async fn crash(&self, id: u64) {
        let q = self.world.nodes.lock().remove(&id);
        if let Some(q) = q {
            q.shutdown().await;
        }
    }

    fn live(&self) -> Vec<(u64, Arc<Quorum>)> {
        self.world
            .nodes
            .lock()
            .iter()
            .map(|(id, q)| (*id, q.clone()))
            .collect()
    }

    /// Notes who leads in which term; two leaders in one term fail the seed.
    fn check_leaders(&mut self, seed: u64) {
        for (id, q) in self.live() {
            if q.is_leader() {
                let term = q.term();
                let first = *self.leaders.entry(term).or_insert(id);
                assert_eq!(
                    first, id,
                    "seed {seed}: nodes {first} and {id} both lead term {term}"
                );
            }
        }
    }
}

fn seq_value(image: &strom_metadata::MetadataImage) -> i64 {
    image
        .topics
        .get("seq")
        .and_then(|t| t.configs.get("counter"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

async fn run_seed(seed: u64) {
    // The nodes' disks: tmpfs when there is one, as fsync there costs nothing.
    let shm = std::path::Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let world = Arc::new(World {
        rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x5eed)),
        nodes: Mutex::new(BTreeMap::new()),
        cut: Mutex::new(BTreeSet::new()),
        drop_rate: rng.gen_range(0.0..0.1),
        duplicate_rate: rng.gen_range(0.0..0.1),
    });
    let ids: Vec<u64> = (1..=NODES).collect();
    let mut sim = Sim {
        world: world.clone(),
        dirs: ids
            .iter()
            .map(|id| (*id, tmp.path().join(format!("node{id}"))))
            .collect(),
        timeouts: ids
            .iter()
            .map(|id| (*id, rng.gen_range(150..400)))
            .collect(),
        voters: ids.iter().map(|id| (*id as i32, String::new())).collect(),
        leaders: BTreeMap::new(),
    };
    for id in &ids {
        sim.start_node(*id).await;
    }
    let seq_id = uuid::Uuid::from_u128(seed as u128);
    let mut acked: Vec<i64> = Vec::new();
    let mut created_seq = false;
    let mut down: BTreeSet<u64> = BTreeSet::new();
    for step in 0..120i64 {
        sim.check_leaders(seed);
        let roll = rng.gen_range(0..100);
        match roll {
            0..=69 => {
                let leader = sim.live().into_iter().find(|(_, q)| q.is_leader());
                if let Some((_, q)) = leader {
                    let mut records = Vec::new();
                    if !created_seq {
                        records.push(MetadataRecord::Topic {
                            name: "seq".into(),
                            topic_id: seq_id,
                        });
                    }
                    records.push(MetadataRecord::Topic {
                        name: format!("t{step}"),
                        topic_id: uuid::Uuid::from_u128(((seed as u128) << 64) | step as u128),
                    });
                    records.push(MetadataRecord::TopicConfig {
                        topic: "seq".into(),
                        name: "counter".into(),
                        value: Some(step.to_string()),
                    });
                    if let Ok(Ok(_)) =
                        tokio::time::timeout(Duration::from_secs(2), q.write(records)).await
                    {
                        created_seq = true;
                        acked.push(step);
                    }
                }
            }
            70..=79 if down.is_empty() => {
                let id = ids[rng.gen_range(0..ids.len())];
                sim.crash(id).await;
                down.insert(id);
            }
            80..=89 => {
                if let Some(&id) = down.iter().next() {
                    sim.start_node(id).await;
                    down.remove(&id);
                }
            }
            90..=94 => {
                let a = ids[rng.gen_range(0..ids.len())];
                let mut cut = world.cut.lock();
                for b in &ids {
                    if *b != a {
                        cut.insert((a, *b));
                        cut.insert((*b, a));
                    }
                }
            }
            _ => world.cut.lock().clear(),
        }
        let pause = rng.gen_range(0..150);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    // Heal, bring everyone back, and let the quorum settle.
    world.cut.lock().clear();
    for id in std::mem::take(&mut down) {
        sim.start_node(id).await;
    }
    let mut barrier_written = false;
    let converged = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            sim.check_leaders(seed);
            let live = sim.live();
            if !barrier_written {
                if let Some((_, leader)) = live.iter().find(|(_, q)| q.is_leader()) {
                    // One write in the last term commits everything before it everywhere.
                    barrier_written = matches!(
                        tokio::time::timeout(Duration::from_secs(2), leader.write(Vec::new()))
                            .await,
                        Ok(Ok(_))
                    );
                }
            }
            let images: Vec<_> = live.iter().map(|(_, q)| q.image()).collect();
            if images.len() == NODES as usize
                && images.windows(2).all(|w| w[0] == w[1])
                && images[0].offset > 0
            {
                return images[0].clone();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        let state: Vec<_> = sim
            .live()
            .iter()
            .map(|(id, q)| {
                (
                    *id,
                    q.term(),
                    q.is_leader(),
                    q.image().offset,
                    q.image().topics.len(),
                )
            })
            .collect();
        panic!(
            "seed {seed}: images did not converge: (node, term, leader, offset, topics) {state:?}"
        )
    });
    for step in &acked {
        assert!(
            converged.topics.contains_key(&format!("t{step}")),
            "seed {seed}: acknowledged write {step} was lost"
        );
    }
    if let Some(last) = acked.last() {
        assert!(
            seq_value(&converged) >= *last,
            "seed {seed}: the counter went back from {last} to {}",
            seq_value(&converged)
        );
    }
    for (_, q) in sim.live() {
        q.shutdown().await;
    }
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("STROM_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let count = std::env::var("STROM_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    (0..count).collect()
}

#[test]
fn the_quorum_keeps_every_acknowledged_write_through_faults() {
    for seed in seeds() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(run_seed(seed));
    }
}
