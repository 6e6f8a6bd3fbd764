//! Proof that the guard accepts every real request, reads the bytes exactly as `kafka-protocol`
//! decodes them, and stops the allocation attack (`DEPENDENCIES.md`, defect 1).

use std::collections::BTreeMap;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use proptest::prelude::*;

use super::*;

/// Measures the memory a closure holds at its peak, on this thread (a test-only allocator).
mod meter {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ON: Cell<bool> = const { Cell::new(false) };
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    fn note(delta: isize) {
        let _ = ON.try_with(|on| {
            if on.get() {
                let live = LIVE.get() + delta;
                LIVE.set(live);
                PEAK.set(PEAK.get().max(live));
            }
        });
    }

    struct Meter;

    // SAFETY: every call is forwarded to `System` unchanged; the counting touches only
    // const-initialised thread locals, which never allocate.
    unsafe impl GlobalAlloc for Meter {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size() as isize);
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note(layout.size() as isize);
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            note(-(layout.size() as isize));
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size as isize - layout.size() as isize);
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static METER: Meter = Meter;

    /// Runs `f`; returns its result and the most bytes it had allocated at once.
    pub fn peak<R>(f: impl FnOnce() -> R) -> (R, usize) {
        LIVE.set(0);
        PEAK.set(0);
        ON.set(true);
        let r = f();
        ON.set(false);
        (r, PEAK.get().max(0) as usize)
    }
}

/// Decoding may hold at most this many bytes per body byte (plus [`SLACK`]). The worst cases
/// are arrays of minimal elements: an empty compact string (1 byte) becomes a 32-byte
/// `StrBytes`, a LeaveGroup v4 member or an OffsetFetch v8 group (3 bytes) a ~120-byte struct,
/// i.e. 40x (measured in `amplification_is_bounded`).
const PER_BYTE: usize = 48;
const SLACK: usize = 4096;

fn s<T: From<StrBytes>>(v: &str) -> T {
    StrBytes::from_string(v.to_string()).into()
}

fn uuid(n: u8) -> uuid::Uuid {
    uuid::Uuid::from_bytes([n; 16])
}

/// An unknown tagged field, in flexible versions only (where it can be encoded).
fn tags(flexible: bool) -> BTreeMap<i32, Bytes> {
    let mut m = BTreeMap::new();
    if flexible {
        m.insert(1000, Bytes::from_static(b"xyz"));
    }
    m
}

/// kafka-protocol's decoder: `Some(bytes consumed)` if it decodes, and the peak memory.
type Decoder = fn(&[u8], i16) -> (Option<usize>, usize);

fn decoder<T: Decodable>(b: &[u8], v: i16) -> (Option<usize>, usize) {
    let mut buf = Bytes::copy_from_slice(b);
    meter::peak(|| {
        T::decode(&mut buf, v).ok().map(|decoded| {
            drop(decoded);
            b.len() - buf.remaining()
        })
    })
}

/// A request of one API at one version: populated, and all-default (nulls, empty arrays).
struct Sample {
    full: Vec<u8>,
    empty: Vec<u8>,
    decode: Decoder,
}

/// Whether `version` of `T` is flexible, by kafka-protocol's request header version (an
/// independent check of the schema's `flexible_from`).
fn is_flexible<T: Request>(v: i16) -> bool {
    T::header_version(v) >= 2
}

fn build<T: Request + Default>(v: i16, fill: impl FnOnce(&mut T, bool)) -> Sample {
    let flexible = is_flexible::<T>(v);
    let mut r = T::default();
    fill(&mut r, flexible);
    Sample {
        full: enc(&r, v),
        empty: enc(&T::default(), v),
        decode: decoder::<T>,
    }
}

fn enc<T: Encodable>(m: &T, v: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    if let Err(e) = m.encode(&mut buf, v) {
        panic!("{} v{v} does not encode: {e}", std::any::type_name::<T>());
    }
    buf.to_vec()
}

