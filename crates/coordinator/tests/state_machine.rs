//! The classic group state machine, driven directly with a clock: join and sync phases,
//! KIP-394 member ids, generations, session and rebalance timeouts, static membership,
//! commit validation; and the coordinator's replay of `__consumer_offsets` from a real log.

use std::sync::Mutex;

use bytes::Bytes;
use strom_coordinator::codes;
use strom_coordinator::group::{
    Group, GroupLimits, GroupState, JoinRequest, Record, RecordSink, Reply,
};
use strom_coordinator::records::{GroupValue, RecordKey};
use strom_coordinator::{CommitEntry, CoordinatorConfig, GroupCoordinator};

#[derive(Default)]
struct Memory(Mutex<Vec<Record>>);

impl RecordSink for Memory {
    fn append(&self, records: &[Record]) -> Result<(), String> {
        self.0.lock().unwrap().extend_from_slice(records);
        Ok(())
    }
}

fn join_req(member: &str, instance: Option<&str>) -> JoinRequest {
    JoinRequest {
        member_id: member.into(),
        group_instance_id: instance.map(String::from),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        require_known_member_id: true,
    }
}

fn now_value<T: std::fmt::Debug>(r: Reply<T>) -> T {
    match r {
        Reply::Now(v) => v,
        Reply::Later(_) => panic!("expected an answer now"),
    }
}

fn later<T>(r: Reply<T>) -> tokio::sync::oneshot::Receiver<T> {
    match r {
        Reply::Later(rx) => rx,
        Reply::Now(_) => panic!("expected to wait"),
    }
}

const T0: i64 = 1_000_000;

/// Partition 0 of `__consumer_offsets`, in `dir`.
fn offsets_log(dir: &std::path::Path) -> std::sync::Arc<strom_storage::Log> {
    let tp = strom_types::TopicPartition::new("__consumer_offsets", 0);
    strom_storage::Log::open(
        dir,
        tp,
        strom_storage::LogConfig::default(),
        strom_storage::OpenOptions::standalone(),
    )
    .unwrap()
    .0
}

/// A member id through KIP-394's round trip, then its join (which waits).
fn join_new(
    g: &mut Group,
    sink: &Memory,
    now: i64,
) -> (
    String,
    tokio::sync::oneshot::Receiver<strom_coordinator::JoinResponse>,
) {
    let limits = GroupLimits::default();
    let first = now_value(g.join(join_req("", None), &limits, sink, now));
    assert_eq!(first.error, codes::MEMBER_ID_REQUIRED);
    assert!(first.member_id.starts_with("client-"));
    let rx = later(g.join(join_req(&first.member_id, None), &limits, sink, now));
    (first.member_id, rx)
}

