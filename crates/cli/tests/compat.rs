//! Single-node behaviours librdkafka's own test suite checks (compat/librdkafka), each as
//! raw Kafka requests against the real binary: commits for unknown topics, KIP-467's
//! per-record produce errors, manual replica assignments, the topic-level
//! `compression.type`, group configs in DescribeConfigs, and KIP-430's authorized
//! operations.

mod common;

use std::net::TcpStream;

use bytes::Bytes;
use common::{call, Server};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_types::batch;
use strom_types::compression::Compression;
use strom_types::record::BatchBuilder;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_RECORD: i16 = 87;
const INVALID_REQUEST: i16 = 42;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;

fn name(n: &str) -> TopicName {
    TopicName(StrBytes::from_string(n.to_string()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn create_topics(conn: &mut TcpStream, topics: Vec<CreatableTopic>) -> CreateTopicsResponse {
    call(
        conn,
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(topics),
    )
}

fn topic(n: &str, partitions: i32) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name(n))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
}

fn with_config(t: CreatableTopic, key: &str, value: &str) -> CreatableTopic {
    let mut t = t;
    t.configs.push(
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_string(key.into()))
            .with_value(Some(StrBytes::from_string(value.into()))),
    );
    t
}

fn produce(conn: &mut TcpStream, topic: &str, records: Vec<u8>) -> ProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])]);
    call(conn, ApiKey::Produce, 9, &req)
}

fn fetch_all(conn: &mut TcpStream, topic: &str) -> Bytes {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let r: FetchResponse = call(conn, ApiKey::Fetch, 12, &req);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.records.clone().unwrap_or_default()
}

/// FindCoordinator for a group, which creates `__consumer_offsets` on first use.
fn find_coordinator(conn: &mut TcpStream, group: &str) {
    let r: FindCoordinatorResponse = call(
        conn,
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![StrBytes::from_string(group.into())]),
    );
    assert_eq!(r.coordinators[0].error_code, 0);
}

fn describe_configs(
    conn: &mut TcpStream,
    resource_type: i8,
    resource: &str,
) -> Vec<(String, String)> {
    let r: DescribeConfigsResponse = call(
        conn,
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(resource.into()))]),
    );
    let result = &r.results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    result
        .configs
        .iter()
        .map(|c| {
            let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (c.name.to_string(), value)
        })
        .collect()
}

#[test]
fn offset_commits_for_unknown_topics_and_partitions_are_refused_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["auto.create.topics.enable=false"]);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    assert_eq!(
        create_topics(&mut conn, vec![topic("real", 2)]).topics[0].error_code,
        0
    );
    find_coordinator(&mut conn, "g");
    let part = |p: i32| {
        OffsetCommitRequestPartition::default()
            .with_partition_index(p)
            .with_committed_offset(5)
            .with_committed_leader_epoch(-1)
            .with_committed_metadata(Some(StrBytes::from_static_str("")))
    };
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(name("real"))
                .with_partitions(vec![part(0), part(7)]),
            OffsetCommitRequestTopic::default()
                .with_name(name("nonexistent"))
                .with_partitions(vec![part(0), part(1)]),
        ]);
    // The coordinator may still be loading its partition on the first try.
    let mut r: OffsetCommitResponse = call(&mut conn, ApiKey::OffsetCommit, 8, &req);
    for _ in 0..50 {
        if r.topics[0].partitions[0].error_code == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        r = call(&mut conn, ApiKey::OffsetCommit, 8, &req);
    }
    let codes: Vec<Vec<i16>> = r
        .topics
        .iter()
        .map(|t| t.partitions.iter().map(|p| p.error_code).collect())
        .collect();
    assert_eq!(
        codes,
        vec![
            vec![0, UNKNOWN_TOPIC_OR_PARTITION],
            vec![UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_OR_PARTITION]
        ]
    );
    // Only the valid partition was stored.
    let f: OffsetFetchResponse = call(
        &mut conn,
        ApiKey::OffsetFetch,
        7,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(None),
    );
    let stored: Vec<(String, i32, i64)> = f
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.committed_offset))
        })
        .collect();
    assert_eq!(stored, vec![("real".to_string(), 0, 5)]);
}

