//! Proof that the guard accepts every real request and stops the allocation attack.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use proptest::prelude::*;

use super::*;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topic(v: &str) -> TopicName {
    TopicName(s(v))
}

fn uuid(n: u8) -> uuid::Uuid {
    uuid::Uuid::from_bytes([n; 16])
}

fn enc<T: Encodable>(m: &T, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    m.encode(&mut buf, version).unwrap();
    buf.to_vec()
}

/// Whether kafka-protocol decodes a body at a version.
type DecodeCheck = fn(&[u8], i16) -> bool;

/// A populated request of every served API at `version`, encoded; and a decoder check.
fn sample(api_key: i16, v: i16) -> (Vec<u8>, DecodeCheck) {
    fn dec<T: Decodable>(b: &[u8], v: i16) -> bool {
        T::decode(&mut Bytes::copy_from_slice(b), v).is_ok()
    }
    match api_key {
        0 => {
            let mut r = ProduceRequest::default();
            r.transactional_id = Some(TransactionalId(s("tx")));
            r.acks = -1;
            r.timeout_ms = 30000;
            r.topic_data = (0..2)
                .map(|t| {
                    let mut td = TopicProduceData::default();
                    if v <= 12 {
                        td.name = topic(&format!("t{t}"));
                    } else {
                        td.topic_id = uuid(t + 1);
                    }
                    td.partition_data = (0..2)
                        .map(|p| {
                            let mut pd = PartitionProduceData::default();
                            pd.index = p;
                            pd.records = Some(Bytes::from_static(&[1, 2, 3, 4, 5]));
                            pd
                        })
                        .collect();
                    td
                })
                .collect();
            (enc(&r, v), dec::<ProduceRequest>)
        }
        1 => {
            let mut r = FetchRequest::default();
            r.max_wait_ms = 500;
            r.min_bytes = 1;
            r.max_bytes = 1 << 20;
            r.session_epoch = -1;
            r.topics = (0..2)
                .map(|t| {
                    let mut ft = FetchTopic::default();
                    if v <= 12 {
                        ft.topic = topic("orders");
                    } else {
                        ft.topic_id = uuid(t + 1);
                    }
                    ft.partitions = (0..2)
                        .map(|p| {
                            let mut fp = FetchPartition::default();
                            fp.partition = p;
                            fp.fetch_offset = 1234;
                            fp.partition_max_bytes = 1 << 20;
                            fp
                        })
                        .collect();
                    ft
                })
                .collect();
            if v >= 7 {
                let mut ft = ForgottenTopic::default();
                if v <= 12 {
                    ft.topic = topic("gone");
                } else {
                    ft.topic_id = uuid(9);
                }
                ft.partitions = vec![1, 2, 3];
                r.forgotten_topics_data = vec![ft];
            }
            if v >= 11 {
                r.rack_id = s("rack-a");
            }
            if v >= 12 {
                r.cluster_id = Some(s("cluster"));
            }
            (enc(&r, v), dec::<FetchRequest>)
        }
        2 => {
            let mut r = ListOffsetsRequest::default();
            r.replica_id = BrokerId(-1);
            r.topics = (0..2)
                .map(|_| {
                    let mut t = ListOffsetsTopic::default();
                    t.name = topic("orders");
                    t.partitions = (0..2)
                        .map(|p| {
                            let mut lp = ListOffsetsPartition::default();
                            lp.partition_index = p;
                            lp.timestamp = -1;
                            lp
                        })
                        .collect();
                    t
                })
                .collect();
            (enc(&r, v), dec::<ListOffsetsRequest>)
        }
        3 => {
            let mut r = MetadataRequest::default();
            r.topics = Some(
                (0..2)
                    .map(|t| {
                        let mut mt = MetadataRequestTopic::default();
                        mt.name = Some(topic(&format!("topic-{t}")));
                        mt
                    })
                    .collect(),
            );
            if v >= 4 {
                r.allow_auto_topic_creation = true;
            }
            (enc(&r, v), dec::<MetadataRequest>)
        }
        18 => {
            let mut r = ApiVersionsRequest::default();
            if v >= 3 {
                r.client_software_name = s("librdkafka");
                r.client_software_version = s("2.0.2");
            }
            (enc(&r, v), dec::<ApiVersionsRequest>)
        }
        19 => {
            let mut r = CreateTopicsRequest::default();
            r.timeout_ms = 1000;
            r.topics = (0..2)
                .map(|t| {
                    let mut ct = CreatableTopic::default();
                    ct.name = topic(&format!("new-{t}"));
                    ct.num_partitions = -1;
                    ct.replication_factor = -1;
                    let mut a = CreatableReplicaAssignment::default();
                    a.broker_ids = vec![BrokerId(1), BrokerId(2)];
                    ct.assignments = vec![a];
                    let mut c = CreatableTopicConfig::default();
                    c.name = s("retention.ms");
                    c.value = Some(s("1000"));
                    ct.configs = vec![c];
                    ct
                })
                .collect();
            (enc(&r, v), dec::<CreateTopicsRequest>)
        }
        20 => {
            let mut r = DeleteTopicsRequest::default();
            r.timeout_ms = 1000;
            if v >= 6 {
                let mut t = DeleteTopicState::default();
                t.name = Some(topic("old"));
                r.topics = vec![t];
            } else {
                r.topic_names = vec![topic("a"), topic("b")];
            }
            (enc(&r, v), dec::<DeleteTopicsRequest>)
        }
        21 => {
            let mut r = DeleteRecordsRequest::default();
            let mut t = DeleteRecordsTopic::default();
            t.name = topic("orders");
            let mut p = DeleteRecordsPartition::default();
            p.offset = 10;
            t.partitions = vec![p.clone(), p];
            r.topics = vec![t];
            (enc(&r, v), dec::<DeleteRecordsRequest>)
        }
        32 => {
            let mut r = DescribeConfigsRequest::default();
            let mut res = DescribeConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s("orders");
            res.configuration_keys = Some(vec![s("retention.ms"), s("cleanup.policy")]);
            r.resources = vec![res];
            (enc(&r, v), dec::<DescribeConfigsRequest>)
        }
        33 => {
            let mut r = AlterConfigsRequest::default();
            let mut res = AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s("orders");
            let mut c = AlterableConfig::default();
            c.name = s("retention.ms");
            c.value = Some(s("5"));
            res.configs = vec![c];
            r.resources = vec![res];
            (enc(&r, v), dec::<AlterConfigsRequest>)
        }
        35 => {
            let mut r = DescribeLogDirsRequest::default();
            let mut t = DescribableLogDirTopic::default();
            t.topic = topic("orders");
            t.partitions = vec![0, 1];
            r.topics = Some(vec![t]);
            (enc(&r, v), dec::<DescribeLogDirsRequest>)
        }
        37 => {
            let mut r = CreatePartitionsRequest::default();
            let mut t = CreatePartitionsTopic::default();
            t.name = topic("orders");
            t.count = 4;
            let mut a = CreatePartitionsAssignment::default();
            a.broker_ids = vec![BrokerId(1)];
            t.assignments = Some(vec![a]);
            r.topics = vec![t];
            (enc(&r, v), dec::<CreatePartitionsRequest>)
        }
        44 => {
            use kafka_protocol::messages::incremental_alter_configs_request as iac;
            let mut r = IncrementalAlterConfigsRequest::default();
            let mut res = iac::AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s("orders");
            let mut c = iac::AlterableConfig::default();
            c.name = s("retention.ms");
            c.value = Some(s("5"));
            res.configs = vec![c];
            r.resources = vec![res];
            (enc(&r, v), dec::<IncrementalAlterConfigsRequest>)
        }
        60 => {
            let mut r = DescribeClusterRequest::default();
            r.include_cluster_authorized_operations = true;
            if v >= 1 {
                r.endpoint_type = 1;
            }
            (enc(&r, v), dec::<DescribeClusterRequest>)
        }
        other => panic!("no sample for {other}"),
    }
}