#[test]
fn join_sync_heartbeat_and_a_second_member() {
    let sink = Memory::default();
    let limits = GroupLimits::default();
    let mut g = Group::new("g", 0, T0);
    let (a, mut rx_a) = join_new(&mut g, &sink, T0);
    let ja = rx_a
        .try_recv()
        .expect("a single member completes the join at once");
    assert_eq!(
        (ja.error, ja.generation, ja.leader.as_str()),
        (0, 1, a.as_str())
    );
    assert_eq!(ja.members.len(), 1);
    assert_eq!(g.state, GroupState::CompletingRebalance);
    // The leader's SyncGroup stores the assignment, then answers.
    let mut rx = later(g.sync(
        &a,
        None,
        1,
        Some("consumer"),
        Some("range"),
        vec![(a.clone(), Bytes::from_static(b"all"))],
        &sink,
        T0,
    ));
    assert_eq!(
        rx.try_recv().unwrap().assignment,
        Bytes::from_static(b"all")
    );
    assert_eq!(g.state, GroupState::Stable);
    let stored = sink.0.lock().unwrap().clone();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        RecordKey::decode(&stored[0].0).unwrap(),
        Some(RecordKey::Group { group: "g".into() })
    );
    let value = GroupValue::decode(stored[0].1.as_deref().unwrap()).unwrap();
    assert_eq!((value.generation, value.members.len()), (1, 1));
    assert_eq!(value.members[0].assignment, Bytes::from_static(b"all"));

    assert_eq!(g.heartbeat(&a, None, 1, T0 + 100), codes::NONE);
    assert_eq!(
        g.heartbeat(&a, None, 0, T0 + 100),
        codes::ILLEGAL_GENERATION
    );
    assert_eq!(
        g.heartbeat("stranger", None, 1, T0 + 100),
        codes::UNKNOWN_MEMBER_ID
    );

    // A second member: the group prepares to rebalance and waits for a to rejoin.
    let (b, mut rx_b) = join_new(&mut g, &sink, T0 + 200);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert!(rx_b.try_recv().is_err(), "b waits for a");
    assert_eq!(
        g.heartbeat(&a, None, 1, T0 + 300),
        codes::REBALANCE_IN_PROGRESS
    );
    let s = now_value(g.sync(&a, None, 1, None, None, vec![], &sink, T0 + 300));
    assert_eq!(s.error, codes::REBALANCE_IN_PROGRESS);
    let mut rx_a = later(g.join(join_req(&a, None), &limits, &sink, T0 + 400));
    let (ja, jb) = (rx_a.try_recv().unwrap(), rx_b.try_recv().unwrap());
    assert_eq!((ja.generation, jb.generation), (2, 2));
    assert_eq!(ja.leader, a, "the leader stays the leader");
    assert_eq!(
        (ja.members.len(), jb.members.len()),
        (2, 0),
        "only the leader sees members"
    );
    // The follower syncs first and waits for the leader.
    let mut rx_b = later(g.sync(&b, None, 2, None, None, vec![], &sink, T0 + 500));
    assert!(rx_b.try_recv().is_err());
    let _ = g.sync(
        &a,
        None,
        2,
        None,
        None,
        vec![
            (a.clone(), Bytes::from_static(b"A")),
            (b.clone(), Bytes::from_static(b"B")),
        ],
        &sink,
        T0 + 600,
    );
    assert_eq!(
        rx_b.try_recv().unwrap().assignment,
        Bytes::from_static(b"B")
    );
    // A commit from an old generation is refused; from the current one accepted.
    assert_eq!(
        g.validate_commit(&b, None, 1, T0 + 700),
        Err(codes::ILLEGAL_GENERATION)
    );
    assert_eq!(g.validate_commit(&b, None, 2, T0 + 700), Ok(()));
    assert_eq!(
        g.validate_commit("", None, -1, T0 + 700),
        Err(codes::UNKNOWN_MEMBER_ID),
        "no manual commits into a group with members"
    );
}

#[test]
fn sessions_expire_and_members_that_do_not_rejoin_are_dropped() {
    let sink = Memory::default();
    let limits = GroupLimits::default();
    let mut g = Group::new("g", 0, T0);
    let (a, _) = join_new(&mut g, &sink, T0);
    let _ = g.sync(&a, None, 1, None, None, vec![], &sink, T0);
    let (b, _) = join_new(&mut g, &sink, T0);
    let _ = g.join(join_req(&a, None), &limits, &sink, T0);
    let _ = g.sync(&a, None, 2, None, None, vec![], &sink, T0);
    assert_eq!(g.state, GroupState::Stable);
    // b stops heartbeating; a keeps going. At b's session timeout, b is removed.
    assert_eq!(g.next_deadline(), Some(T0 + 10_000));
    g.heartbeat(&a, None, 2, T0 + 9_000);
    g.on_timer(T0 + 10_000);
    assert!(!g.members.contains_key(&b));
    assert_eq!(g.state, GroupState::PreparingRebalance);
    // a keeps heartbeating (told REBALANCE_IN_PROGRESS) but never rejoins: at the end of
    // the rebalance timeout it is dropped and the group is empty.
    for t in [15_000, 25_000, 35_000] {
        assert_eq!(
            g.heartbeat(&a, None, 2, T0 + t),
            codes::REBALANCE_IN_PROGRESS
        );
        g.on_timer(T0 + t);
        assert!(g.members.contains_key(&a));
    }
    let deadline = g.next_deadline().unwrap();
    assert_eq!(deadline, T0 + 10_000 + 30_000);
    g.on_timer(deadline);
    assert_eq!(g.state, GroupState::Empty);
    assert!(g.take_dirty(), "the empty group is stored");
    assert_eq!(g.generation, 3);
}