#[test]
fn keyless_records_on_a_compacted_topic_are_named_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    let t = with_config(topic("compacted", 1), "cleanup.policy", "compact");
    assert_eq!(create_topics(&mut conn, vec![t]).topics[0].error_code, 0);
    // Ten records, every fourth without a key, in one compressed batch.
    let mut b = BatchBuilder::new(Compression::Zstd);
    for i in 0..10 {
        let key = format!("k{i}");
        let key = (i % 4 != 0).then_some(key.as_bytes());
        b.append(now_ms(), key, Some(b"v"), &[]);
    }
    let r = produce(&mut conn, "compacted", b.build(0).unwrap());
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, INVALID_RECORD);
    let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, [0, 4, 8]);
    assert!(p.record_errors.iter().all(|e| e
        .batch_index_error_message
        .as_ref()
        .is_some_and(|m| m.contains("key"))));
    assert!(p.error_message.is_some());
    // Nothing of the batch was written; a batch with keys is.
    let mut b = BatchBuilder::new(Compression::None);
    b.append(now_ms(), Some(b"k"), Some(b"v"), &[]);
    let r = produce(&mut conn, "compacted", b.build(0).unwrap());
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    assert!(p.record_errors.is_empty());
}

#[test]
fn manual_replica_assignments_naming_this_node_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["node.id=3"]);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    let assigned = |n: &str, partitions: &[(i32, Vec<i32>)]| {
        CreatableTopic::default()
            .with_name(name(n))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(
                partitions
                    .iter()
                    .map(|(p, brokers)| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(*p)
                            .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                    })
                    .collect(),
            )
    };
    let mut both = assigned("both", &[(0, vec![3])]);
    both.num_partitions = 2;
    let r = create_topics(
        &mut conn,
        vec![
            assigned("manual", &[(1, vec![3]), (0, vec![3])]),
            assigned("elsewhere", &[(0, vec![4])]),
            assigned("twice", &[(0, vec![3, 3])]),
            assigned("gap", &[(0, vec![3]), (2, vec![3])]),
            both,
        ],
    );
    let results: Vec<(String, i16, i32, i16)> = r
        .topics
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.error_code,
                t.num_partitions,
                t.replication_factor,
            )
        })
        .collect();
    assert_eq!(
        results,
        vec![
            ("manual".into(), 0, 2, 1),
            ("elsewhere".into(), INVALID_REPLICA_ASSIGNMENT, -1, -1),
            ("twice".into(), INVALID_REPLICA_ASSIGNMENT, -1, -1),
            ("gap".into(), INVALID_REPLICA_ASSIGNMENT, -1, -1),
            ("both".into(), INVALID_REQUEST, -1, -1),
        ]
    );

    // CreatePartitions with an assignment per new partition.
    let grow = |count: i32, brokers: Vec<Vec<i32>>| {
        let r: CreatePartitionsResponse = call(
            &mut TcpStream::connect(&s.addr).unwrap(),
            ApiKey::CreatePartitions,
            3,
            &CreatePartitionsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(name("manual"))
                    .with_count(count)
                    .with_assignments(Some(
                        brokers
                            .into_iter()
                            .map(|b| {
                                CreatePartitionsAssignment::default()
                                    .with_broker_ids(b.into_iter().map(BrokerId).collect())
                            })
                            .collect(),
                    ))]),
        );
        r.results[0].error_code
    };
    assert_eq!(
        grow(4, vec![vec![3]]),
        INVALID_REPLICA_ASSIGNMENT,
        "one assignment for two"
    );
    assert_eq!(
        grow(3, vec![vec![9]]),
        INVALID_REPLICA_ASSIGNMENT,
        "unknown broker"
    );
    assert_eq!(grow(4, vec![vec![3], vec![3]]), 0);
    assert_eq!(
        grow(5, vec![]),
        0,
        "an empty list places them as no list does"
    );
    let m: MetadataResponse = call(
        &mut conn,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("manual")))
        ])),
    );
    let replicas: Vec<Vec<i32>> = m.topics[0]
        .partitions
        .iter()
        .map(|p| p.replica_nodes.iter().map(|b| b.0).collect())
        .collect();
    assert_eq!(replicas, vec![vec![3]; 5]);
}

