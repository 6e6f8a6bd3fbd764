//! The native client's transactions against the real broker: a transactional producer
//! commits and aborts across partitions, read back by the native read_committed and
//! read_uncommitted consumers; offsets committed in a transaction take effect only with it;
//! a second producer with the same transactional.id fences the first (a fatal error).
//! The native producer speaks transaction version 2 (KIP-890 part 2) with Strom, as a
//! Kafka 4 client does; the raw-protocol tests drive both versions.

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
    // Transaction version 2: every one of the three ends bumped the epoch.
    let d = admin.describe_transaction("native-1").await.unwrap();
    assert_eq!(d.producer_epoch, 3, "{d:?}");
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

fn st(v: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(v.to_string())
}

fn create_topic(conn: &mut std::net::TcpStream, name: &str, partitions: i32) {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::*;
    let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(st(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(1)]);
    let r: CreateTopicsResponse = common::call(conn, ApiKey::CreateTopics, 5, &create);
    assert_eq!(r.topics[0].error_code, 0);
}

/// One batch to `(topic, partition)` in a Produce of `version`: the partition's error code.
fn produce_raw(
    conn: &mut std::net::TcpStream,
    version: i16,
    transactional_id: Option<&str>,
    (topic, partition): (&str, i32),
    bytes: Vec<u8>,
) -> i16 {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::*;
    let req = ProduceRequest::default()
        .with_transactional_id(transactional_id.map(|i| TransactionalId(st(i))))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(st(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(bytes)))])]);
    let r: ProduceResponse = common::call(conn, ApiKey::Produce, version, &req);
    r.responses[0].partition_responses[0].error_code
}

/// A transactional batch of one record.
fn txn_batch(pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
    let mut b = strom_types::record::BatchBuilder::new(strom_types::compression::Compression::None)
        .producer(pid, epoch, seq)
        .transactional(true);
    b.append(0, None, Some(b"v"), &[]);
    b.build(0).unwrap()
}

