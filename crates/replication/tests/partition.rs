//! One partition's replication rules, driven by hand through the replica manager: the high
//! watermark, acks=all and `min.insync.replicas`, leader epochs on reads, the divergence a
//! returning follower is told about, ISR shrink and expansion proposals.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use strom_replication::{
    Assignment, EpochEnd, FetchedPartition, FollowerFetch, IsrProposal, IsrProposer, LinkError,
    ReplicaFetch, ReplicaLinks, ReplicaManager, ReplicationConfig, ReplicationError, Role,
};
use strom_storage::{AppendOrigin, LogConfig, LogManager, LogManagerConfig};
use strom_types::compression::Compression;
use strom_types::record::BatchBuilder;
use strom_types::TopicPartition;

/// Followers' fetches that never answer: these tests play the followers themselves.
struct Silent;

impl ReplicaLinks for Silent {
    fn fetch(
        &self,
        _leader: i32,
        _request: ReplicaFetch,
    ) -> BoxFuture<'static, Result<Vec<FetchedPartition>, LinkError>> {
        Box::pin(futures_util::future::pending())
    }
}

/// Records what the leader proposes and accepts it.
#[derive(Default)]
struct Proposals(Mutex<Vec<IsrProposal>>);

/// The proposer handed to the manager, sharing the record with the test.
struct Recorder(Arc<Proposals>);

impl IsrProposer for Recorder {
    fn alter_partition(&self, proposal: IsrProposal) -> BoxFuture<'static, Result<(), String>> {
        self.0 .0.lock().push(proposal);
        Box::pin(async { Ok(()) })
    }
}

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn manager(dir: &std::path::Path, lag: Duration) -> (Arc<ReplicaManager>, Arc<Proposals>) {
    let logs = LogManager::open(LogManagerConfig::new(vec![dir.to_path_buf()])).unwrap();
    let proposals = Arc::new(Proposals::default());
    let config = ReplicationConfig {
        lag_time_max: lag,
        ..ReplicationConfig::default()
    };
    let rm = ReplicaManager::new(
        1,
        config,
        logs,
        Arc::new(Silent),
        Arc::new(Recorder(proposals.clone())),
    );
    (rm, proposals)
}

fn assignment(isr: &[i32], leader: i32, leader_epoch: i32, partition_epoch: i32) -> Assignment {
    Assignment {
        topic_id: uuid::Uuid::from_u128(7),
        replicas: vec![1, 2, 3],
        isr: isr.to_vec(),
        leader,
        leader_epoch,
        partition_epoch,
    }
}

fn batch(value: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None);
    b.append(0, None, Some(value.as_bytes()), &[]);
    b.build(0).unwrap()
}

/// Brings the replica of `tp()` in line with `a` (default log settings, `min_isr`).
fn lead(rm: &ReplicaManager, a: Assignment, min_isr: i32) {
    rm.apply(&tp(), a, LogConfig::default(), min_isr).unwrap();
}

/// Appends one record as leader with acks=1.
async fn append_one(rm: &ReplicaManager, value: &str) {
    rm.append(
        &tp(),
        &mut batch(value),
        1,
        Duration::from_secs(1),
        AppendOrigin::Client,
    )
    .await
    .unwrap();
}

/// A follower's fetch of up to 1 MiB from `offset`, its last batch in `last_epoch`, believing
/// `current` the leader epoch (no broker epoch given).
fn fetch(replica: i32, offset: i64, last_epoch: i32, current: i32) -> FollowerFetch {
    FollowerFetch {
        replica,
        replica_epoch: -1,
        fetch_offset: offset,
        last_fetched_epoch: last_epoch,
        current_leader_epoch: current,
        max_bytes: 1 << 20,
        min_one_batch: true,
    }
}