fn all_versions() -> Vec<(i16, i16)> {
    let mut out = Vec::new();
    for &k in guarded_api_keys() {
        let (lo, hi) = supported_versions(k).unwrap();
        for v in lo..=hi {
            out.push((k, v));
        }
    }
    out
}

#[test]
fn every_real_request_of_every_version_passes() {
    let cases = all_versions();
    assert!(cases.len() > 80);
    for (k, v) in cases {
        let (bytes, decodes) = sample(k, v);
        assert!(
            decodes(&bytes, v),
            "kafka-protocol decodes its own {k} v{v}"
        );
        match walk(k, v, &bytes) {
            // The schema accounts for every byte: a field missing from it would show here.
            Ok(used) => assert_eq!(used, bytes.len(), "api {k} v{v}: schema misses bytes"),
            Err(e) => panic!("api {k} v{v} refused: {e}"),
        }
    }
}

#[test]
fn the_allocation_attack_is_refused() {
    // DEPENDENCIES.md's reproduction: Metadata v4, topics count i32::MAX, nothing else.
    let body = i32::MAX.to_be_bytes();
    assert!(matches!(
        check_request(3, 4, &body),
        Err(GuardError::ImpossibleLength {
            field: "topics",
            ..
        })
    ));
    // A compact array at a flexible version (uvarint u32::MAX).
    let body = [0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(matches!(
        check_request(3, 12, &body),
        Err(GuardError::ImpossibleLength { .. })
    ));
    // A huge string length (Produce transactional id).
    let body = [0x7f, 0xff, 0, 1];
    assert!(matches!(
        check_request(0, 3, &body),
        Err(GuardError::ImpossibleLength { .. })
    ));
    // A huge count nested inside a struct array (Fetch partitions of the first topic).
    let (mut bytes, _) = sample(1, 4);
    // v4: replica_id, max_wait, min_bytes, max_bytes, isolation (17 bytes), topics count (4),
    // topic name (2 + 6), then the partitions count.
    bytes[29..33].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(matches!(
        check_request(1, 4, &bytes),
        Err(GuardError::ImpossibleLength {
            field: "partitions",
            ..
        })
    ));
    assert_eq!(check_request(999, 0, &[]), Err(GuardError::UnknownApi(999)));
    assert!(matches!(
        check_request(0, 2, &[]),
        Err(GuardError::UnsupportedVersion { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Mutated, truncated or length-bombed requests: whatever the guard lets through decodes
    /// without aborting the process (an abort would fail the whole test binary).
    #[test]
    fn whatever_passes_decodes_safely(
        case in 0usize..1000,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        bomb in proptest::option::of((any::<usize>(), prop_oneof![Just(0x7fu8), Just(0xffu8)])),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let cases = all_versions();
        let (k, v) = cases[case % cases.len()];
        let (mut bytes, decodes) = sample(k, v);
        for (pos, b) in edits {
            let n = bytes.len();
            if n > 0 {
                bytes[pos % n] = b;
            }
        }
        if let Some((pos, b)) = bomb {
            let n = bytes.len();
            if n >= 4 {
                let at = pos % (n - 3);
                bytes[at..at + 4].copy_from_slice(&[b, 0xff, 0xff, 0xff]);
            }
        }
        if let Some(c) = cut {
            let n = bytes.len();
            bytes.truncate(c % (n + 1));
        }
        if check_request(k, v, &bytes).is_ok() {
            let _ = decodes(&bytes, v);
        }
    }
}