#[test]
fn a_topic_compression_type_recompresses_what_producers_send() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    let r = create_topics(
        &mut conn,
        vec![
            with_config(topic("zipped", 1), "compression.type", "gzip"),
            with_config(topic("bad", 1), "compression.type", "brotli"),
        ],
    );
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[1].error_code, 40, "INVALID_CONFIG");
    let configs = describe_configs(&mut conn, 2, "zipped");
    assert!(
        configs.contains(&("compression.type".into(), "gzip".into())),
        "{configs:?}"
    );

    // An uncompressed batch and an lz4 one are both stored as gzip, records unchanged.
    let mut values = Vec::new();
    for codec in [Compression::None, Compression::Lz4, Compression::Gzip] {
        let mut b = BatchBuilder::new(codec).producer(-1, -1, -1);
        for i in 0..3 {
            let v = format!("{codec}-{i}");
            b.append(
                now_ms(),
                Some(b"k"),
                Some(v.as_bytes()),
                &[(b"h", Some(b"x"))],
            );
            values.push(v);
        }
        let r = produce(&mut conn, "zipped", b.build(0).unwrap());
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let stored = fetch_all(&mut conn, "zipped");
    let mut got = Vec::new();
    for b in batch::batches(&stored) {
        let b = b.unwrap();
        b.validate_crc().unwrap();
        assert_eq!(b.header().compression().unwrap(), Compression::Gzip);
        for r in b.records(1 << 20).unwrap().iter() {
            let r = r.unwrap();
            assert_eq!(r.headers().count(), 1);
            got.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(got, values);
    let offsets: Vec<i64> = batch::batches(&stored)
        .map(|b| b.unwrap().header().base_offset)
        .collect();
    assert_eq!(offsets, [0, 3, 6]);

    // Back to the producer's codec: batches are stored as they arrive again.
    let r: IncrementalAlterConfigsResponse = call(
        &mut conn,
        ApiKey::IncrementalAlterConfigs,
        1,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("zipped"))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(StrBytes::from_static_str("compression.type"))
                        .with_config_operation(0)
                        .with_value(Some(StrBytes::from_static_str("producer"))),
                ]),
        ]),
    );
    assert_eq!(r.responses[0].error_code, 0);
    let mut b = BatchBuilder::new(Compression::Snappy);
    b.append(now_ms(), Some(b"k"), Some(b"snappy"), &[]);
    let sent = b.build(0).unwrap();
    assert_eq!(
        produce(&mut conn, "zipped", sent).responses[0].partition_responses[0].error_code,
        0
    );
    let stored = fetch_all(&mut conn, "zipped");
    let last = batch::batches(&stored).last().unwrap().unwrap();
    assert_eq!(last.header().compression().unwrap(), Compression::Snappy);
}

#[test]
fn group_configs_and_authorized_operations_are_described() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["group.consumer.session.timeout.ms=50000"]);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    // KIP-848 group configs, for a group that does not exist yet as for any other.
    let configs = describe_configs(&mut conn, 32, "no-such-group");
    assert!(configs.contains(&("consumer.session.timeout.ms".into(), "50000".into())));
    assert!(configs.contains(&("consumer.heartbeat.interval.ms".into(), "5000".into())));

    // Without an authorizer every operation of the resource type is allowed (KIP-430).
    assert_eq!(
        create_topics(&mut conn, vec![topic("ops", 1)]).topics[0].error_code,
        0
    );
    let metadata = |conn: &mut TcpStream, include: bool| -> i32 {
        let m: MetadataResponse = call(
            conn,
            ApiKey::Metadata,
            12,
            &MetadataRequest::default()
                .with_include_topic_authorized_operations(include)
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(name("ops")))
                ])),
        );
        m.topics[0].topic_authorized_operations
    };
    // READ WRITE CREATE DELETE ALTER DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS.
    let topic_ops: i32 = [3, 4, 5, 6, 7, 8, 10, 11].iter().map(|b| 1 << b).sum();
    assert_eq!(metadata(&mut conn, true), topic_ops);
    assert_eq!(metadata(&mut conn, false), i32::MIN, "not asked: INT32_MIN");

    let c: DescribeClusterResponse = call(
        &mut conn,
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
    );
    // CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE_CONFIGS ALTER_CONFIGS IDEMPOTENT_WRITE.
    let cluster_ops: i32 = [5, 7, 8, 9, 10, 11, 12].iter().map(|b| 1 << b).sum();
    assert_eq!(c.cluster_authorized_operations, cluster_ops);

    let g: DescribeGroupsResponse = call(
        &mut conn,
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_static_str("g"))])
            .with_include_authorized_operations(true),
    );
    // READ DELETE DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS.
    let group_ops: i32 = [3, 6, 8, 10, 11].iter().map(|b| 1 << b).sum();
    assert_eq!(g.groups[0].authorized_operations, group_ops);
}