/// A populated request (two topics of two partitions, `Some` in nullable fields, every field
/// the version has, an unknown tagged field when flexible) of `api_key` at `v`.
fn sample(api_key: i16, v: i16) -> Sample {
    match api_key {
        18 => build(v, |r: &mut ApiVersionsRequest, fl| {
            if v >= 3 {
                r.client_software_name = s("librdkafka");
                r.client_software_version = s("2.0.2");
            }
            r.unknown_tagged_fields = tags(fl);
        }),
        3 => build(v, |r: &mut MetadataRequest, fl| {
            use metadata_request::MetadataRequestTopic;
            let topic = |t: u8| {
                let mut mt = MetadataRequestTopic::default();
                mt.name = Some(s(&format!("topic-{t}")));
                if v >= 10 {
                    mt.topic_id = uuid(t);
                }
                mt.unknown_tagged_fields = tags(fl);
                mt
            };
            r.topics = Some(vec![topic(1), topic(2)]);
            r.allow_auto_topic_creation = v < 4; // false from v4 on (true is the default)
            r.include_cluster_authorized_operations = (8..=10).contains(&v);
            r.include_topic_authorized_operations = v >= 8;
            r.unknown_tagged_fields = tags(fl);
        }),
        0 => build(v, |r: &mut ProduceRequest, fl| {
            use produce_request::{PartitionProduceData, TopicProduceData};
            r.transactional_id = Some(s("tx"));
            r.acks = -1;
            r.timeout_ms = 30000;
            r.topic_data = (0..2)
                .map(|t| {
                    let mut td = TopicProduceData::default();
                    if v <= 12 {
                        td.name = s(&format!("t{t}"));
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
            r.unknown_tagged_fields = tags(fl);
        }),
        1 => build(v, |r: &mut FetchRequest, fl| {
            use fetch_request::{FetchPartition, FetchTopic, ForgottenTopic, ReplicaState};
            if v <= 14 {
                r.replica_id = BrokerId(3);
            } else {
                let mut rs = ReplicaState::default();
                rs.replica_id = BrokerId(3);
                rs.replica_epoch = 7;
                r.replica_state = rs;
            }
            r.max_wait_ms = 500;
            r.min_bytes = 1;
            r.max_bytes = 1 << 20;
            r.isolation_level = 1;
            if v >= 7 {
                r.session_id = 9;
                r.session_epoch = 2;
            }
            r.topics = (0..2)
                .map(|t| {
                    let mut ft = FetchTopic::default();
                    if v <= 12 {
                        ft.topic = s("orders");
                    } else {
                        ft.topic_id = uuid(t + 1);
                    }
                    ft.partitions = (0..2)
                        .map(|p| {
                            let mut fp = FetchPartition::default();
                            fp.partition = p;
                            fp.current_leader_epoch = if v >= 9 { 4 } else { -1 };
                            fp.fetch_offset = 1234;
                            fp.last_fetched_epoch = if v >= 12 { 3 } else { -1 };
                            fp.log_start_offset = if v >= 5 { 10 } else { -1 };
                            fp.partition_max_bytes = 1 << 20;
                            if v >= 17 {
                                fp.replica_directory_id = uuid(5);
                            }
                            if v >= 18 {
                                fp.high_watermark = 99;
                            }
                            fp.unknown_tagged_fields = tags(fl);
                            fp
                        })
                        .collect();
                    ft
                })
                .collect();
            if v >= 7 {
                let mut ft = ForgottenTopic::default();
                if v <= 12 {
                    ft.topic = s("gone");
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
            r.unknown_tagged_fields = tags(fl);
        }),
        2 => build(v, |r: &mut ListOffsetsRequest, fl| {
            use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
            r.replica_id = BrokerId(-1);
            r.isolation_level = i8::from(v >= 2);
            r.topics = (0..2)
                .map(|_| {
                    let mut t = ListOffsetsTopic::default();
                    t.name = s("orders");
                    t.partitions = (0..2)
                        .map(|p| {
                            let mut lp = ListOffsetsPartition::default();
                            lp.partition_index = p;
                            lp.current_leader_epoch = if v >= 4 { 2 } else { -1 };
                            lp.timestamp = -1;
                            lp
                        })
                        .collect();
                    t
                })
                .collect();
            if v >= 10 {
                r.timeout_ms = 100;
            }
            r.unknown_tagged_fields = tags(fl);
        }),
        43 => build(v, |r: &mut ElectLeadersRequest, fl| {
            use elect_leaders_request::TopicPartitions;
            r.election_type = i8::from(v >= 1);
            r.topic_partitions = Some(
                (0..2)
                    .map(|t| {
                        let mut tp = TopicPartitions::default();
                        tp.topic = s(&format!("orders-{t}"));
                        tp.partitions = vec![0, 1, 2];
                        tp.unknown_tagged_fields = tags(fl);
                        tp
                    })
                    .collect(),
            );
            r.timeout_ms = 3000;
            r.unknown_tagged_fields = tags(fl);
        }),
        45 => build(v, |r: &mut AlterPartitionReassignmentsRequest, fl| {
            use alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
            r.timeout_ms = 30_000;
            r.allow_replication_factor_change = v == 0; // v0 cannot carry false
            r.topics = (0..2)
                .map(|t| {
                    let mut topic = ReassignableTopic::default();
                    topic.name = s(&format!("orders-{t}"));
                    topic.partitions = (0..3)
                        .map(|p| {
                            let mut rp = ReassignablePartition::default();
                            rp.partition_index = p;
                            // A cancel (null) beside real targets.
                            rp.replicas =
                                (p != 1).then(|| vec![BrokerId(1), BrokerId(2), BrokerId(3)]);
                            rp.unknown_tagged_fields = tags(fl);
                            rp
                        })
                        .collect();
                    topic.unknown_tagged_fields = tags(fl);
                    topic
                })
                .collect();
            r.unknown_tagged_fields = tags(fl);
        }),
        46 => build(v, |r: &mut ListPartitionReassignmentsRequest, fl| {
            use list_partition_reassignments_request::ListPartitionReassignmentsTopics;
            r.timeout_ms = 30_000;
            let mut topic = ListPartitionReassignmentsTopics::default();
            topic.name = s("orders");
            topic.partition_indexes = vec![0, 2];
            topic.unknown_tagged_fields = tags(fl);
            r.topics = Some(vec![topic]);
            r.unknown_tagged_fields = tags(fl);
        }),
        23 => build(v, |r: &mut OffsetForLeaderEpochRequest, fl| {
            use offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
            r.replica_id = BrokerId(if v >= 3 { 2 } else { -1 });
            r.topics = (0..2)
                .map(|t| {
                    let mut topic = OffsetForLeaderTopic::default();
                    topic.topic = s(&format!("orders-{t}"));
                    topic.partitions = (0..3)
                        .map(|p| {
                            let mut lp = OffsetForLeaderPartition::default();
                            lp.partition = p;
                            lp.current_leader_epoch = 5;
                            lp.leader_epoch = 4;
                            lp.unknown_tagged_fields = tags(fl);
                            lp
                        })
                        .collect();
                    topic.unknown_tagged_fields = tags(fl);
                    topic
                })
                .collect();
            r.unknown_tagged_fields = tags(fl);
        }),
        19 => build(v, |r: &mut CreateTopicsRequest, fl| {
            use create_topics_request::{
                CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
            };
            r.timeout_ms = 1000;
            r.validate_only = true;
            r.topics = (0..2)
                .map(|t| {
                    let mut ct = CreatableTopic::default();
                    ct.name = s(&format!("new-{t}"));
                    ct.num_partitions = -1;
                    ct.replication_factor = -1;
                    let mut a = CreatableReplicaAssignment::default();
                    a.broker_ids = vec![BrokerId(1), BrokerId(2)];
                    ct.assignments = vec![a.clone(), a];
                    let mut c = CreatableTopicConfig::default();
                    c.name = s("retention.ms");
                    c.value = Some(s("1000"));
                    ct.configs = vec![c.clone(), c];
                    ct
                })
                .collect();
            r.unknown_tagged_fields = tags(fl);
        }),
        20 => build(v, |r: &mut DeleteTopicsRequest, fl| {
            use delete_topics_request::DeleteTopicState;
            r.timeout_ms = 1000;
            if v >= 6 {
                let mut t = DeleteTopicState::default();
                t.name = Some(s("old"));
                t.topic_id = uuid(4);
                r.topics = vec![t.clone(), t];
            } else {
                r.topic_names = vec![s("a"), s("b")];
            }
            r.unknown_tagged_fields = tags(fl);
        }),
        37 => build(v, |r: &mut CreatePartitionsRequest, fl| {
            use create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic};
            let mut t = CreatePartitionsTopic::default();
            t.name = s("orders");
            t.count = 4;
            let mut a = CreatePartitionsAssignment::default();
            a.broker_ids = vec![BrokerId(1), BrokerId(2)];
            t.assignments = Some(vec![a.clone(), a]);
            r.topics = vec![t.clone(), t];
            r.timeout_ms = 100;
            r.validate_only = true;
            r.unknown_tagged_fields = tags(fl);
        }),
        32 => build(v, |r: &mut DescribeConfigsRequest, fl| {
            use describe_configs_request::DescribeConfigsResource;
            let mut res = DescribeConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s("orders");
            res.configuration_keys = Some(vec![s("retention.ms"), s("cleanup.policy")]);
            r.resources = vec![res.clone(), res];
            r.include_synonyms = true;
            r.include_documentation = v >= 3;
            r.unknown_tagged_fields = tags(fl);
        }),
        33 => build(v, |r: &mut AlterConfigsRequest, fl| {
            use alter_configs_request::{AlterConfigsResource, AlterableConfig};
            let mut res = AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s("orders");
            let mut c = AlterableConfig::default();
            c.name = s("retention.ms");
            c.value = Some(s("5"));
            res.configs = vec![c.clone(), c];
            r.resources = vec![res.clone(), res];
            r.validate_only = true;
            r.unknown_tagged_fields = tags(fl);
        }),
        44 => build(v, |r: &mut IncrementalAlterConfigsRequest, fl| {
            use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
            let mut res = AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s("orders");
            let mut c = AlterableConfig::default();
            c.name = s("retention.ms");
            c.config_operation = 1;
            c.value = Some(s("5"));
            res.configs = vec![c.clone(), c];
            r.resources = vec![res.clone(), res];
            r.validate_only = true;
            r.unknown_tagged_fields = tags(fl);
        }),
        21 => build(v, |r: &mut DeleteRecordsRequest, fl| {
            use delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
            let mut t = DeleteRecordsTopic::default();
            t.name = s("orders");
            let mut p = DeleteRecordsPartition::default();
            p.offset = 10;
            t.partitions = vec![p.clone(), p];
            r.topics = vec![t.clone(), t];
            r.timeout_ms = 100;
            r.unknown_tagged_fields = tags(fl);
        }),
        55 => build(v, |r: &mut DescribeQuorumRequest, fl| {
            use describe_quorum_request::{PartitionData, TopicData};
            let mut p = PartitionData::default();
            p.partition_index = 0;
            p.unknown_tagged_fields = tags(fl);
            let mut t = TopicData::default();
            t.topic_name = s("__cluster_metadata");
            t.partitions = vec![p.clone(), p];
            t.unknown_tagged_fields = tags(fl);
            r.topics = vec![t.clone(), t];
            r.unknown_tagged_fields = tags(fl);
        }),
        75 => build(v, |r: &mut DescribeTopicPartitionsRequest, fl| {
            use describe_topic_partitions_request::{Cursor, TopicRequest};
            let mut t = TopicRequest::default();
            t.name = s("t");
            t.unknown_tagged_fields = tags(fl);
            r.topics = vec![t.clone(), t];
            r.response_partition_limit = 100;
            let mut c = Cursor::default();
            c.topic_name = s("t");
            c.partition_index = 1;
            c.unknown_tagged_fields = tags(fl);
            r.cursor = Some(c);
            r.unknown_tagged_fields = tags(fl);
        }),
        60 => build(v, |r: &mut DescribeClusterRequest, fl| {
            r.include_cluster_authorized_operations = true;
            r.endpoint_type = if v >= 1 { 2 } else { 1 };
            r.include_fenced_brokers = v >= 2;
            r.unknown_tagged_fields = tags(fl);
        }),
        35 => build(v, |r: &mut DescribeLogDirsRequest, fl| {
            use describe_log_dirs_request::DescribableLogDirTopic;
            let mut t = DescribableLogDirTopic::default();
            t.topic = s("orders");
            t.partitions = vec![0, 1];
            r.topics = Some(vec![t.clone(), t]);
            r.unknown_tagged_fields = tags(fl);
        }),
        10 => build(v, |r: &mut FindCoordinatorRequest, fl| {
            if v <= 3 {
                r.key = s("group");
            } else {
                r.coordinator_keys = vec![s("g1"), s("g2")];
            }
            r.key_type = i8::from(v >= 1);
            r.unknown_tagged_fields = tags(fl);
        }),
        11 => build(v, |r: &mut JoinGroupRequest, fl| {
            use join_group_request::JoinGroupRequestProtocol;
            r.group_id = s("group");
            r.session_timeout_ms = 10_000;
            r.rebalance_timeout_ms = if v >= 1 { 20_000 } else { -1 };
            r.member_id = s("member-1");
            if v >= 5 {
                r.group_instance_id = Some(s("instance"));
            }
            r.protocol_type = s("consumer");
            let mut p = JoinGroupRequestProtocol::default();
            p.name = s("range");
            p.metadata = Bytes::from_static(&[0, 1, 2, 3]);
            p.unknown_tagged_fields = tags(fl);
            r.protocols = vec![p.clone(), p];
            if v >= 8 {
                r.reason = Some(s("rejoin"));
            }
            r.unknown_tagged_fields = tags(fl);
        }),
        14 => build(v, |r: &mut SyncGroupRequest, fl| {
            use sync_group_request::SyncGroupRequestAssignment;
            r.group_id = s("group");
            r.generation_id = 3;
            r.member_id = s("member-1");
            if v >= 3 {
                r.group_instance_id = Some(s("instance"));
            }
            if v >= 5 {
                r.protocol_type = Some(s("consumer"));
                r.protocol_name = Some(s("range"));
            }
            let mut a = SyncGroupRequestAssignment::default();
            a.member_id = s("member-1");
            a.assignment = Bytes::from_static(&[9, 8, 7]);
            r.assignments = vec![a.clone(), a];
            r.unknown_tagged_fields = tags(fl);
        }),
        12 => build(v, |r: &mut HeartbeatRequest, fl| {
            r.group_id = s("group");
            r.generation_id = 3;
            r.member_id = s("member-1");
            if v >= 3 {
                r.group_instance_id = Some(s("instance"));
            }
            r.unknown_tagged_fields = tags(fl);
        }),
        13 => build(v, |r: &mut LeaveGroupRequest, fl| {
            use leave_group_request::MemberIdentity;
            r.group_id = s("group");
            if v <= 2 {
                r.member_id = s("member-1");
            } else {
                let mut m = MemberIdentity::default();
                m.member_id = s("member-1");
                m.group_instance_id = Some(s("instance"));
                if v >= 5 {
                    m.reason = Some(s("bye"));
                }
                m.unknown_tagged_fields = tags(fl);
                r.members = vec![m.clone(), m];
            }
            r.unknown_tagged_fields = tags(fl);
        }),
        8 => build(v, |r: &mut OffsetCommitRequest, fl| {
            use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
            r.group_id = s("group");
            r.generation_id_or_member_epoch = 3;
            r.member_id = s("member-1");
            if v >= 7 {
                r.group_instance_id = Some(s("instance"));
            }
            if v <= 4 {
                r.retention_time_ms = 60_000;
            }
            let mut p = OffsetCommitRequestPartition::default();
            p.partition_index = 1;
            p.committed_offset = 42;
            p.committed_leader_epoch = if v >= 6 { 5 } else { -1 };
            p.committed_metadata = Some(s("meta"));
            let mut t = OffsetCommitRequestTopic::default();
            t.name = s("orders");
            t.partitions = vec![p.clone(), p];
            r.topics = vec![t.clone(), t];
            r.unknown_tagged_fields = tags(fl);
        }),
        9 => build(v, |r: &mut OffsetFetchRequest, fl| {
            use offset_fetch_request::{
                OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
            };
            if v <= 7 {
                r.group_id = s("group");
                let mut t = OffsetFetchRequestTopic::default();
                t.name = s("orders");
                t.partition_indexes = vec![0, 1];
                r.topics = Some(vec![t.clone(), t]);
            } else {
                let mut t = OffsetFetchRequestTopics::default();
                t.name = s("orders");
                t.partition_indexes = vec![0, 1];
                let mut g = OffsetFetchRequestGroup::default();
                g.group_id = s("group");
                if v >= 9 {
                    g.member_id = Some(s("member-1"));
                    g.member_epoch = 4;
                }
                g.topics = Some(vec![t.clone(), t]);
                r.groups = vec![g.clone(), g];
            }
            r.require_stable = v >= 7;
            r.unknown_tagged_fields = tags(fl);
        }),
        16 => build(v, |r: &mut ListGroupsRequest, fl| {
            if v >= 4 {
                r.states_filter = vec![s("Stable"), s("Empty")];
            }
            if v >= 5 {
                r.types_filter = vec![s("classic"), s("consumer")];
            }
            r.unknown_tagged_fields = tags(fl);
        }),
        15 => build(v, |r: &mut DescribeGroupsRequest, fl| {
            r.groups = vec![s("g1"), s("g2")];
            r.include_authorized_operations = v >= 3;
            r.unknown_tagged_fields = tags(fl);
        }),
        42 => build(v, |r: &mut DeleteGroupsRequest, fl| {
            r.groups_names = vec![s("g1"), s("g2")];
            r.unknown_tagged_fields = tags(fl);
        }),
        47 => build(v, |r: &mut OffsetDeleteRequest, _| {
            use offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
            r.group_id = s("group");
            let mut p = OffsetDeleteRequestPartition::default();
            p.partition_index = 1;
            let mut t = OffsetDeleteRequestTopic::default();
            t.name = s("orders");
            t.partitions = vec![p.clone(), p];
            r.topics = vec![t.clone(), t];
        }),
        68 => build(v, |r: &mut ConsumerGroupHeartbeatRequest, fl| {
            use consumer_group_heartbeat_request::TopicPartitions;
            r.group_id = s("group");
            r.member_id = s("member-1");
            r.member_epoch = 2;
            r.instance_id = Some(s("instance"));
            r.rack_id = Some(s("rack"));
            r.rebalance_timeout_ms = 30_000;
            r.subscribed_topic_names = Some(vec![s("a"), s("b")]);
            if v >= 1 {
                r.subscribed_topic_regex = Some(s("o.*"));
            }
            r.server_assignor = Some(s("uniform"));
            let mut tp = TopicPartitions::default();
            tp.topic_id = uuid(1);
            tp.partitions = vec![0, 1];
            r.topic_partitions = Some(vec![tp.clone(), tp]);
            r.unknown_tagged_fields = tags(fl);
        }),
        69 => build(v, |r: &mut ConsumerGroupDescribeRequest, fl| {
            r.group_ids = vec![s("g1"), s("g2")];
            r.include_authorized_operations = true;
            r.unknown_tagged_fields = tags(fl);
        }),
        22 => build(v, |r: &mut InitProducerIdRequest, fl| {
            r.transactional_id = Some(s("tx"));
            r.transaction_timeout_ms = 60_000;
            if v >= 3 {
                r.producer_id = ProducerId(77);
                r.producer_epoch = 3;
            }
            r.unknown_tagged_fields = tags(fl);
        }),
        24 => build(v, |r: &mut AddPartitionsToTxnRequest, fl| {
            use add_partitions_to_txn_request::{
                AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
            };
            let topics = || {
                (0..2)
                    .map(|t| {
                        let mut topic = AddPartitionsToTxnTopic::default();
                        topic.name = s(&format!("orders-{t}"));
                        topic.partitions = vec![0, 1];
                        topic.unknown_tagged_fields = tags(fl);
                        topic
                    })
                    .collect::<Vec<_>>()
            };
            if v >= 4 {
                r.transactions = (0..2i64)
                    .map(|n| {
                        let mut tx = AddPartitionsToTxnTransaction::default();
                        tx.transactional_id = s(&format!("tx-{n}"));
                        tx.producer_id = ProducerId(77 + n);
                        tx.producer_epoch = 3;
                        tx.verify_only = true;
                        tx.topics = topics();
                        tx.unknown_tagged_fields = tags(fl);
                        tx
                    })
                    .collect();
            } else {
                r.v3_and_below_transactional_id = s("tx");
                r.v3_and_below_producer_id = ProducerId(77);
                r.v3_and_below_producer_epoch = 3;
                r.v3_and_below_topics = topics();
            }
            r.unknown_tagged_fields = tags(fl);
        }),
        25 => build(v, |r: &mut AddOffsetsToTxnRequest, fl| {
            r.transactional_id = s("tx");
            r.producer_id = ProducerId(77);
            r.producer_epoch = 3;
            r.group_id = s("group");
            r.unknown_tagged_fields = tags(fl);
        }),
        26 => build(v, |r: &mut EndTxnRequest, fl| {
            r.transactional_id = s("tx");
            r.producer_id = ProducerId(77);
            r.producer_epoch = 3;
            r.committed = true;
            r.unknown_tagged_fields = tags(fl);
        }),
        27 => build(v, |r: &mut WriteTxnMarkersRequest, fl| {
            use write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
            let mut t = WritableTxnMarkerTopic::default();
            t.name = s("orders");
            t.partition_indexes = vec![0, 1];
            t.unknown_tagged_fields = tags(fl);
            let mut m = WritableTxnMarker::default();
            m.producer_id = ProducerId(77);
            m.producer_epoch = 3;
            m.transaction_result = true;
            m.topics = vec![t.clone(), t];
            m.coordinator_epoch = 5;
            m.unknown_tagged_fields = tags(fl);
            r.markers = vec![m.clone(), m];
            r.unknown_tagged_fields = tags(fl);
        }),
        28 => build(v, |r: &mut TxnOffsetCommitRequest, fl| {
            use txn_offset_commit_request::{
                TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
            };
            r.transactional_id = s("tx");
            r.group_id = s("group");
            r.producer_id = ProducerId(77);
            r.producer_epoch = 3;
            if v >= 3 {
                r.generation_id = 4;
                r.member_id = s("member-1");
                r.group_instance_id = Some(s("instance"));
            }
            let mut p = TxnOffsetCommitRequestPartition::default();
            p.partition_index = 1;
            p.committed_offset = 42;
            p.committed_leader_epoch = if v >= 2 { 5 } else { -1 };
            p.committed_metadata = Some(s("meta"));
            p.unknown_tagged_fields = tags(fl);
            let mut t = TxnOffsetCommitRequestTopic::default();
            t.name = s("orders");
            t.partitions = vec![p.clone(), p];
            t.unknown_tagged_fields = tags(fl);
            r.topics = vec![t.clone(), t];
            r.unknown_tagged_fields = tags(fl);
        }),
        61 => build(v, |r: &mut DescribeProducersRequest, fl| {
            use describe_producers_request::TopicRequest;
            let mut t = TopicRequest::default();
            t.name = s("orders");
            t.partition_indexes = vec![0, 1];
            t.unknown_tagged_fields = tags(fl);
            r.topics = vec![t.clone(), t];
            r.unknown_tagged_fields = tags(fl);
        }),
        65 => build(v, |r: &mut DescribeTransactionsRequest, fl| {
            r.transactional_ids = vec![s("tx-1"), s("tx-2")];
            r.unknown_tagged_fields = tags(fl);
        }),
        66 => build(v, |r: &mut ListTransactionsRequest, fl| {
            r.state_filters = vec![s("Ongoing"), s("PrepareCommit")];
            r.producer_id_filters = vec![ProducerId(77), ProducerId(78)];
            if v >= 1 {
                r.duration_filter = 60_000;
            }
            if v >= 2 {
                r.transactional_id_pattern = Some(s("tx-.*"));
            }
            r.unknown_tagged_fields = tags(fl);
        }),
        17 => build(v, |r: &mut SaslHandshakeRequest, _| {
            r.mechanism = s("SCRAM-SHA-512");
        }),
        36 => build(v, |r: &mut SaslAuthenticateRequest, fl| {
            r.auth_bytes = Bytes::from_static(b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL");
            r.unknown_tagged_fields = tags(fl);
        }),
        50 => build(v, |r: &mut DescribeUserScramCredentialsRequest, fl| {
            use describe_user_scram_credentials_request::UserName;
            let user = |n: &str| {
                let mut u = UserName::default();
                u.name = s(n);
                u.unknown_tagged_fields = tags(fl);
                u
            };
            r.users = Some(vec![user("alice"), user("bob")]);
            r.unknown_tagged_fields = tags(fl);
        }),
        51 => build(v, |r: &mut AlterUserScramCredentialsRequest, fl| {
            use alter_user_scram_credentials_request::*;
            let mut d = ScramCredentialDeletion::default();
            d.name = s("bob");
            d.mechanism = 1;
            d.unknown_tagged_fields = tags(fl);
            let mut u = ScramCredentialUpsertion::default();
            u.name = s("alice");
            u.mechanism = 2;
            u.iterations = 8192;
            u.salt = Bytes::from_static(&[7; 16]);
            u.salted_password = Bytes::from_static(&[9; 64]);
            u.unknown_tagged_fields = tags(fl);
            r.deletions = vec![d.clone(), d];
            r.upsertions = vec![u.clone(), u];
            r.unknown_tagged_fields = tags(fl);
        }),
        29 => build(v, |r: &mut DescribeAclsRequest, fl| {
            r.resource_type_filter = 2;
            r.resource_name_filter = Some(s("orders"));
            r.pattern_type_filter = 2;
            r.principal_filter = Some(s("User:alice"));
            r.host_filter = None;
            r.operation = 1;
            r.permission_type = 3;
            r.unknown_tagged_fields = tags(fl);
        }),
        30 => build(v, |r: &mut CreateAclsRequest, fl| {
            let mut c = create_acls_request::AclCreation::default();
            c.resource_type = 2;
            c.resource_name = s("orders.");
            c.resource_pattern_type = 4;
            c.principal = s("User:alice");
            c.host = s("*");
            c.operation = 4;
            c.permission_type = 3;
            c.unknown_tagged_fields = tags(fl);
            r.creations = vec![c.clone(), c];
            r.unknown_tagged_fields = tags(fl);
        }),
        31 => build(v, |r: &mut DeleteAclsRequest, fl| {
            let mut d = delete_acls_request::DeleteAclsFilter::default();
            d.resource_type_filter = 1;
            d.resource_name_filter = None;
            d.pattern_type_filter = 1;
            d.principal_filter = Some(s("User:bob"));
            d.host_filter = Some(s("*"));
            d.operation = 1;
            d.permission_type = 1;
            d.unknown_tagged_fields = tags(fl);
            r.filters = vec![d.clone(), d];
            r.unknown_tagged_fields = tags(fl);
        }),
        48 => build(v, |r: &mut DescribeClientQuotasRequest, fl| {
            let mut c = describe_client_quotas_request::ComponentData::default();
            c.entity_type = s("user");
            c.match_type = 0;
            c._match = Some(s("alice"));
            c.unknown_tagged_fields = tags(fl);
            let mut d = c.clone();
            d.entity_type = s("client-id");
            d.match_type = 1;
            d._match = None;
            r.components = vec![c, d];
            r.strict = true;
            r.unknown_tagged_fields = tags(fl);
        }),
        49 => build(v, |r: &mut AlterClientQuotasRequest, fl| {
            use alter_client_quotas_request::*;
            let mut e = EntityData::default();
            e.entity_type = s("user");
            e.entity_name = None;
            e.unknown_tagged_fields = tags(fl);
            let mut op = OpData::default();
            op.key = s("producer_byte_rate");
            op.value = 1048576.0;
            op.remove = false;
            op.unknown_tagged_fields = tags(fl);
            let mut entry = EntryData::default();
            entry.entity = vec![e.clone(), e];
            entry.ops = vec![op.clone(), op];
            entry.unknown_tagged_fields = tags(fl);
            r.entries = vec![entry.clone(), entry];
            r.validate_only = true;
            r.unknown_tagged_fields = tags(fl);
        }),
        other => panic!("no sample for API {other}"),
    }
}

/// Every served API at every version: `(api_key, version)`.
fn all_versions() -> Vec<(i16, i16)> {
    let mut out = Vec::new();
    for &k in guarded_api_keys() {
        let (lo, hi) = supported_versions(k).expect("a guarded key has versions");
        out.extend((lo..=hi).map(|v| (k, v)));
    }
    out
}

/// The samples, built once per test.
fn all_samples() -> Vec<(i16, i16, Sample)> {
    all_versions()
        .into_iter()
        .map(|(k, v)| (k, v, sample(k, v)))
        .collect()
}

/// Checks one (possibly hostile) body: whatever the guard lets through decodes without
/// aborting; the guard and the decoder read the same bytes; memory stays bounded. Where the
/// guard refuses at a point the decoder also cannot pass (truncation, a null it cannot take, a
/// negative length, a tag invalid at the version), the decoder must fail too: there it is safe
/// to run, as the bytes before that point passed the guard.
fn check_one(k: i16, v: i16, body: &[u8], decode: Decoder) {
    match walk(k, v, body) {
        Ok(walked) => {
            let (consumed, peak) = decode(body, v);
            if let Some(consumed) = consumed {
                assert_eq!(walked, consumed, "api {k} v{v}: guard and decoder disagree");
            }
            assert!(
                peak <= PER_BYTE * body.len() + SLACK,
                "api {k} v{v}: decoding a {}-byte body held {peak} bytes",
                body.len()
            );
        }
        Err(
            e @ (GuardError::Truncated { .. }
            | GuardError::UnexpectedNull { .. }
            | GuardError::InvalidTag { .. }),
        ) => {
            assert_eq!(
                decode(body, v).0,
                None,
                "api {k} v{v}: refused ({e}) but decodes"
            );
        }
        Err(e @ GuardError::ImpossibleLength { claimed, .. }) if claimed < 0 => {
            assert_eq!(
                decode(body, v).0,
                None,
                "api {k} v{v}: refused ({e}) but decodes"
            );
        }
        Err(_) => {}
    }
}

#[test]
fn the_schema_table_matches_kafka_protocol() {
    fn versions<T: Request>() -> (i16, i16, i16) {
        let flexible = (T::VERSIONS.min..=T::VERSIONS.max)
            .find(|&v| is_flexible::<T>(v))
            .unwrap_or(i16::MAX);
        (T::VERSIONS.min, T::VERSIONS.max, flexible)
    }
    let expected: &[(i16, (i16, i16, i16))] = &[
        (18, versions::<ApiVersionsRequest>()),
        (3, versions::<MetadataRequest>()),
        (0, versions::<ProduceRequest>()),
        (1, versions::<FetchRequest>()),
        (2, versions::<ListOffsetsRequest>()),
        (23, versions::<OffsetForLeaderEpochRequest>()),
        (43, versions::<ElectLeadersRequest>()),
        (45, versions::<AlterPartitionReassignmentsRequest>()),
        (46, versions::<ListPartitionReassignmentsRequest>()),
        (19, versions::<CreateTopicsRequest>()),
        (20, versions::<DeleteTopicsRequest>()),
        (37, versions::<CreatePartitionsRequest>()),
        (32, versions::<DescribeConfigsRequest>()),
        (33, versions::<AlterConfigsRequest>()),
        (44, versions::<IncrementalAlterConfigsRequest>()),
        (21, versions::<DeleteRecordsRequest>()),
        (60, versions::<DescribeClusterRequest>()),
        (35, versions::<DescribeLogDirsRequest>()),
        (10, versions::<FindCoordinatorRequest>()),
        (11, versions::<JoinGroupRequest>()),
        (14, versions::<SyncGroupRequest>()),
        (12, versions::<HeartbeatRequest>()),
        (13, versions::<LeaveGroupRequest>()),
        (8, versions::<OffsetCommitRequest>()),
        (9, versions::<OffsetFetchRequest>()),
        (16, versions::<ListGroupsRequest>()),
        (15, versions::<DescribeGroupsRequest>()),
        (42, versions::<DeleteGroupsRequest>()),
        (47, versions::<OffsetDeleteRequest>()),
        (68, versions::<ConsumerGroupHeartbeatRequest>()),
        (69, versions::<ConsumerGroupDescribeRequest>()),
        (22, versions::<InitProducerIdRequest>()),
        (75, versions::<DescribeTopicPartitionsRequest>()),
        (55, versions::<DescribeQuorumRequest>()),
        (24, versions::<AddPartitionsToTxnRequest>()),
        (25, versions::<AddOffsetsToTxnRequest>()),
        (26, versions::<EndTxnRequest>()),
        (27, versions::<WriteTxnMarkersRequest>()),
        (28, versions::<TxnOffsetCommitRequest>()),
        (61, versions::<DescribeProducersRequest>()),
        (65, versions::<DescribeTransactionsRequest>()),
        (66, versions::<ListTransactionsRequest>()),
        (17, versions::<SaslHandshakeRequest>()),
        (36, versions::<SaslAuthenticateRequest>()),
        (50, versions::<DescribeUserScramCredentialsRequest>()),
        (51, versions::<AlterUserScramCredentialsRequest>()),
        (29, versions::<DescribeAclsRequest>()),
        (30, versions::<CreateAclsRequest>()),
        (31, versions::<DeleteAclsRequest>()),
        (48, versions::<DescribeClientQuotasRequest>()),
        (49, versions::<AlterClientQuotasRequest>()),
    ];
    assert_eq!(guarded_api_keys().len(), expected.len());
    for &(k, (lo, hi, flexible)) in expected {
        let m = schemas::message(k).expect("the key is guarded");
        assert_eq!(
            (m.min_version, m.max_version, m.flexible_from),
            (lo, hi, flexible),
            "api {k}"
        );
    }
}

#[test]
fn every_real_request_of_every_version_passes() {
    let samples = all_samples();
    assert!(samples.len() > 150, "{} cases", samples.len());
    for (k, v, sample) in &samples {
        for body in [&sample.full, &sample.empty] {
            let (consumed, _) = (sample.decode)(body, *v);
            assert_eq!(
                consumed,
                Some(body.len()),
                "kafka-protocol decodes {k} v{v}"
            );
            // The schema accounts for every byte: a field missing from it would show here.
            match walk(*k, *v, body) {
                Ok(used) => assert_eq!(used, body.len(), "api {k} v{v}: schema misses bytes"),
                Err(e) => panic!("api {k} v{v} refused: {e}"),
            }
        }
    }
}

/// A request with null in nullable fields that the samples fill (null Metadata topics means
/// "all topics", null configuration keys "all configs", null assignments "let the broker
/// choose", ...), or `None` where the encoder refuses null at this version.
fn null_variants(api_key: i16, v: i16) -> Vec<Option<(Vec<u8>, Decoder)>> {
    fn with<T: Request + Default>(v: i16, fill: impl FnOnce(&mut T)) -> Option<(Vec<u8>, Decoder)> {
        let mut r = T::default();
        fill(&mut r);
        let mut buf = BytesMut::new();
        r.encode(&mut buf, v).ok()?;
        Some((buf.to_vec(), decoder::<T>))
    }
    match api_key {
        3 => vec![
            with(v, |r: &mut MetadataRequest| r.topics = None),
            with(v, |r: &mut MetadataRequest| {
                let mut t = metadata_request::MetadataRequestTopic::default();
                t.name = None;
                t.topic_id = uuid(1);
                r.topics = Some(vec![t.clone(), t]);
            }),
        ],
        0 => vec![with(v, |r: &mut ProduceRequest| {
            let mut td = produce_request::TopicProduceData::default();
            td.name = s("t");
            td.partition_data = vec![Default::default(), Default::default()];
            r.topic_data = vec![td];
        })],
        19 => vec![with(v, |r: &mut CreateTopicsRequest| {
            let mut c = create_topics_request::CreatableTopicConfig::default();
            c.name = s("retention.ms");
            c.value = None;
            let mut t = create_topics_request::CreatableTopic::default();
            t.name = s("t");
            t.configs = vec![c.clone(), c];
            r.topics = vec![t];
        })],
        20 => vec![with(v, |r: &mut DeleteTopicsRequest| {
            let mut t = delete_topics_request::DeleteTopicState::default();
            t.name = None;
            t.topic_id = uuid(2);
            r.topics = vec![t.clone(), t];
        })],
        37 => vec![with(v, |r: &mut CreatePartitionsRequest| {
            let mut t = create_partitions_request::CreatePartitionsTopic::default();
            t.name = s("t");
            t.assignments = None;
            r.topics = vec![t.clone(), t];
        })],
        32 => vec![with(v, |r: &mut DescribeConfigsRequest| {
            let mut res = describe_configs_request::DescribeConfigsResource::default();
            res.resource_name = s("t");
            res.configuration_keys = None;
            r.resources = vec![res.clone(), res];
        })],
        33 => vec![with(v, |r: &mut AlterConfigsRequest| {
            let mut c = alter_configs_request::AlterableConfig::default();
            c.name = s("retention.ms");
            c.value = None;
            let mut res = alter_configs_request::AlterConfigsResource::default();
            res.configs = vec![c.clone(), c];
            r.resources = vec![res];
        })],
        44 => vec![with(v, |r: &mut IncrementalAlterConfigsRequest| {
            let mut c = incremental_alter_configs_request::AlterableConfig::default();
            c.name = s("retention.ms");
            c.value = None;
            let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
            res.configs = vec![c.clone(), c];
            r.resources = vec![res];
        })],
        35 => vec![with(v, |r: &mut DescribeLogDirsRequest| r.topics = None)],
        13 => vec![with(v, |r: &mut LeaveGroupRequest| {
            let mut m = leave_group_request::MemberIdentity::default();
            m.member_id = s("m");
            m.group_instance_id = None;
            m.reason = None;
            r.members = vec![m.clone(), m];
        })],
        8 => vec![with(v, |r: &mut OffsetCommitRequest| {
            let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
            p.committed_metadata = None;
            let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
            t.name = s("t");
            t.partitions = vec![p.clone(), p];
            r.topics = vec![t];
        })],
        9 => vec![
            with(v, |r: &mut OffsetFetchRequest| r.topics = None),
            with(v, |r: &mut OffsetFetchRequest| {
                let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
                g.group_id = s("g");
                g.member_id = None;
                g.topics = None;
                r.groups = vec![g.clone(), g];
            }),
        ],
        75 => vec![with(v, |r: &mut DescribeTopicPartitionsRequest| {
            r.topics = vec![Default::default()];
            r.cursor = None;
        })],
        28 => vec![
            with(v, |r: &mut TxnOffsetCommitRequest| {
                let mut p = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default();
                p.committed_metadata = None;
                let mut t = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
                t.name = s("t");
                t.partitions = vec![p.clone(), p];
                r.topics = vec![t];
            }),
            // A member without an instance id (v3+; the encoder refuses a member id below).
            with(v, |r: &mut TxnOffsetCommitRequest| {
                r.generation_id = 1;
                r.member_id = s("m");
                r.group_instance_id = None;
            }),
        ],
        66 => vec![with(v, |r: &mut ListTransactionsRequest| {
            r.state_filters = vec![s("Ongoing")];
            r.transactional_id_pattern = None;
        })],
        _ => Vec::new(),
    }
}

#[test]
fn nulls_in_nullable_fields_pass() {
    let mut passed = BTreeMap::<i16, usize>::new();
    for (k, v) in all_versions() {
        for (body, decode) in null_variants(k, v).into_iter().flatten() {
            assert_eq!(decode(&body, v).0, Some(body.len()), "api {k} v{v} decodes");
            assert_eq!(walk(k, v, &body), Ok(body.len()), "api {k} v{v} with nulls");
            *passed.entry(k).or_default() += 1;
        }
    }
    // Every API with such fields, at the versions where null is allowed.
    let expected = [3, 0, 19, 20, 37, 32, 33, 44, 35, 13, 8, 9, 28, 66];
    for k in expected {
        assert!(
            passed.get(&k).copied().unwrap_or(0) > 0,
            "api {k}: {passed:?}"
        );
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
            claimed: 0x7fff_ffff,
            ..
        })
    ));
    // A compact array at a flexible version (uvarint u32::MAX).
    let body = [0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(matches!(
        check_request(3, 12, &body),
        Err(GuardError::ImpossibleLength {
            field: "topics",
            ..
        })
    ));
    // A huge string length (Produce transactional id), and a huge compact one.
    assert!(matches!(
        check_request(0, 3, &[0x7f, 0xff, 0, 1]),
        Err(GuardError::ImpossibleLength {
            field: "transactional_id",
            ..
        })
    ));
    assert!(matches!(
        check_request(11, 6, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0]),
        Err(GuardError::ImpossibleLength {
            field: "group_id",
            ..
        })
    ));
    // A huge count nested inside a struct array (Fetch partitions of the first topic).
    let mut body = sample(1, 4).full;
    // v4: replica_id, max_wait, min_bytes, max_bytes, isolation (17 bytes), topics count (4),
    // topic name (2 + 6), then the partitions count.
    body[29..33].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(matches!(
        check_request(1, 4, &body),
        Err(GuardError::ImpossibleLength {
            field: "partitions",
            ..
        })
    ));
    // Negative lengths other than null, and null where the decoder needs a value.
    assert!(matches!(
        check_request(3, 4, &(-2i32).to_be_bytes()),
        Err(GuardError::ImpossibleLength { claimed: -2, .. })
    ));
    assert_eq!(
        check_request(15, 0, &(-1i32).to_be_bytes()),
        Err(GuardError::UnexpectedNull { field: "groups" })
    );
    assert_eq!(check_request(999, 0, &[]), Err(GuardError::UnknownApi(999)));
    assert_eq!(
        check_request(0, 2, &[]),
        Err(GuardError::UnsupportedVersion {
            api_key: 0,
            version: 2
        })
    );
    // A newer ApiVersions than we decode: the caller answers it in v0.
    assert!(matches!(
        check_request(18, 5, &[0, 0, 0]),
        Err(GuardError::UnsupportedVersion {
            api_key: 18,
            version: 5
        })
    ));
}

/// A known tagged field whose declared size lies: `kafka-protocol` reads a tag's value by its
/// type, not its size, so a guard that skipped by size would validate different bytes than the
/// decoder then reads. Here the decoder's view hides a compact count of u32::MAX.
#[test]
fn a_lying_tagged_field_size_cannot_desynchronise_the_guard() {
    let mut body = Vec::new();
    body.extend_from_slice(&[0; 21]); // max_wait .. session_epoch (v17: no replica_id)
    body.push(2); // one topic
    body.extend_from_slice(&[1; 16]); // topic_id
    body.push(2); // one partition
    body.extend_from_slice(&[0; 32]); // partition .. partition_max_bytes

    // One tagged field: tag 0 (replica_directory_id, a uuid), declared size 0.
    body.extend_from_slice(&[1, 0, 0]);
    // A size-skipping reader sees: topic tags (0), no forgotten topics (1), empty rack (1), no
    // request tags (0), and ignores the rest. The decoder reads these 16 bytes as the uuid,
    // then the topic's tags (0), then forgotten topics: a count of u32::MAX - 1, which aborted
    // the process behind the first version of this guard.
    body.extend_from_slice(&[0, 1, 1, 0]);
    body.extend_from_slice(&[0; 12]);
    body.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(matches!(
        check_request(1, 17, &body),
        Err(GuardError::ImpossibleLength {
            field: "forgotten_topics_data",
            ..
        })
    ));
    // The same bytes at v16, where partitions have no tag 0: the decoder bails, so does the guard.
    assert_eq!(
        check_request(1, 16, &body),
        Err(GuardError::InvalidTag {
            field: "replica_directory_id",
            tag: 0
        })
    );
}

/// Length bombs at every offset of every sample: i32::MAX, i16::MAX, and compact u32::MAX,
/// written over the body or inserted into it.
#[test]
fn length_bombs_at_every_offset() {
    const BOMBS: [&[u8]; 4] = [
        &[0x7f, 0xff, 0xff, 0xff],
        &[0x7f, 0xff],
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
        &[0xff, 0xff, 0xff, 0x7f],
    ];
    let mut refused = 0usize;
    let mut total = 0usize;
    for (k, v, sample) in all_samples() {
        for body in [&sample.full, &sample.empty] {
            for at in 0..=body.len() {
                for bomb in BOMBS {
                    let mut over = body.clone();
                    let end = (at + bomb.len()).min(over.len());
                    over.splice(at..end, bomb.iter().copied());
                    let mut inserted = body.clone();
                    inserted.splice(at..at, bomb.iter().copied());
                    for b in [over, inserted] {
                        total += 1;
                        refused += usize::from(check_request(k, v, &b).is_err());
                        check_one(k, v, &b, sample.decode);
                    }
                }
            }
        }
    }
    assert!(refused > total / 2, "{refused} of {total} refused");
}

/// The worst memory amplification a guarded body can cause: many minimal array elements.
#[test]
fn amplification_is_bounded() {
    let n = 20_000usize;
    let mut worst = 0.0f64;
    // DescribeGroups v5: empty compact group names, one byte each.
    let mut groups = vec![0xa1, 0x9c, 0x01]; // uvarint 20001 = n + 1
    groups.extend(std::iter::repeat_n(1u8, n));
    groups.extend_from_slice(&[0, 0]); // include_authorized_operations, tags

    // LeaveGroup v4: empty group id; members of empty id, null instance id, no tags (3 bytes).
    let mut leave = vec![1, 0xa1, 0x9c, 0x01];
    for _ in 0..n {
        leave.extend_from_slice(&[1, 0, 0]);
    }
    leave.push(0);
    // Metadata v1: topics with empty names (2 bytes each, non-flexible).
    let mut meta = (n as i32).to_be_bytes().to_vec();
    for _ in 0..n {
        meta.extend_from_slice(&[0, 0]);
    }
    // Unknown tagged fields of DeleteGroups v2: 16,000 distinct two-byte tags, empty values.
    let mut tags = vec![1, 0x80, 0xfd, 0x00]; // no groups; 16,000 tags (varint, padded)
    for t in 128..16_128u32 {
        tags.extend_from_slice(&[0x80 | (t & 0x7f) as u8, (t >> 7) as u8, 0]);
    }
    let cases: [(i16, i16, &[u8], Decoder); 4] = [
        (15, 5, &groups, decoder::<DescribeGroupsRequest>),
        (13, 4, &leave, decoder::<LeaveGroupRequest>),
        (3, 1, &meta, decoder::<MetadataRequest>),
        (42, 2, &tags, decoder::<DeleteGroupsRequest>),
    ];
    for (k, v, body, decode) in cases {
        assert_eq!(walk(k, v, body), Ok(body.len()), "api {k} v{v}");
        let (consumed, peak) = decode(body, v);
        assert_eq!(consumed, Some(body.len()), "api {k} v{v}");
        let ratio = peak as f64 / body.len() as f64;
        eprintln!(
            "api {k} v{v}: {} body bytes held {peak} bytes ({ratio:.1}x)",
            body.len()
        );
        worst = worst.max(ratio);
        check_one(k, v, body, decode);
    }
    assert!(
        worst > 5.0,
        "the cases should show real amplification ({worst:.1}x)"
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 100_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Mutated, truncated or length-bombed requests: whatever the guard lets through decodes
    /// without aborting the process (an abort would fail the whole test binary), reading the
    /// same bytes the guard read.
    #[test]
    fn whatever_passes_decodes_safely(
        case in any::<prop::sample::Index>(),
        empty in any::<bool>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        bomb in proptest::option::of((any::<prop::sample::Index>(), 0usize..4)),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let cases = all_versions();
        let (k, v) = cases[case.index(cases.len())];
        let sample = sample(k, v);
        let mut body = if empty { sample.empty } else { sample.full };
        for (at, b) in edits {
            if !body.is_empty() {
                let i = at.index(body.len());
                body[i] = b;
            }
        }
        if let Some((at, which)) = bomb {
            let bytes: &[u8] = match which {
                0 => &[0x7f, 0xff, 0xff, 0xff],
                1 => &[0x7f, 0xff],
                2 => &[0xff, 0xff, 0xff, 0xff, 0x0f],
                _ => &[0x80, 0x80, 0x80, 0x08],
            };
            let i = at.index(body.len() + 1);
            body.splice(i..i, bytes.iter().copied());
        }
        if let Some(c) = cut {
            body.truncate(c.index(body.len() + 1));
        }
        check_one(k, v, &body, sample.decode);
    }
}