#[test]
fn the_initial_delay_holds_the_first_rebalance_open() {
    let sink = Memory::default();
    let mut g = Group::new("g", 3_000, T0);
    let (_, mut rx_a) = join_new(&mut g, &sink, T0);
    let (_, mut rx_b) = join_new(&mut g, &sink, T0 + 1_000);
    assert!(rx_a.try_recv().is_err() && rx_b.try_recv().is_err());
    // Each join pushes the end out by the delay: 1000 + 3000.
    assert_eq!(g.next_deadline(), Some(T0 + 4_000));
    g.on_timer(T0 + 4_000);
    assert_eq!(rx_a.try_recv().unwrap().generation, 1);
    assert_eq!(rx_b.try_recv().unwrap().generation, 1);
}

#[test]
fn a_static_member_returns_without_a_rebalance_and_fences_its_old_id() {
    let sink = Memory::default();
    let limits = GroupLimits::default();
    let mut g = Group::new("g", 0, T0);
    let mut rx = later(g.join(join_req("", Some("i1")), &limits, &sink, T0));
    let first = rx.try_recv().unwrap();
    let old = first.member_id.clone();
    let _ = g.sync(
        &old,
        Some("i1"),
        1,
        None,
        None,
        vec![(old.clone(), Bytes::from_static(b"P"))],
        &sink,
        T0,
    );
    // The same instance comes back (a restart): a new member id, same generation, no
    // rebalance, and it is not told to lead.
    let back = now_value(g.join(join_req("", Some("i1")), &limits, &sink, T0 + 100));
    assert_eq!(back.error, 0);
    assert_ne!(back.member_id, old);
    assert_eq!(back.generation, 1);
    assert!(back.members.is_empty());
    assert_eq!(g.state, GroupState::Stable);
    let s = now_value(g.sync(
        &back.member_id,
        Some("i1"),
        1,
        None,
        None,
        vec![],
        &sink,
        T0 + 100,
    ));
    assert_eq!(
        s.assignment,
        Bytes::from_static(b"P"),
        "it keeps its partitions"
    );
    assert_eq!(
        g.heartbeat(&old, Some("i1"), 1, T0 + 200),
        codes::FENCED_INSTANCE_ID
    );
    let j = now_value(g.join(join_req(&old, Some("i1")), &limits, &sink, T0 + 200));
    assert_eq!(j.error, codes::FENCED_INSTANCE_ID);
    // Leaving by instance id.
    assert_eq!(g.leave("", Some("i1"), T0 + 300), codes::NONE);
    assert_eq!(g.state, GroupState::Empty);
}

#[test]
fn invalid_joins_get_kafkas_codes() {
    let sink = Memory::default();
    let limits = GroupLimits::default();
    let mut g = Group::new("g", 0, T0);
    let mut r = join_req("", None);
    r.session_timeout_ms = 10;
    assert_eq!(
        now_value(g.join(r, &limits, &sink, T0)).error,
        codes::INVALID_SESSION_TIMEOUT
    );
    assert_eq!(
        now_value(g.join(join_req("nobody", None), &limits, &sink, T0)).error,
        codes::UNKNOWN_MEMBER_ID
    );
    let (_a, _) = join_new(&mut g, &sink, T0);
    let mut other = join_req("", None);
    other.protocols = vec![("roundrobin-only".into(), Bytes::new())];
    assert_eq!(
        now_value(g.join(other, &limits, &sink, T0)).error,
        codes::INCONSISTENT_GROUP_PROTOCOL
    );
    let small = GroupLimits {
        max_size: 1,
        ..GroupLimits::default()
    };
    let second = now_value(g.join(join_req("", None), &small, &sink, T0));
    let again = now_value(g.join(join_req(&second.member_id, None), &small, &sink, T0));
    assert_eq!(again.error, codes::GROUP_MAX_SIZE_REACHED);
}

