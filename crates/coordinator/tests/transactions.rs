//! The transaction coordinator's state machine over a real `__transaction_state` log:
//! init, add, end (with the marker phase), fencing, timeouts, expiry, and a new coordinator
//! finishing what a failed one prepared.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use strom_coordinator::codes;
use strom_coordinator::txn::records::encode_key;
use strom_coordinator::txn::TxnValue;
use strom_coordinator::txn::{
    TransactionCoordinator, TxnCoordinatorConfig, TxnHost, TxnMarkers, TxnStatus,
    TRANSACTION_STATE_TOPIC, TRANSACTION_VERSION_1 as V1, TRANSACTION_VERSION_2 as V2,
};
use strom_storage::{now_ms, AppendOrigin, Log, LogConfig, OpenOptions};
use strom_types::compression::Compression;
use strom_types::record::BatchBuilder;
use strom_types::TopicPartition;

/// Writes to one real log (every partition of the topic maps to it: the tests use one id
/// per coordinator, so one partition), records markers, fails the first `fail_markers`.
struct Host {
    log: Arc<Log>,
    markers: Mutex<Vec<TxnMarkers>>,
    fail_markers: AtomicUsize,
    next_id: AtomicI64,
}

impl TxnHost for Host {
    fn append(
        &self,
        _partition: i32,
        coordinator_epoch: i32,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    ) -> BoxFuture<'static, Result<(), i16>> {
        let mut b = BatchBuilder::new(Compression::None);
        b.append(now_ms(), Some(&key), value.as_deref(), &[]);
        let mut bytes = b.build(0).unwrap();
        let r = self
            .log
            .append_as_leader(
                &mut bytes,
                coordinator_epoch,
                AppendOrigin::Coordinator,
                now_ms(),
            )
            .map(|_| ())
            .map_err(|_| codes::NOT_COORDINATOR);
        Box::pin(async move { r })
    }

    fn write_markers(&self, markers: TxnMarkers) -> BoxFuture<'static, Result<(), i16>> {
        let failing = self
            .fail_markers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !failing {
            self.markers.lock().push(markers);
        }
        Box::pin(async move {
            if failing {
                Err(codes::NOT_LEADER_OR_FOLLOWER)
            } else {
                Ok(())
            }
        })
    }

    fn allocate_producer_id(&self) -> BoxFuture<'static, Result<i64, i16>> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { Ok(id) })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    log: Arc<Log>,
    host: Arc<Host>,
    coordinator: Arc<TransactionCoordinator>,
}

const ID: &str = "txn-a";

fn config() -> TxnCoordinatorConfig {
    TxnCoordinatorConfig {
        partitions: 50,
        abort_check_interval_ms: 3_600_000,
        ..TxnCoordinatorConfig::default()
    }
}

fn start(
    log: Arc<Log>,
    epoch: i32,
    fail_markers: usize,
) -> (Arc<Host>, Arc<TransactionCoordinator>) {
    let host = Arc::new(Host {
        log: log.clone(),
        markers: Mutex::new(Vec::new()),
        fail_markers: AtomicUsize::new(fail_markers),
        next_id: AtomicI64::new(1000),
    });
    let c = TransactionCoordinator::new(config());
    c.set_host(host.clone());
    let p = c.partition_for(ID);
    let token = c.begin_loading(p);
    assert!(c.finish_loading(p, log, epoch, token).unwrap());
    (host, c)
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(
        dir.path(),
        TopicPartition::new(TRANSACTION_STATE_TOPIC, 0),
        LogConfig::default(),
        OpenOptions::standalone(),
    )
    .unwrap();
    let (host, coordinator) = start(log.clone(), 0, 0);
    Fixture {
        _dir: dir,
        log,
        host,
        coordinator,
    }
}

fn parts(names: &[(&str, i32)]) -> Vec<(String, i32)> {
    names.iter().map(|(t, p)| (t.to_string(), *p)).collect()
}