/// Raw requests, as a misbehaving client sends them: each gets Kafka's error code and
/// changes nothing.
#[test]
fn bad_transactional_requests_get_kafkas_codes_and_change_nothing() {
    use std::net::TcpStream;

    use common::call;
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    use kafka_protocol::messages::*;
    use strom_types::control::{marker_batch, ControlType};

    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    create_topic(&mut conn, "raw", 1);
    let produce = |conn: &mut TcpStream, id: Option<&str>, bytes: Vec<u8>| -> i16 {
        produce_raw(conn, 8, id, ("raw", 0), bytes)
    };
    let log_end = |conn: &mut TcpStream| -> i64 {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                kafka_protocol::messages::list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(st("raw")))
                    .with_partitions(vec![
                    kafka_protocol::messages::list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
            ]);
        let r: ListOffsetsResponse = call(conn, ApiKey::ListOffsets, 7, &req);
        r.topics[0].partitions[0].offset
    };
    // The coordinator's topic is created by FindCoordinator; then InitProducerId succeeds.
    let find = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![st("raw-tx")]);
    let _: FindCoordinatorResponse = call(&mut conn, ApiKey::FindCoordinator, 4, &find);
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(st("raw-tx"))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let mut got = None;
    for _ in 0..100 {
        let r: InitProducerIdResponse = call(&mut conn, ApiKey::InitProducerId, 4, &init);
        if r.error_code == 0 {
            got = Some((r.producer_id.0, r.producer_epoch));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (pid, epoch) = got.expect("InitProducerId once the coordinator loaded");
    let before = log_end(&mut conn);

    // A transactional batch without the transactional id, and one to a partition that was
    // never added to a transaction.
    assert_eq!(produce(&mut conn, None, txn_batch(pid, epoch, 0)), 53);
    assert_eq!(
        produce(&mut conn, Some("raw-tx"), txn_batch(pid, epoch, 0)),
        48,
        "INVALID_TXN_STATE"
    );
    // A client's own marker in a produce.
    assert_eq!(
        produce(
            &mut conn,
            None,
            marker_batch(pid, epoch, ControlType::Commit, 0, 0)
        ),
        87,
        "INVALID_RECORD"
    );
    // EndTxn without a transaction.
    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(st("raw-tx")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(true);
    let r: EndTxnResponse = call(&mut conn, ApiKey::EndTxn, 3, &end);
    assert_eq!(r.error_code, 48, "INVALID_TXN_STATE");
    assert_eq!(log_end(&mut conn), before, "nothing was written");

    // A producer's transaction, then its stale epoch after a newer producer took the id.
    let add = |epoch: i16| {
        AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(st("raw-tx")))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(st("raw")))
                .with_partitions(vec![0])])
    };
    let r: AddPartitionsToTxnResponse = call(&mut conn, ApiKey::AddPartitionsToTxn, 3, &add(epoch));
    assert_eq!(
        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    assert_eq!(
        produce(&mut conn, Some("raw-tx"), txn_batch(pid, epoch, 0)),
        0
    );
    let r: EndTxnResponse = call(&mut conn, ApiKey::EndTxn, 3, &end);
    assert_eq!(r.error_code, 0);
    let mut bumped = None;
    for _ in 0..100 {
        let r: InitProducerIdResponse = call(&mut conn, ApiKey::InitProducerId, 4, &init);
        if r.error_code == 0 {
            bumped = Some(r.producer_epoch);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(bumped, Some(epoch + 1));
    let r: AddPartitionsToTxnResponse = call(&mut conn, ApiKey::AddPartitionsToTxn, 3, &add(epoch));
    assert_eq!(
        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code, 90,
        "PRODUCER_FENCED"
    );
    let r: AddPartitionsToTxnResponse = call(&mut conn, ApiKey::AddPartitionsToTxn, 1, &add(epoch));
    assert_eq!(
        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code, 47,
        "INVALID_PRODUCER_EPOCH before KIP-588"
    );
    let at = log_end(&mut conn);
    assert_eq!(
        produce(&mut conn, Some("raw-tx"), txn_batch(pid, epoch, 1)),
        47,
        "a produce with the stale epoch"
    );
    // A marker from an older coordinator than the one that wrote the last marker.
    let stale = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch + 1)
        .with_transaction_result(false)
        .with_coordinator_epoch(-1)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(TopicName(st("raw")))
            .with_partition_indexes(vec![0])])]);
    let r: WriteTxnMarkersResponse = call(&mut conn, ApiKey::WriteTxnMarkers, 1, &stale);
    assert_eq!(
        r.markers[0].topics[0].partitions[0].error_code, 52,
        "TRANSACTION_COORDINATOR_FENCED"
    );
    assert_eq!(log_end(&mut conn), at, "nothing was written");
}