#[tokio::test]
async fn the_coordinator_replays_offsets_and_groups_from_its_partition() {
    let dir = tempfile::tempdir().unwrap();
    let tp = strom_types::TopicPartition::new("__consumer_offsets", 0);
    let open = || {
        strom_storage::Log::open(
            dir.path(),
            tp.clone(),
            strom_storage::LogConfig::default(),
            strom_storage::OpenOptions::standalone(),
        )
        .unwrap()
        .0
    };
    let config = CoordinatorConfig {
        offsets_topic_partitions: 1,
        ..CoordinatorConfig::default()
    };
    let c = GroupCoordinator::new(config.clone());
    assert!(!c.is_coordinator_for("grp"));
    let log = open();
    c.load_partition(0, log.clone(), 0).unwrap();
    let entry = |p, o| CommitEntry {
        topic: "t".into(),
        partition: p,
        offset: o,
        leader_epoch: 3,
        metadata: Some("m".into()),
    };
    // Manual-assignment commits (no member, generation -1) create an empty group.
    assert_eq!(
        c.commit_offsets("grp", "", None, -1, &[entry(0, 10), entry(1, 20)]),
        Ok(vec![0, 0])
    );
    assert_eq!(
        c.commit_offsets("grp", "", None, -1, &[entry(0, 11)]),
        Ok(vec![0])
    );
    let big = CommitEntry {
        metadata: Some("x".repeat(5000)),
        ..entry(2, 1)
    };
    assert_eq!(
        c.commit_offsets("grp", "", None, -1, &[big]),
        Ok(vec![codes::OFFSET_METADATA_TOO_LARGE])
    );
    assert_eq!(
        c.commit_offsets("other", "m", None, 4, &[entry(0, 1)]),
        Err(codes::ILLEGAL_GENERATION)
    );
    assert_eq!(c.delete_offsets("grp", &[("t".into(), 1)]), Ok(vec![0]));
    log.close().unwrap();
    drop(log);

    // A fresh coordinator loading the same partition sees the same offsets.
    let c2 = GroupCoordinator::new(config);
    c2.load_partition(0, open(), 0).unwrap();
    let got = c2.fetch_offsets("grp", None).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].1, got[0].2.as_ref().unwrap().offset), (0, 11));
    assert_eq!(got[0].2.as_ref().unwrap().leader_epoch, 3);
    assert_eq!(
        c2.list_groups(&[]),
        vec![("grp".to_string(), String::new(), "Empty")]
    );
    assert_eq!(c2.delete_group("grp"), 0);
    assert_eq!(c2.delete_group("grp"), codes::GROUP_ID_NOT_FOUND);
    assert!(c2.fetch_offsets("grp", None).unwrap().is_empty());
    c2.unload_partition(0);
    assert_eq!(
        c2.fetch_offsets("grp", None),
        Err(strom_coordinator::NOT_COORDINATOR)
    );
}

#[tokio::test]
async fn offsets_of_empty_groups_expire_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let log = offsets_log(dir.path());
    let config = CoordinatorConfig {
        offsets_topic_partitions: 1,
        offsets_retention_ms: 60_000,
        ..CoordinatorConfig::default()
    };
    let c = GroupCoordinator::new(config);
    c.load_partition(0, log, 0).unwrap();
    let entry = CommitEntry {
        topic: "t".into(),
        partition: 0,
        offset: 5,
        leader_epoch: -1,
        metadata: None,
    };
    c.commit_offsets("old", "", None, -1, std::slice::from_ref(&entry))
        .unwrap();
    let now = strom_storage::now_ms();
    assert_eq!(
        c.expire_offsets(now + 59_000),
        0,
        "still within the retention"
    );
    assert_eq!(c.expire_offsets(now + 61_000), 1);
    assert!(c.fetch_offsets("old", None).unwrap().is_empty());
    assert!(
        c.list_groups(&[]).is_empty(),
        "the empty group went with its offsets"
    );
}