/// Waits (bounded) until the id reaches `state`.
async fn wait_state(c: &TransactionCoordinator, state: TxnStatus) {
    for _ in 0..200 {
        if c.describe(ID).await.map(|d| d.state) == Ok(state.name()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{ID} never reached {}", state.name());
}

#[tokio::test]
async fn commit_writes_markers_to_every_partition_then_completes() {
    let f = fixture();
    let c = &f.coordinator;
    assert_eq!(c.init_producer_id(ID, 60_000, None).await, Ok((1000, 0)));
    c.add_partitions(ID, 1000, 0, &parts(&[("a", 0), ("b", 1)]), V1)
        .await
        .unwrap();
    // Adding what is already in is a no-op; one more partition joins.
    c.add_partitions(ID, 1000, 0, &parts(&[("a", 0), ("a", 1)]), V1)
        .await
        .unwrap();
    let d = c.describe(ID).await.unwrap();
    assert_eq!(d.state, "Ongoing");
    assert_eq!(d.partitions, parts(&[("a", 0), ("a", 1), ("b", 1)]));
    assert_eq!(
        c.verify_partitions(ID, 1000, 0, &parts(&[("a", 1), ("c", 0)]))
            .await,
        Ok(vec![codes::NONE, codes::INVALID_TXN_STATE])
    );
    c.end_txn(ID, 1000, 0, true, V1).await.unwrap();
    wait_state(c, TxnStatus::CompleteCommit).await;
    let markers = f.host.markers.lock().clone();
    assert_eq!(markers.len(), 1);
    assert!(markers[0].commit);
    assert_eq!(markers[0].producer_epoch, 0);
    assert_eq!(
        markers[0].partitions,
        parts(&[("a", 0), ("a", 1), ("b", 1)])
    );
    // A retried commit is answered NONE; an abort now is not a valid transition.
    assert_eq!(c.end_txn(ID, 1000, 0, true, V1).await, Ok((1000, 0)));
    assert_eq!(
        c.end_txn(ID, 1000, 0, false, V1).await,
        Err(codes::INVALID_TXN_STATE)
    );
    // The next transaction starts with the next AddPartitionsToTxn.
    c.add_partitions(ID, 1000, 0, &parts(&[("b", 0)]), V1)
        .await
        .unwrap();
    assert_eq!(c.describe(ID).await.unwrap().partitions, parts(&[("b", 0)]));
}

#[tokio::test]
async fn a_new_producer_fences_the_old_one_and_aborts_its_transaction() {
    let f = fixture();
    let c = &f.coordinator;
    c.init_producer_id(ID, 60_000, None).await.unwrap();
    c.add_partitions(ID, 1000, 0, &parts(&[("a", 0)]), V1)
        .await
        .unwrap();
    // The zombie's successor: the open transaction is aborted first.
    assert_eq!(
        c.init_producer_id(ID, 60_000, None).await,
        Err(codes::CONCURRENT_TRANSACTIONS)
    );
    wait_state(c, TxnStatus::CompleteAbort).await;
    let markers = f.host.markers.lock().clone();
    assert_eq!(markers.len(), 1);
    assert!(!markers[0].commit);
    assert_eq!(
        markers[0].producer_epoch, 1,
        "the abort carries the bumped epoch"
    );
    assert_eq!(c.init_producer_id(ID, 60_000, None).await, Ok((1000, 2)));
    // The old producer is fenced everywhere.
    assert_eq!(
        c.add_partitions(ID, 1000, 0, &parts(&[("a", 0)]), V1).await,
        Err(codes::PRODUCER_FENCED)
    );
    assert_eq!(
        c.end_txn(ID, 1000, 0, true, V1).await,
        Err(codes::PRODUCER_FENCED)
    );
    // KIP-360: a producer naming an epoch that is not current is fenced too; one naming
    // the current epoch gets the next.
    assert_eq!(
        c.init_producer_id(ID, 60_000, Some((1000, 0))).await,
        Err(codes::PRODUCER_FENCED)
    );
    assert_eq!(
        c.init_producer_id(ID, 60_000, Some((1000, 2))).await,
        Ok((1000, 3))
    );
    // ...and its retry of that same request is answered with the same epoch.
    assert_eq!(
        c.init_producer_id(ID, 60_000, Some((1000, 2))).await,
        Ok((1000, 3))
    );
}

#[tokio::test]
async fn bad_requests_get_kafkas_errors_and_change_nothing() {
    let f = fixture();
    let c = &f.coordinator;
    assert_eq!(
        c.init_producer_id(ID, 0, None).await,
        Err(codes::INVALID_TRANSACTION_TIMEOUT)
    );
    assert_eq!(
        c.init_producer_id(ID, 900_001, None).await,
        Err(codes::INVALID_TRANSACTION_TIMEOUT)
    );
    assert_eq!(
        c.add_partitions(ID, 1, 0, &parts(&[("a", 0)]), V1).await,
        Err(codes::INVALID_PRODUCER_ID_MAPPING)
    );
    c.init_producer_id(ID, 60_000, None).await.unwrap();
    let before = f.log.log_end_offset();
    // EndTxn without a transaction.
    assert_eq!(
        c.end_txn(ID, 1000, 0, true, V1).await,
        Err(codes::INVALID_TXN_STATE)
    );
    assert_eq!(
        c.end_txn(ID, 1000, 5, true, V1).await,
        Err(codes::INVALID_PRODUCER_EPOCH)
    );
    assert_eq!(
        c.end_txn(ID, 999, 0, false, V1).await,
        Err(codes::INVALID_PRODUCER_ID_MAPPING)
    );
    assert_eq!(f.log.log_end_offset(), before, "nothing was written");
    assert_eq!(c.describe(ID).await.unwrap().state, "Empty");
    // Another coordinator's id.
    let other = (0..)
        .map(|i| format!("other-{i}"))
        .find(|id| c.partition_for(id) != c.partition_for(ID))
        .unwrap();
    assert_eq!(
        c.init_producer_id(&other, 60_000, None).await,
        Err(codes::NOT_COORDINATOR)
    );
}

#[tokio::test]
async fn a_new_coordinator_finishes_a_transaction_the_old_one_prepared() {
    let f = fixture();
    // The first coordinator's markers never get written (its leaders are gone).
    f.host.fail_markers.store(usize::MAX, Ordering::SeqCst);
    let c = &f.coordinator;
    c.init_producer_id(ID, 60_000, None).await.unwrap();
    c.add_partitions(ID, 1000, 0, &parts(&[("a", 0), ("b", 0)]), V1)
        .await
        .unwrap();
    c.end_txn(ID, 1000, 0, true, V1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(c.describe(ID).await.unwrap().state, "PrepareCommit");
    assert_eq!(
        c.add_partitions(ID, 1000, 0, &parts(&[("a", 0)]), V1).await,
        Err(codes::CONCURRENT_TRANSACTIONS)
    );
    c.unload_partition(c.partition_for(ID));
    assert_eq!(c.describe(ID).await, Err(codes::NOT_COORDINATOR));
    // Its successor replays the log and completes the commit.
    let (host, next) = start(f.log.clone(), 1, 0);
    wait_state(&next, TxnStatus::CompleteCommit).await;
    let markers = host.markers.lock().clone();
    assert_eq!(markers.len(), 1);
    assert!(markers[0].commit);
    assert_eq!(markers[0].coordinator_epoch, 1);
    assert_eq!(markers[0].partitions, parts(&[("a", 0), ("b", 0)]));
    // The producer goes on with the same id and epoch.
    next.add_partitions(ID, 1000, 0, &parts(&[("c", 0)]), V1)
        .await
        .unwrap();
}

#[tokio::test]
async fn markers_are_retried_until_written() {
    let f = fixture();
    f.host.fail_markers.store(3, Ordering::SeqCst);
    let c = &f.coordinator;
    c.init_producer_id(ID, 60_000, None).await.unwrap();
    c.add_partitions(ID, 1000, 0, &parts(&[("a", 0)]), V1)
        .await
        .unwrap();
    c.end_txn(ID, 1000, 0, false, V1).await.unwrap();
    wait_state(c, TxnStatus::CompleteAbort).await;
    assert_eq!(f.host.markers.lock().len(), 1);
}

#[tokio::test]
async fn timed_out_transactions_are_aborted_and_their_producer_fenced() {
    let f = fixture();
    let c = &f.coordinator;
    c.init_producer_id(ID, 1, None).await.unwrap();
    c.add_partitions(ID, 1000, 0, &parts(&[("a", 0)]), V1)
        .await
        .unwrap();
    assert_eq!(c.abort_timed_out(now_ms() - 10_000).await, 0, "not yet");
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(c.abort_timed_out(now_ms()).await, 1);
    wait_state(c, TxnStatus::CompleteAbort).await;
    assert_eq!(f.host.markers.lock()[0].producer_epoch, 1);
    assert_eq!(
        c.end_txn(ID, 1000, 0, true, V1).await,
        Err(codes::PRODUCER_FENCED)
    );
    let listed = c.list(&[], &[], -1).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, "CompleteAbort");
    assert!(c.list(&["Ongoing".to_string()], &[], -1).await.is_empty());
}

#[tokio::test]
async fn idle_ids_expire_and_their_state_is_gone_after_a_replay() {
    let f = fixture();
    let c = &f.coordinator;
    c.init_producer_id(ID, 60_000, None).await.unwrap();
    assert_eq!(c.expire_ids(now_ms()).await, 0);
    let far = now_ms() + c.config().id_expiration_ms + 1;
    assert_eq!(c.expire_ids(far).await, 1);
    assert_eq!(c.describe(ID).await, Err(codes::TRANSACTIONAL_ID_NOT_FOUND));
    let (_, next) = start(f.log.clone(), 1, 0);
    assert_eq!(
        next.describe(ID).await,
        Err(codes::TRANSACTIONAL_ID_NOT_FOUND)
    );
    // A new producer with that id starts over with a new producer id.
    assert_eq!(next.init_producer_id(ID, 60_000, None).await, Ok((1000, 0)));
}

#[tokio::test]
async fn at_transaction_version_2_every_end_bumps_the_epoch() {
    let f = fixture();
    let c = &f.coordinator;
    assert_eq!(c.init_producer_id(ID, 60_000, None).await, Ok((1000, 0)));
    // A leader's implicit add (Produce v12) opens the transaction.
    c.add_partitions(ID, 1000, 0, &parts(&[("a", 0)]), V2)
        .await
        .unwrap();
    assert_eq!(c.end_txn(ID, 1000, 0, true, V2).await, Ok((1000, 1)));
    wait_state(c, TxnStatus::CompleteCommit).await;
    assert_eq!(
        f.host.markers.lock()[0].producer_epoch,
        1,
        "the markers carry the bumped epoch"
    );
    // The lost answer's retry gets the same answer; the old epoch is fenced otherwise.
    assert_eq!(c.end_txn(ID, 1000, 0, true, V2).await, Ok((1000, 1)));
    assert_eq!(
        c.end_txn(ID, 1000, 0, false, V2).await,
        Err(codes::PRODUCER_FENCED)
    );
    assert_eq!(
        c.add_partitions(ID, 1000, 0, &parts(&[("a", 0)]), V2).await,
        Err(codes::PRODUCER_FENCED)
    );
    // The next transaction runs at the new epoch; its abort bumps again. Its first add,
    // sent while the last commit's markers are still being retried, waits for them.
    c.add_partitions(ID, 1000, 1, &parts(&[("a", 0)]), V2)
        .await
        .unwrap();
    f.host.fail_markers.store(2, Ordering::SeqCst);
    c.end_txn(ID, 1000, 1, true, V2).await.unwrap();
    assert_eq!(c.describe(ID).await.unwrap().state, "PrepareCommit");
    c.add_partitions(ID, 1000, 2, &parts(&[("b", 0)]), V2)
        .await
        .unwrap();
    assert_eq!(c.describe(ID).await.unwrap().state, "Ongoing");
    assert_eq!(c.end_txn(ID, 1000, 2, false, V2).await, Ok((1000, 3)));
    wait_state(c, TxnStatus::CompleteAbort).await;
    let last = f.host.markers.lock().last().cloned().unwrap();
    assert!(!last.commit);
    assert_eq!(
        (last.producer_epoch, last.partitions),
        (3, parts(&[("b", 0)]))
    );
    // A transaction that added nothing can be aborted (no marker is needed), not committed.
    assert_eq!(
        c.end_txn(ID, 1000, 3, true, V2).await,
        Err(codes::INVALID_TXN_STATE)
    );
    assert_eq!(c.end_txn(ID, 1000, 3, false, V2).await, Ok((1000, 4)));
    wait_state(c, TxnStatus::CompleteAbort).await;
    assert!(f.host.markers.lock().last().unwrap().partitions.is_empty());

    // A coordinator that takes the partition over still recognises the retry.
    c.unload_partition(c.partition_for(ID));
    let (_, next) = start(f.log.clone(), 1, 0);
    assert_eq!(next.end_txn(ID, 1000, 3, false, V2).await, Ok((1000, 4)));
    assert_eq!(next.describe(ID).await.unwrap().producer_epoch, 4);
}

#[tokio::test]
async fn at_transaction_version_2_an_exhausted_epoch_moves_to_a_new_producer_id() {
    let f = fixture();
    // An id whose producer is one bump from the last epoch, as a replay finds it.
    let almost = TxnValue {
        producer_id: 7,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: i16::MAX - 1,
        timeout_ms: 60_000,
        status: TxnStatus::Ongoing,
        partitions: vec![("a".into(), vec![0])],
        last_update_ms: now_ms(),
        start_ms: now_ms(),
        client_version: V2,
    };
    f.host
        .append(0, 0, encode_key(ID), Some(almost.encode()))
        .await
        .unwrap();
    f.coordinator
        .unload_partition(f.coordinator.partition_for(ID));
    let (host, c) = start(f.log.clone(), 1, 0);
    assert_eq!(
        c.end_txn(ID, 7, i16::MAX - 1, true, V2).await,
        Ok((1000, 0))
    );
    wait_state(&c, TxnStatus::CompleteCommit).await;
    let m = host.markers.lock()[0].clone();
    assert_eq!((m.producer_id, m.producer_epoch), (7, i16::MAX));
    let d = c.describe(ID).await.unwrap();
    assert_eq!((d.producer_id, d.producer_epoch), (1000, 0));
    // The retry under the old id is answered with the new one.
    assert_eq!(
        c.end_txn(ID, 7, i16::MAX - 1, true, V2).await,
        Ok((1000, 0))
    );
    c.add_partitions(ID, 1000, 0, &parts(&[("a", 0)]), V2)
        .await
        .unwrap();
}
