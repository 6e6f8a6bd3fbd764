//! Raw Kafka protocol against the real binary: the per-partition error codes Produce returns
//! for bad batches, idempotent producers (InitProducerId, retries, sequence gaps) across a
//! restart, ApiVersions for a too-new version, and idle connections closing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{call, Server};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest,
    ProduceResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use strom_types::compression::Compression;
use strom_types::record::BatchBuilder;

fn produce(conn: &mut TcpStream, topic: &str, acks: i16, records: Vec<u8>) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])]);
    let resp: ProduceResponse = call(conn, ApiKey::Produce, 8, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn batch(n: usize, value: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None);
    for _ in 0..n {
        b.append(strom_types_now(), Some(b"k"), Some(&vec![b'v'; value]), &[]);
    }
    b.build(0).unwrap()
}

fn create_topic(conn: &mut TcpStream, name: &'static str) {
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(name)))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
    let r: kafka_protocol::messages::CreateTopicsResponse =
        call(conn, ApiKey::CreateTopics, 5, &create);
    assert_eq!(r.topics[0].error_code, 0);
}

fn init_producer_id(conn: &mut TcpStream, version: i16) -> (i16, i64, i16) {
    let r: InitProducerIdResponse = call(
        conn,
        ApiKey::InitProducerId,
        version,
        &InitProducerIdRequest::default()
            .with_transaction_timeout_ms(60_000)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1),
    );
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

fn idempotent_batch(pid: i64, seq: i32, n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None).producer(pid, 0, seq);
    for i in 0..n {
        b.append(
            strom_types_now(),
            Some(format!("{seq}-{i}").as_bytes()),
            Some(b"v"),
            &[],
        );
    }
    b.build(0).unwrap()
}

fn strom_types_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn produce_errors_carry_kafkas_codes_and_the_connection_survives() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["message.max.bytes=10000"]);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("codes")))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
    let _: kafka_protocol::messages::CreateTopicsResponse =
        call(&mut conn, ApiKey::CreateTopics, 5, &create);

    assert_eq!(produce(&mut conn, "codes", 1, batch(3, 10)), (0, 0));
    let mut corrupt = batch(2, 10);
    let n = corrupt.len();
    corrupt[n - 2] ^= 0xff;
    assert_eq!(
        produce(&mut conn, "codes", 1, corrupt).0,
        2,
        "CORRUPT_MESSAGE"
    );
    assert_eq!(
        produce(&mut conn, "codes", 1, batch(1, 20_000)).0,
        10,
        "MESSAGE_TOO_LARGE"
    );
    assert_eq!(
        produce(&mut conn, "codes", 5, batch(1, 10)).0,
        21,
        "INVALID_REQUIRED_ACKS"
    );
    assert_eq!(
        produce(&mut conn, "nope", 1, batch(1, 10)).0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let mut bad_delta = BatchBuilder::new(Compression::None);
    bad_delta.append_with_offset_delta(0, 1, Some(b"a"), None, &[]);
    bad_delta.append_with_offset_delta(5, 1, Some(b"a"), None, &[]);
    assert_eq!(
        produce(&mut conn, "codes", 1, bad_delta.build(0).unwrap()).0,
        87,
        "INVALID_RECORD"
    );
    // Nothing bad was appended; good batches continue at the next offset.
    assert_eq!(produce(&mut conn, "codes", -1, batch(1, 10)), (0, 3));
}

#[test]
fn idempotent_producers_get_unique_ids_and_retries_are_not_written_twice() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    create_topic(&mut conn, "idem");
    let (code, pid, epoch) = init_producer_id(&mut conn, 4);
    assert_eq!((code, epoch), (0, 0));
    let (_, other, _) = init_producer_id(&mut conn, 0);
    assert_ne!(pid, other);

    assert_eq!(
        produce(&mut conn, "idem", -1, idempotent_batch(pid, 0, 3)),
        (0, 0)
    );
    assert_eq!(
        produce(&mut conn, "idem", -1, idempotent_batch(other, 0, 1)),
        (0, 3)
    );
    // A retry after a lost response: the first offsets, and nothing written twice.
    assert_eq!(
        produce(&mut conn, "idem", -1, idempotent_batch(pid, 0, 3)),
        (0, 0)
    );
    assert_eq!(
        produce(&mut conn, "idem", -1, idempotent_batch(pid, 5, 1)).0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    assert_eq!(
        produce(&mut conn, "idem", -1, idempotent_batch(pid, 3, 1)),
        (0, 4)
    );
    let mut two = idempotent_batch(pid, 4, 1);
    two.extend(idempotent_batch(pid, 5, 1));
    assert_eq!(
        produce(&mut conn, "idem", -1, two).0,
        87,
        "one batch per partition"
    );
    let mut txn = BatchBuilder::new(Compression::None)
        .producer(pid, 0, 4)
        .transactional(true);
    txn.append(strom_types_now(), None, Some(b"t"), &[]);
    assert_eq!(
        produce(&mut conn, "idem", -1, txn.build(0).unwrap()).0,
        53,
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED: transactional records need a transactional id"
    );
    drop(conn);
    drop(s);

    // After a kill -9 and restart: ids are never handed out twice and the sequences are known.
    let s = Server::start(dir.path(), &[]);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    let (_, third, _) = init_producer_id(&mut conn, 4);
    assert!(third != pid && third != other, "{third} reused");
    assert_eq!(
        produce(&mut conn, "idem", -1, idempotent_batch(pid, 3, 1)),
        (0, 4)
    );
    assert_eq!(
        produce(&mut conn, "idem", -1, idempotent_batch(pid, 5, 1)).0,
        45
    );
    assert_eq!(
        produce(&mut conn, "idem", -1, idempotent_batch(pid, 4, 1)),
        (0, 5)
    );
}

#[test]
fn too_new_api_versions_gets_v0_answer_and_idle_connections_close() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["connections.max.idle.ms=300"]);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    // ApiVersions v99: answered in v0 with UNSUPPORTED_VERSION and the list of APIs.
    let frame = [0, 18, 0, 99, 0, 0, 0, 9, 0, 0, 0]; // header v2: empty client id, no tags
    conn.write_all(&(frame.len() as i32).to_be_bytes()).unwrap();
    conn.write_all(&frame).unwrap();
    let mut size = [0u8; 4];
    conn.read_exact(&mut size).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    conn.read_exact(&mut body).unwrap();
    let mut body = Bytes::from(body);
    let _ = ResponseHeader::decode(&mut body, 0).unwrap();
    let resp = kafka_protocol::messages::ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(resp.error_code, 35);
    assert!(resp
        .api_keys
        .iter()
        .any(|k| k.api_key == 0 && k.max_version >= 3));
    // Then silence: the broker closes the connection after connections.max.idle.ms.
    let started = Instant::now();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(conn.read(&mut buf).unwrap(), 0, "closed by the broker");
    assert!(started.elapsed() < Duration::from_secs(5));
}