/// A follower's fetch at `offset` in `epoch` with nothing else of interest.
fn follower_fetch(rm: &ReplicaManager, replica: i32, offset: i64, last_epoch: i32) -> i64 {
    rm.read_for_replica(&tp(), fetch(replica, offset, last_epoch, 0))
        .unwrap()
        .high_watermark
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_waits_for_the_isr_and_the_high_watermark_bounds_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let (rm, _) = manager(dir.path(), Duration::from_secs(30));
    lead(&rm, assignment(&[1, 2, 3], 1, 0, 0), 2);
    let p = rm.get(&tp()).unwrap();
    assert_eq!(p.role(), Role::Leader);
    // acks=1 is answered at once; the high watermark waits for both followers.
    let info = rm
        .append(
            &tp(),
            &mut batch("a"),
            1,
            Duration::from_secs(5),
            AppendOrigin::Client,
        )
        .await
        .unwrap();
    assert_eq!(info.first_offset, 0);
    assert_eq!(p.high_watermark(), 0);
    let read = rm.read_for_consumer(&tp(), consumer(0)).unwrap();
    assert!(
        read.read.region.is_none(),
        "nothing is visible below a high watermark of 0"
    );
    assert_eq!(
        follower_fetch(&rm, 2, 1, 0),
        0,
        "one follower of two is not enough"
    );
    assert_eq!(follower_fetch(&rm, 3, 1, 0), 1);
    let read = rm.read_for_consumer(&tp(), consumer(0)).unwrap();
    assert!(read.read.region.is_some());

    // acks=all: answered once the followers fetched past the batch.
    let waiting = {
        let rm = rm.clone();
        tokio::spawn(async move {
            rm.append(
                &tp(),
                &mut batch("b"),
                -1,
                Duration::from_secs(10),
                AppendOrigin::Client,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiting.is_finished(),
        "acks=all answered before the ISR had the batch"
    );
    follower_fetch(&rm, 2, 2, 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished());
    follower_fetch(&rm, 3, 2, 0);
    let info = waiting.await.unwrap().unwrap();
    assert_eq!(info.first_offset, 1);
    assert_eq!(p.high_watermark(), 2);

    // Nobody fetches: REQUEST_TIMED_OUT after the request's timeout.
    let err = rm
        .append(
            &tp(),
            &mut batch("c"),
            -1,
            Duration::from_millis(200),
            AppendOrigin::Client,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ReplicationError::Timeout(_)), "{err}");

    // The ISR shrinks below min.insync.replicas: acks=all is refused before the append.
    lead(&rm, assignment(&[1], 1, 0, 1), 2);
    let end = p.log().log_end_offset();
    let err = rm
        .append(
            &tp(),
            &mut batch("d"),
            -1,
            Duration::from_secs(1),
            AppendOrigin::Client,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReplicationError::NotEnoughReplicas {
                in_sync: 1,
                min: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(p.log().log_end_offset(), end, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_check_the_leader_epoch_and_a_divergent_follower_is_told_where_to_truncate() {
    let dir = tempfile::tempdir().unwrap();
    let (rm, _) = manager(dir.path(), Duration::from_secs(30));
    lead(&rm, assignment(&[1, 2, 3], 1, 3, 0), 1);
    for v in ["a", "b", "c"] {
        append_one(&rm, v).await;
    }
    // A new leader epoch: what follows is written in epoch 5.
    lead(&rm, assignment(&[1, 2, 3], 1, 5, 1), 1);
    append_one(&rm, "d").await;
    let fenced = rm.read_for_consumer(&tp(), consumer(4)).unwrap_err();
    assert!(matches!(
        fenced,
        ReplicationError::FencedLeaderEpoch {
            requested: 4,
            current: 5,
            ..
        }
    ));
    let unknown = rm.read_for_consumer(&tp(), consumer(6)).unwrap_err();
    assert!(matches!(
        unknown,
        ReplicationError::UnknownLeaderEpoch { requested: 6, .. }
    ));
    // A follower that wrote offsets 3 and 4 in epoch 4 (as a leader nobody followed) is told
    // that epoch 3 ended at 3 here.
    let r = rm.read_for_replica(&tp(), fetch(2, 5, 4, 5)).unwrap();
    assert_eq!(
        r.diverging,
        Some(EpochEnd {
            epoch: 3,
            end_offset: 3
        })
    );
    assert!(r.read.is_none());
    // A follower in step is not.
    let r = rm.read_for_replica(&tp(), fetch(2, 3, 3, 5)).unwrap();
    assert_eq!(r.diverging, None);
    assert!(r.read.and_then(|r| r.region).is_some());
    // OffsetsForLeaderEpoch answers the same boundaries.
    assert_eq!(
        rm.end_offset_for_epoch(&tp(), 5, 3).unwrap(),
        EpochEnd {
            epoch: 3,
            end_offset: 3
        }
    );
    assert_eq!(
        rm.end_offset_for_epoch(&tp(), 5, 5).unwrap(),
        EpochEnd {
            epoch: 5,
            end_offset: 4
        }
    );
    // Only replicas may fetch as followers.
    let err = rm.read_for_replica(&tp(), fetch(9, 0, -1, 5)).unwrap_err();
    assert!(matches!(
        err,
        ReplicationError::NotReplica { replica: 9, .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_follower_is_proposed_out_of_the_isr_and_back_in_once_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let (rm, proposals) = manager(dir.path(), Duration::from_millis(200));
    lead(&rm, assignment(&[1, 2, 3], 1, 0, 0), 1);
    append_one(&rm, "a").await;
    // Follower 2 keeps up; follower 3 never fetches.
    for _ in 0..4 {
        follower_fetch(&rm, 2, 1, 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rm.check_isr();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let shrink = proposals.0.lock().clone();
    assert_eq!(shrink.len(), 1, "{shrink:?}");
    assert_eq!(shrink[0].new_isr, vec![1, 2]);
    assert_eq!((shrink[0].leader_epoch, shrink[0].partition_epoch), (0, 0));
    // The high watermark still waits for 3 until the controller commits the shrink.
    let p = rm.get(&tp()).unwrap();
    assert_eq!(p.high_watermark(), 0);
    lead(&rm, assignment(&[1, 2], 1, 0, 1), 1);
    assert_eq!(
        p.high_watermark(),
        1,
        "the committed ISR is {{1, 2}}, both at 1"
    );
    // Follower 3 comes back and catches up: proposed back in.
    follower_fetch(&rm, 3, 0, -1);
    assert_eq!(proposals.0.lock().len(), 1, "not caught up yet");
    follower_fetch(&rm, 3, 1, 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let all = proposals.0.lock().clone();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1].new_isr, vec![1, 2, 3]);
    assert_eq!(all[1].partition_epoch, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_with_an_epoch_older_than_all_of_the_leaders_truncates_to_its_first_epoch() {
    // A replica that was in the ISR with an empty log (as every replica of a new partition
    // is) became leader in epoch 7; a follower still holds records of epoch 2 it had copied
    // from the old leader, which were never acknowledged. It must drop them.
    let dir = tempfile::tempdir().unwrap();
    let (rm, _) = manager(dir.path(), Duration::from_secs(30));
    lead(&rm, assignment(&[1, 2, 3], 1, 7, 3), 1);
    append_one(&rm, "x").await;
    let r = rm.read_for_replica(&tp(), fetch(2, 67, 2, 7)).unwrap();
    assert_eq!(
        r.diverging,
        Some(EpochEnd {
            epoch: 2,
            end_offset: 0
        })
    );
    assert_eq!(
        rm.end_offset_for_epoch(&tp(), 7, 2).unwrap(),
        EpochEnd {
            epoch: 2,
            end_offset: 0
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_reports_no_end_offset_until_its_high_watermark_reaches_its_epoch_start() {
    // Two records written in epoch 0, which the old leader may have acknowledged with
    // acks=all; this replica leads again in epoch 1 before learning the high watermark moved.
    let dir = tempfile::tempdir().unwrap();
    let (rm, _) = manager(dir.path(), Duration::from_secs(30));
    lead(&rm, assignment(&[1, 2, 3], 1, 0, 0), 1);
    append_one(&rm, "a").await;
    append_one(&rm, "b").await;
    let p = rm.get(&tp()).unwrap();
    assert_eq!(p.offsets_for_client(0, true).unwrap().high_watermark, 0);
    lead(&rm, assignment(&[1, 2, 3], 1, 1, 1), 1);
    assert!(matches!(
        p.offsets_for_client(-1, true),
        Err(ReplicationError::OffsetNotAvailable {
            high_watermark: 0,
            epoch_start: 2,
            ..
        })
    ));
    // The earliest offset needs no end; an old epoch is fenced, a future one unknown.
    assert!(p.offsets_for_client(1, false).is_ok());
    assert!(matches!(
        p.offsets_for_client(0, false),
        Err(ReplicationError::FencedLeaderEpoch { .. })
    ));
    assert!(matches!(
        p.offsets_for_client(2, false),
        Err(ReplicationError::UnknownLeaderEpoch { .. })
    ));
    // One follower is not the ISR; both are, and the end is known.
    rm.read_for_replica(&tp(), fetch(2, 2, 0, 1)).unwrap();
    assert!(p.offsets_for_client(1, true).is_err());
    rm.read_for_replica(&tp(), fetch(3, 2, 0, 1)).unwrap();
    let bounds = p.offsets_for_client(1, true).unwrap();
    assert_eq!(bounds.high_watermark, 2);
    assert_eq!(bounds.last_stable_offset, 2);
}

/// A read_uncommitted consumer's fetch from offset 0 in `epoch`.
fn consumer(epoch: i32) -> strom_replication::ConsumerFetch {
    strom_replication::ConsumerFetch {
        fetch_offset: 0,
        current_leader_epoch: epoch,
        max_bytes: 1 << 20,
        min_one_batch: true,
        allow_follower: false,
        read_committed: false,
    }
}