#[tokio::test]
async fn kip848_groups_are_replayed_with_their_epochs_and_assignments() {
    use strom_coordinator::consumer_group::Heartbeat;
    let dir = tempfile::tempdir().unwrap();
    let tp = strom_types::TopicPartition::new("__consumer_offsets", 0);
    let open = || {
        strom_storage::Log::open(
            dir.path(),
            tp.clone(),
            strom_storage::LogConfig::default(),
            strom_storage::OpenOptions::standalone(),
        )
        .unwrap()
        .0
    };
    let config = CoordinatorConfig {
        offsets_topic_partitions: 1,
        ..CoordinatorConfig::default()
    };
    let mut topics = strom_coordinator::TopicsView::new();
    topics.insert("t".into(), (uuid::Uuid::from_u128(5), 4));
    let c = GroupCoordinator::new(config.clone());
    let log = open();
    c.load_partition(0, log.clone(), 0).unwrap();
    // Two members, each adopting what it is sent, until both are stable.
    let mut members: Vec<(String, i32, strom_coordinator::Assignment)> = vec![
        (String::new(), 0, Default::default()),
        (String::new(), 0, Default::default()),
    ];
    for _ in 0..6 {
        for m in members.iter_mut() {
            let r = c
                .consumer_heartbeat(
                    "modern",
                    Heartbeat {
                        member_id: m.0.clone(),
                        member_epoch: m.1,
                        subscribed_topic_names: Some(vec!["t".into()]),
                        owned: Some(m.2.clone()),
                        ..Default::default()
                    },
                    &topics,
                )
                .unwrap();
            m.0 = r.member_id;
            m.1 = r.member_epoch;
            if let Some(a) = r.assignment {
                m.2 = a;
            }
        }
    }
    let before = c.consumer_describe("modern").unwrap();
    assert_eq!(before.state, "Stable");
    log.close().unwrap();
    drop(log);

    let c2 = GroupCoordinator::new(config);
    c2.load_partition(0, open(), 0).unwrap();
    let after = c2.consumer_describe("modern").unwrap();
    assert_eq!(
        (after.group_epoch, after.assignment_epoch),
        (before.group_epoch, before.assignment_epoch)
    );
    let summary = |d: &strom_coordinator::ConsumerGroupDescription| {
        d.members
            .iter()
            .map(|(m, t)| (m.id.clone(), m.epoch, m.assigned.clone(), t.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(summary(&after), summary(&before));
    // The members carry on with their epochs: no UNKNOWN_MEMBER_ID, no rejoin.
    for m in &members {
        let r = c2
            .consumer_heartbeat(
                "modern",
                Heartbeat {
                    member_id: m.0.clone(),
                    member_epoch: m.1,
                    owned: Some(m.2.clone()),
                    ..Default::default()
                },
                &topics,
            )
            .unwrap();
        assert_eq!(r.member_epoch, m.1);
    }
    // Leaving writes tombstones: after a reload the group has one member.
    c2.consumer_heartbeat(
        "modern",
        Heartbeat {
            member_id: members[0].0.clone(),
            member_epoch: -1,
            ..Default::default()
        },
        &topics,
    )
    .unwrap();
    assert_eq!(c2.consumer_describe("modern").unwrap().members.len(), 1);
}

/// A consumer that got its member id (KIP-394) and crashed before rejoining stops holding
/// the join phase open when that id expires at its session timeout, not at the end of the
/// rebalance timeout.
#[test]
fn an_expired_pending_member_does_not_hold_the_join_phase_open() {
    let sink = Memory::default();
    let limits = GroupLimits::default();
    let mut g = Group::new("g", 0, T0);
    let (a, _) = join_new(&mut g, &sink, T0);
    let _ = g.sync(&a, None, 1, None, None, vec![], &sink, T0);
    assert_eq!(g.state, GroupState::Stable);
    // b asks for a member id and is never heard from again.
    let first = now_value(g.join(join_req("", None), &limits, &sink, T0 + 100));
    assert_eq!(first.error, codes::MEMBER_ID_REQUIRED);
    // A rebalance starts (a rejoins with new metadata); a is in, b's id is still awaited.
    let mut req = join_req(&a, None);
    req.protocols = vec![("range".into(), Bytes::from_static(b"other"))];
    let mut rx_a = later(g.join(req, &limits, &sink, T0 + 200));
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert!(rx_a.try_recv().is_err(), "the pending id is awaited");
    // b's pending id expires at its session timeout (10 s), well before the rebalance
    // timeout (30 s): the join completes then.
    assert_eq!(g.next_deadline(), Some(T0 + 100 + 10_000));
    g.on_timer(T0 + 100 + 10_000);
    let ja = rx_a
        .try_recv()
        .expect("the join completes when the pending id expires");
    assert_eq!((ja.error, ja.generation), (codes::NONE, 2));
    assert_eq!(g.state, GroupState::CompletingRebalance);
    assert_eq!(g.members.len(), 1);
}

/// A static member that closes without LeaveGroup (KIP-345) is gone once its session is
/// over: DeleteGroups at that moment succeeds, whether or not the group's timer has run
/// yet (here it never runs: the runtime is not polled after the join).
#[test]
fn a_group_whose_last_session_ended_can_be_deleted_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = offsets_log(dir.path());
    let config = CoordinatorConfig {
        offsets_topic_partitions: 1,
        limits: GroupLimits {
            min_session_timeout_ms: 10,
            initial_rebalance_delay_ms: 0,
            ..GroupLimits::default()
        },
        ..CoordinatorConfig::default()
    };
    let c = GroupCoordinator::new(config);
    c.load_partition(0, log, 0).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let member = rt.block_on(async {
        let mut req = join_req("", Some("instance-1"));
        req.session_timeout_ms = 200;
        let joined = c.join_group("g", req).await;
        assert_eq!(joined.error, codes::NONE);
        let synced = c
            .sync_group(
                "g",
                &joined.member_id,
                Some("instance-1"),
                joined.generation,
                None,
                None,
                vec![],
            )
            .await;
        assert_eq!(synced.error, codes::NONE);
        joined.member_id
    });
    assert_eq!(
        c.delete_group("g"),
        codes::NON_EMPTY_GROUP,
        "{member} is still in"
    );
    std::thread::sleep(std::time::Duration::from_millis(250));
    assert_eq!(c.delete_group("g"), codes::NONE);
}

#[tokio::test]
async fn a_partition_being_loaded_answers_load_in_progress_and_a_load_overtaken_by_an_unload_is_dropped(
) {
    let dir = tempfile::tempdir().unwrap();
    let log = offsets_log(dir.path());
    let config = CoordinatorConfig {
        offsets_topic_partitions: 1,
        ..CoordinatorConfig::default()
    };
    let c = GroupCoordinator::new(config);
    let token = c.begin_loading(0);
    assert_eq!(
        c.fetch_offsets("grp", None),
        Err(codes::COORDINATOR_LOAD_IN_PROGRESS)
    );
    assert!(c.is_partition_loading(0) && !c.is_partition_loaded(0));
    // Leadership moved away before the replay ended: its result is not served.
    c.unload_partition(0);
    assert_eq!(c.finish_loading(0, log.clone(), 0, token), Ok(false));
    assert_eq!(
        c.fetch_offsets("grp", None),
        Err(strom_coordinator::NOT_COORDINATOR)
    );
    let token = c.begin_loading(0);
    assert_eq!(c.finish_loading(0, log, 0, token), Ok(true));
    assert!(!c.is_partition_loading(0) && c.is_partition_loaded(0));
    assert_eq!(c.fetch_offsets("grp", None), Ok(Vec::new()));
}