/// KIP-890 part 2 on the wire, as a Kafka 4 producer speaks it: the feature in ApiVersions
/// v4, a Produce v12 and a TxnOffsetCommit v5 that add their own partitions, an EndTxn v5
/// that answers a bumped epoch, which fences a late write of the finished transaction.
#[test]
fn transaction_version_2_on_the_wire() {
    use std::net::TcpStream;

    use common::call;
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::*;

    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let mut conn = TcpStream::connect(&s.addr).unwrap();

    let v4: ApiVersionsResponse = call(
        &mut conn,
        ApiKey::ApiVersions,
        4,
        &ApiVersionsRequest::default(),
    );
    let supported = v4
        .supported_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .map(|f| (f.min_version, f.max_version));
    assert_eq!(supported, Some((0, 2)));
    let finalized = v4
        .finalized_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .map(|f| f.max_version_level);
    assert_eq!(finalized, Some(2));
    let v3: ApiVersionsResponse = call(
        &mut conn,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    assert!(v3.supported_features.is_empty() && v3.finalized_features.is_empty());

    create_topic(&mut conn, "tv2", 2);
    let produce = |conn: &mut TcpStream, version: i16, partition: i32, bytes: Vec<u8>| -> i16 {
        produce_raw(conn, version, Some("tv2-tx"), ("tv2", partition), bytes)
    };
    // Retries what a coordinator answers while it loads or finishes the last transaction.
    fn until<T>(what: &str, mut f: impl FnMut() -> (i16, T)) -> (i16, T) {
        for _ in 0..200 {
            let (code, out) = f();
            if ![14, 15, 16, 51].contains(&code) {
                return (code, out);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{what} never answered");
    }
    for key_type in [0i8, 1] {
        let find = FindCoordinatorRequest::default()
            .with_key_type(key_type)
            .with_coordinator_keys(vec![st(if key_type == 0 { "tv2-g" } else { "tv2-tx" })]);
        let _: FindCoordinatorResponse = call(&mut conn, ApiKey::FindCoordinator, 4, &find);
    }
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(st("tv2-tx"))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let (code, (pid, epoch)) = until("InitProducerId", || {
        let r: InitProducerIdResponse = call(&mut conn, ApiKey::InitProducerId, 5, &init);
        (r.error_code, (r.producer_id.0, r.producer_epoch))
    });
    assert_eq!(code, 0);

    // Produce v12 adds its partition; v11 still needs AddPartitionsToTxn.
    assert_eq!(produce(&mut conn, 12, 0, txn_batch(pid, epoch, 0)), 0);
    assert_eq!(
        produce(&mut conn, 11, 1, txn_batch(pid, epoch, 0)),
        48,
        "INVALID_TXN_STATE"
    );
    // Likewise TxnOffsetCommit v5 adds the group's partition, v4 needs AddOffsetsToTxn.
    let offsets = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(st("tv2-tx")))
        .with_group_id(GroupId(st("tv2-g")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(TopicName(st("in")))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(7)
                .with_committed_leader_epoch(-1)])]);
    let commit_offsets = |conn: &mut TcpStream, version: i16| {
        until("TxnOffsetCommit", || {
            let r: TxnOffsetCommitResponse = call(conn, ApiKey::TxnOffsetCommit, version, &offsets);
            (r.topics[0].partitions[0].error_code, ())
        })
        .0
    };
    assert_eq!(commit_offsets(&mut conn, 4), 48, "INVALID_TXN_STATE");
    assert_eq!(commit_offsets(&mut conn, 5), 0);
    let end_txn = |conn: &mut TcpStream, epoch: i16, commit: bool| {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(st("tv2-tx")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit);
        until("EndTxn", || {
            let r: EndTxnResponse = call(conn, ApiKey::EndTxn, 5, &req);
            (r.error_code, (r.producer_id.0, r.producer_epoch))
        })
    };
    assert_eq!(end_txn(&mut conn, epoch, true), (0, (pid, epoch + 1)));
    // Its retry (the answer was lost) gets the same answer.
    assert_eq!(end_txn(&mut conn, epoch, true), (0, (pid, epoch + 1)));
    // A late write of the committed transaction: its epoch is stale now.
    assert_eq!(
        produce(&mut conn, 12, 0, txn_batch(pid, epoch, 1)),
        47,
        "INVALID_PRODUCER_EPOCH"
    );
    // The next transaction, at the new epoch from sequence 0; its abort bumps again.
    assert_eq!(produce(&mut conn, 12, 1, txn_batch(pid, epoch + 1, 0)), 0);
    assert_eq!(end_txn(&mut conn, epoch + 1, false), (0, (pid, epoch + 2)));
    // The offset committed with the first transaction took effect.
    let fetch = OffsetFetchRequest::default()
        .with_group_id(GroupId(st("tv2-g")))
        .with_topics(Some(vec![
            kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(st("in")))
                .with_partition_indexes(vec![0]),
        ]));
    let r: OffsetFetchResponse = call(&mut conn, ApiKey::OffsetFetch, 5, &fetch);
    assert_eq!(r.topics[0].partitions[0].committed_offset, 7);
}