fn incremental_alter(
    conn: &mut TcpStream,
    resource_type: i8,
    resource: &str,
    ops: &[(&str, i8, &str)],
) -> i16 {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let r: IncrementalAlterConfigsResponse = call(
        conn,
        ApiKey::IncrementalAlterConfigs,
        1,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(resource.into()))
                .with_configs(
                    ops.iter()
                        .map(|(k, op, v)| {
                            AlterableConfig::default()
                                .with_name(StrBytes::from_string(k.to_string()))
                                .with_config_operation(*op)
                                .with_value(Some(StrBytes::from_string(v.to_string())))
                        })
                        .collect(),
                ),
        ]),
    );
    r.responses[0].error_code
}

fn keyless(conn: &mut TcpStream, topic: &str) -> i16 {
    let mut b = BatchBuilder::new(Compression::None);
    b.append(now_ms(), None, Some(b"v"), &[]);
    produce(conn, topic, b.build(0).unwrap()).responses[0].partition_responses[0].error_code
}

#[test]
fn dynamic_broker_configs_change_topic_defaults_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    assert_eq!(
        create_topics(&mut conn, vec![topic("plain", 1)]).topics[0].error_code,
        0
    );
    assert_eq!(keyless(&mut conn, "plain"), 0);
    // APPEND starts from the value in effect (the default `delete`).
    let append = [
        ("log.cleanup.policy", 2, "compact"),
        ("background.threads", 0, "9"),
    ];
    assert_eq!(incremental_alter(&mut conn, 4, "1", &append), 0);
    let broker = describe_configs(&mut conn, 4, "1");
    assert!(broker.contains(&("log.cleanup.policy".into(), "delete,compact".into())));
    assert!(broker.contains(&("background.threads".into(), "9".into())));
    // Properties that only a restart changes are read-only; dynamic ones are not.
    let r: DescribeConfigsResponse = call(
        &mut conn,
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("1"))]),
    );
    let read_only = |name: &str| {
        let c = r.results[0]
            .configs
            .iter()
            .find(|c| c.name.as_str() == name);
        c.map(|c| c.read_only)
            .unwrap_or_else(|| panic!("{name} is not described"))
    };
    assert!(read_only("advertised.listeners"));
    assert!(!read_only("log.cleanup.policy"));
    let topic_view = describe_configs(&mut conn, 2, "plain");
    assert!(topic_view.contains(&("cleanup.policy".into(), "compact,delete".into())));
    // The topic has no override of its own, so it is compacted now.
    assert_eq!(keyless(&mut conn, "plain"), INVALID_RECORD);
    // Not dynamic, or not valid: refused, nothing changes.
    assert_eq!(
        incremental_alter(&mut conn, 4, "1", &[("log.dirs", 0, "/x")]),
        INVALID_REQUEST
    );
    assert_eq!(
        incremental_alter(&mut conn, 4, "1", &[("log.cleanup.policy", 0, "shred")]),
        40
    );
    assert_eq!(
        incremental_alter(&mut conn, 4, "7", &[("background.threads", 0, "2")]),
        INVALID_REQUEST
    );
    drop(conn);
    s.stop();

    // The dynamic config is in the metadata log: still in effect after a restart.
    let s = Server::start(dir.path(), &[]);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    assert_eq!(keyless(&mut conn, "plain"), INVALID_RECORD);
    let subtract = [
        ("log.cleanup.policy", 3, "compact"),
        ("background.threads", 1, ""),
    ];
    assert_eq!(incremental_alter(&mut conn, 4, "1", &subtract), 0);
    assert_eq!(keyless(&mut conn, "plain"), 0);
    let broker = describe_configs(&mut conn, 4, "1");
    assert!(!broker.iter().any(|(k, _)| k == "background.threads"));
}

#[test]
fn group_configs_set_a_kip848_groups_session_and_heartbeat() {
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    let set = [
        ("consumer.session.timeout.ms", 0, "50000"),
        ("consumer.heartbeat.interval.ms", 0, "7000"),
    ];
    assert_eq!(incremental_alter(&mut conn, 32, "tuned", &set), 0);
    let configs = describe_configs(&mut conn, 32, "tuned");
    assert!(configs.contains(&("consumer.session.timeout.ms".into(), "50000".into())));
    let unknown = [("share.record.lock.duration.ms", 0, "1")];
    assert_eq!(
        incremental_alter(&mut conn, 32, "tuned", &unknown),
        40,
        "INVALID_CONFIG"
    );

    find_coordinator(&mut conn, "tuned");
    let heartbeat = |conn: &mut TcpStream, group: &'static str| {
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str(group)))
            .with_member_id(StrBytes::from_string(uuid_like(group)))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![name("t")]))
            .with_topic_partitions(Some(Vec::<TopicPartitions>::new()));
        let mut r: ConsumerGroupHeartbeatResponse;
        let mut tries = 0;
        loop {
            r = call(conn, ApiKey::ConsumerGroupHeartbeat, 1, &req);
            tries += 1;
            // The coordinator may still be loading its partition on the first try.
            if r.error_code == 0 || tries == 50 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        r.heartbeat_interval_ms
    };
    assert_eq!(heartbeat(&mut conn, "tuned"), 7000);
    assert_eq!(
        heartbeat(&mut conn, "untuned"),
        5000,
        "group.consumer.heartbeat.interval.ms"
    );
}

/// A member id in the shape KIP-1082 clients choose (22 characters).
fn uuid_like(seed: &str) -> String {
    format!("{seed:_<22}")
}

#[test]
fn describe_topic_partitions_pages_through_partitions_with_a_cursor() {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["auto.create.topics.enable=true"]);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    let r = create_topics(&mut conn, vec![topic("pa", 3), topic("pb", 2)]);
    assert!(r.topics.iter().all(|t| t.error_code == 0));
    let page = |conn: &mut TcpStream, cursor: Option<(String, i32)>| {
        let r: DescribeTopicPartitionsResponse = call(
            conn,
            ApiKey::DescribeTopicPartitions,
            0,
            &DescribeTopicPartitionsRequest::default()
                .with_topics(
                    ["pb", "pa", "nope"]
                        .iter()
                        .map(|n| TopicRequest::default().with_name(name(n)))
                        .collect(),
                )
                .with_response_partition_limit(2)
                .with_cursor(cursor.map(|(t, p)| {
                    Cursor::default()
                        .with_topic_name(name(&t))
                        .with_partition_index(p)
                })),
        );
        let got: Vec<(String, i16, Vec<i32>)> = r
            .topics
            .iter()
            .map(|t| {
                let n = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
                let ps = t.partitions.iter().map(|p| p.partition_index).collect();
                (n, t.error_code, ps)
            })
            .collect();
        let next = r
            .next_cursor
            .map(|c| (c.topic_name.to_string(), c.partition_index));
        (got, next)
    };
    // Name order, two partitions a page; a topic that does not exist is named, not created.
    let (first, next) = page(&mut conn, None);
    assert_eq!(
        first,
        vec![
            ("nope".into(), UNKNOWN_TOPIC_OR_PARTITION, vec![]),
            ("pa".into(), 0, vec![0, 1])
        ]
    );
    assert_eq!(next, Some(("pa".into(), 2)));
    let (second, next) = page(&mut conn, next);
    assert_eq!(
        second,
        vec![("pa".into(), 0, vec![2]), ("pb".into(), 0, vec![0])]
    );
    assert_eq!(next, Some(("pb".into(), 1)));
    let (third, next) = page(&mut conn, next);
    assert_eq!(third, vec![("pb".into(), 0, vec![1])]);
    assert_eq!(next, None);
    let m: MetadataResponse = call(
        &mut conn,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    assert!(!m
        .topics
        .iter()
        .any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "nope")));
}
