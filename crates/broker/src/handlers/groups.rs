//! The consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups and OffsetDelete.
//! They translate between Kafka's messages (fields differ by version) and the
//! [`strom_coordinator`] state machine.

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_coordinator::txn::TRANSACTION_STATE_TOPIC;
use strom_coordinator::{CommitEntry, JoinRequest};

use strom_types::acl::{AclOperation, ResourceType};

use crate::authz::{Access, NOT_REQUESTED};
use crate::broker::{Broker, GroupWrite};

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

const GROUP_DENIED: i16 = 30; // GROUP_AUTHORIZATION_FAILED

/// Whether `access` may not do `operation` to `group`.
fn group_denied(access: &Access, operation: AclOperation, group: &str) -> bool {
    !access.allows(operation, ResourceType::Group, group)
}

/// FindCoordinator: the leader of the group's `__consumer_offsets` partition, or of the
/// transactional id's `__transaction_state` partition (key type 1), creating the topic on
/// first use, as Kafka does.
pub(super) async fn find_coordinator(
    broker: &Arc<Broker>,
    access: &Access,
    request: FindCoordinatorRequest,
    version: i16,
    listener: &str,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if version >= 4 {
        request
            .coordinator_keys
            .iter()
            .map(|k| k.to_string())
            .collect()
    } else {
        vec![request.key.to_string()]
    };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        coordinators.push(coordinator_for(broker, access, request.key_type, &key, listener).await);
    }
    if version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = coordinators.pop().unwrap_or_default();
    let mut r = FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port);
    if version >= 1 {
        r.error_message = c.error_message;
    }
    r
}

async fn coordinator_for(
    broker: &Arc<Broker>,
    access: &Access,
    key_type: i8,
    key: &str,
    listener: &str,
) -> Coordinator {
    let mut c = Coordinator::default()
        .with_key(s(key))
        .with_node_id(BrokerId(-1))
        .with_host(s(""))
        .with_port(-1);
    let refuse = |c: &mut Coordinator, e: ResponseError, m: String| {
        c.error_code = e.code();
        c.error_message = Some(s(m));
    };
    let (topic, partition) = match key_type {
        0 if key.is_empty() => {
            refuse(
                &mut c,
                ResponseError::InvalidRequest,
                "empty group id".into(),
            );
            return c;
        }
        1 if key.is_empty() => {
            refuse(
                &mut c,
                ResponseError::InvalidRequest,
                "empty transactional id".into(),
            );
            return c;
        }
        // DESCRIBE on the group or transactional id.
        0 if group_denied(access, AclOperation::Describe, key) => {
            refuse(
                &mut c,
                ResponseError::GroupAuthorizationFailed,
                "group authorization failed".into(),
            );
            return c;
        }
        1 if !access.allows(AclOperation::Describe, ResourceType::TransactionalId, key) => {
            refuse(
                &mut c,
                ResponseError::TransactionalIdAuthorizationFailed,
                "transactional id authorization failed".into(),
            );
            return c;
        }
        0 => (
            strom_coordinator::OFFSETS_TOPIC,
            broker.coordinator.partition_for(key),
        ),
        1 => (
            TRANSACTION_STATE_TOPIC,
            broker.transactions.partition_for(key),
        ),
        t => {
            refuse(
                &mut c,
                ResponseError::InvalidRequest,
                format!("unknown coordinator key type {t}"),
            );
            return c;
        }
    };
    match broker.ensure_internal_topic(topic).await {
        Ok(()) => {
            let image = broker.image();
            let leader = image
                .topics
                .get(topic)
                .and_then(|t| t.partitions.get(&partition))
                .map_or(-1, |p| p.leader);
            match broker
                .endpoint_of(&image, leader, listener)
                .filter(|_| leader >= 0)
            {
                Some((host, port)) => {
                    c.node_id = BrokerId(leader);
                    c.host = s(host);
                    c.port = i32::from(port);
                }
                None => refuse(
                    &mut c,
                    ResponseError::CoordinatorNotAvailable,
                    format!("partition {partition} of {topic} has no leader"),
                ),
            }
        }
        Err(r) => refuse(&mut c, ResponseError::CoordinatorNotAvailable, r.message),
    }
    c
}

pub(super) async fn join_group(
    broker: &Arc<Broker>,
    access: &Access,
    request: JoinGroupRequest,
    version: i16,
    client_id: &str,
    peer: SocketAddr,
) -> JoinGroupResponse {
    if group_denied(access, AclOperation::Read, &request.group_id) {
        return JoinGroupResponse::default()
            .with_error_code(GROUP_DENIED)
            .with_generation_id(-1)
            .with_protocol_name((version < 7).then(|| s("")));
    }
    let req = JoinRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        client_id: client_id.to_string(),
        client_host: format!("/{}", peer.ip()),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let r = broker.coordinator.join_group(&request.group_id, req).await;
    let mut out = JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation)
        .with_leader(s(r.leader))
        .with_member_id(s(r.member_id));
    if version >= 7 {
        out.protocol_type = r.protocol_type.map(s);
        out.protocol_name = r.protocol_name.map(s);
    } else {
        out.protocol_name = Some(s(r.protocol_name.unwrap_or_default()));
    }
    out.members = r
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let mut m = JoinGroupResponseMember::default()
                .with_member_id(s(id))
                .with_metadata(metadata);
            if version >= 5 {
                m.group_instance_id = instance.map(s);
            }
            m
        })
        .collect();
    out
}

pub(super) async fn sync_group(
    broker: &Arc<Broker>,
    access: &Access,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    if group_denied(access, AclOperation::Read, &request.group_id) {
        return SyncGroupResponse::default().with_error_code(GROUP_DENIED);
    }
    let assignments = request
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let r = broker
        .coordinator
        .sync_group(
            &request.group_id,
            &request.member_id,
            request.group_instance_id.as_deref(),
            request.generation_id,
            request.protocol_type.as_deref(),
            request.protocol_name.as_deref(),
            assignments,
        )
        .await;
    // The assignment is answered once the group record holding it is replicated.
    let error = match r.error {
        0 => broker
            .wait_group_replicated(&request.group_id, GroupWrite::Assignment)
            .await
            .err()
            .unwrap_or(0),
        e => e,
    };
    let assignment = if error == 0 {
        r.assignment
    } else {
        Default::default()
    };
    let mut out = SyncGroupResponse::default()
        .with_error_code(error)
        .with_assignment(assignment);
    if version >= 5 {
        out.protocol_type = r.protocol_type.map(s);
        out.protocol_name = r.protocol_name.map(s);
    }
    out
}

pub(super) fn heartbeat(
    broker: &Arc<Broker>,
    access: &Access,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    if group_denied(access, AclOperation::Read, &request.group_id) {
        return HeartbeatResponse::default().with_error_code(GROUP_DENIED);
    }
    let code = broker.coordinator.heartbeat(
        &request.group_id,
        &request.member_id,
        request.group_instance_id.as_deref(),
        request.generation_id,
    );
    HeartbeatResponse::default().with_error_code(code)
}

pub(super) fn leave_group(
    broker: &Arc<Broker>,
    access: &Access,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    if group_denied(access, AclOperation::Read, &request.group_id) {
        return LeaveGroupResponse::default().with_error_code(GROUP_DENIED);
    }
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let (top, codes) = broker.coordinator.leave_group(&request.group_id, &members);
    if version < 3 {
        return LeaveGroupResponse::default().with_error_code(if top != 0 {
            top
        } else {
            codes[0]
        });
    }
    LeaveGroupResponse::default()
        .with_error_code(top)
        .with_members(
            members
                .into_iter()
                .zip(codes)
                .map(|((m, i), code)| {
                    MemberResponse::default()
                        .with_member_id(s(m))
                        .with_group_instance_id(i.map(s))
                        .with_error_code(code)
                })
                .collect(),
        )
}

/// OffsetCommit: partitions of topics that do not exist are answered
/// UNKNOWN_TOPIC_OR_PARTITION without reaching the group (as Kafka's request handler
/// does); the rest are validated and stored by the coordinator. Needs READ on the group
/// (else every partition is GROUP_AUTHORIZATION_FAILED) and on each topic.
pub(super) async fn offset_commit(
    broker: &Arc<Broker>,
    access: &Access,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let image = broker.image();
    let group_refused = group_denied(access, AclOperation::Read, &request.group_id);
    let refusal = |topic: &str, partition: i32| {
        if group_refused {
            Some(GROUP_DENIED)
        } else if !access.allows(AclOperation::Read, ResourceType::Topic, topic) {
            Some(ResponseError::TopicAuthorizationFailed.code())
        } else if !image
            .topics
            .get(topic)
            .is_some_and(|t| t.partitions.contains_key(&partition))
        {
            Some(ResponseError::UnknownTopicOrPartition.code())
        } else {
            None
        }
    };
    let entries: Vec<CommitEntry> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| refusal(&t.name, p.partition_index).is_none())
                .map(|p| CommitEntry {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                })
        })
        .collect();
    let codes = if entries.is_empty() {
        Ok(Vec::new())
    } else {
        broker.coordinator.commit_offsets(
            &request.group_id,
            &request.member_id,
            request.group_instance_id.as_deref(),
            request.generation_id_or_member_epoch,
            &entries,
        )
    };
    // Acknowledged once replicated like acks=all (`offsets.commit.timeout.ms`).
    let codes = match codes {
        Ok(c) if c.contains(&0) => match broker
            .wait_group_replicated(&request.group_id, GroupWrite::Other)
            .await
        {
            Ok(()) => Ok(c),
            Err(code) => Ok(c
                .into_iter()
                .map(|old| if old == 0 { code } else { old })
                .collect()),
        },
        other => other,
    };
    let mut codes = match codes {
        Ok(c) => c.into_iter(),
        Err(e) => vec![e; entries.len()].into_iter(),
    };
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = match refusal(&t.name, p.partition_index) {
                        None => codes.next().unwrap_or(0),
                        Some(code) => code,
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One group's committed offsets as (topic, [(partition, offset, epoch, metadata, code)]).
type FetchedTopics = Vec<(String, Vec<(i32, i64, i32, Option<String>, i16)>)>;

/// The committed offsets of `group`. With `require_stable` (KIP-447, v7+), a partition
/// whose offset a transaction still holds pending is answered UNSTABLE_OFFSET_COMMIT, so
/// the consumer retries rather than start from an offset about to change.
///
/// Needs DESCRIBE on the group; topics the principal may not DESCRIBE are left out of an
/// all-topics fetch and answered TOPIC_AUTHORIZATION_FAILED when named.
fn fetch_group(
    broker: &Arc<Broker>,
    access: &Access,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Result<FetchedTopics, i16> {
    if group_denied(access, AclOperation::Describe, group) {
        return Err(GROUP_DENIED);
    }
    let named = topics.is_some();
    let describable = |t: &str| access.allows(AclOperation::Describe, ResourceType::Topic, t);
    let rows = broker.coordinator.fetch_offsets(group, topics.as_deref())?;
    let mut out: FetchedTopics = Vec::new();
    for (t, p, v) in rows {
        let allowed = describable(&t);
        if !allowed && !named {
            continue;
        }
        let entry = match v {
            _ if !allowed => (
                p,
                -1,
                -1,
                Some(String::new()),
                ResponseError::TopicAuthorizationFailed.code(),
            ),
            _ if require_stable && broker.coordinator.has_pending_txn_offset(group, &t, p) => (
                p,
                -1,
                -1,
                Some(String::new()),
                ResponseError::UnstableOffsetCommit.code(),
            ),
            Some(v) => (p, v.offset, v.leader_epoch, Some(v.metadata), 0),
            None => (p, -1, -1, Some(String::new()), 0),
        };
        match out.last_mut() {
            Some((name, parts)) if *name == t => parts.push(entry),
            _ => out.push((t, vec![entry])),
        }
    }
    Ok(out)
}

pub(super) fn offset_fetch(
    broker: &Arc<Broker>,
    access: &Access,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                let mut out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                match fetch_group(broker, access, &g.group_id, topics, request.require_stable) {
                    Ok(ts) => {
                        out.topics = ts
                            .into_iter()
                            .map(|(name, parts)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(s(name)))
                                    .with_partitions(
                                        parts
                                            .into_iter()
                                            .map(|(p, o, e, m, c)| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(o)
                                                    .with_committed_leader_epoch(e)
                                                    .with_metadata(m.map(s))
                                                    .with_error_code(c)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect()
                    }
                    Err(e) => out.error_code = e,
                }
                out
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let mut out = OffsetFetchResponse::default();
    match fetch_group(
        broker,
        access,
        &request.group_id,
        topics,
        version >= 7 && request.require_stable,
    ) {
        Ok(ts) => {
            out.topics = ts
                .into_iter()
                .map(|(name, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(s(name)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|(p, o, e, m, c)| {
                                    let mut r = OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(o)
                                        .with_metadata(m.map(s))
                                        .with_error_code(c);
                                    if version >= 5 {
                                        r.committed_leader_epoch = e;
                                    }
                                    r
                                })
                                .collect(),
                        )
                })
                .collect()
        }
        Err(e) if version >= 2 => out.error_code = e,
        Err(_) => {}
    }
    out
}

/// ListGroups: every group with DESCRIBE on the cluster, else those the principal may
/// DESCRIBE.
pub(super) fn list_groups(
    broker: &Arc<Broker>,
    access: &Access,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_string())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|t| t.to_lowercase())
        .collect();
    let groups = broker.coordinator.list_groups_typed(&states);
    let all = access.allows_cluster(AclOperation::Describe);
    ListGroupsResponse::default().with_groups(
        groups
            .into_iter()
            .filter(|(_, _, _, kind)| types.is_empty() || types.iter().any(|t| t == kind))
            .filter(|(id, ..)| all || !group_denied(access, AclOperation::Describe, id))
            .map(|(id, protocol_type, state, kind)| {
                let mut g = ListedGroup::default()
                    .with_group_id(GroupId(s(id)))
                    .with_protocol_type(s(protocol_type));
                if version >= 4 {
                    g.group_state = s(state);
                }
                if version >= 5 {
                    g.group_type = s(kind);
                }
                g
            })
            .collect(),
    )
}

pub(super) fn describe_groups(
    broker: &Arc<Broker>,
    access: &Access,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            if group_denied(access, AclOperation::Describe, &id) {
                return DescribedGroup::default()
                    .with_error_code(GROUP_DENIED)
                    .with_group_id(id)
                    .with_authorized_operations(NOT_REQUESTED);
            }
            let d = broker.coordinator.describe_group(&id);
            let mut g = DescribedGroup::default()
                .with_error_code(d.error)
                .with_group_id(id)
                .with_group_state(s(d.state))
                .with_protocol_type(s(d.protocol_type))
                .with_protocol_data(s(d.protocol))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            let mut out = DescribedGroupMember::default()
                                .with_member_id(s(m.member_id))
                                .with_client_id(s(m.client_id))
                                .with_client_host(s(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment);
                            if version >= 4 {
                                out.group_instance_id = m.group_instance_id.map(s);
                            }
                            out
                        })
                        .collect(),
                );
            if version >= 3 {
                g.authorized_operations = if request.include_authorized_operations {
                    access.operations(ResourceType::Group, &g.group_id)
                } else {
                    NOT_REQUESTED
                };
            }
            g
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(super) fn delete_groups(
    broker: &Arc<Broker>,
    access: &Access,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    DeleteGroupsResponse::default().with_results(
        request
            .groups_names
            .into_iter()
            .map(|g| {
                let code = if group_denied(access, AclOperation::Delete, &g) {
                    GROUP_DENIED
                } else {
                    broker.coordinator.delete_group(&g)
                };
                DeletableGroupResult::default()
                    .with_group_id(g)
                    .with_error_code(code)
            })
            .collect(),
    )
}

/// OffsetDelete: DELETE on the group, READ on each topic.
pub(super) fn offset_delete(
    broker: &Arc<Broker>,
    access: &Access,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    if group_denied(access, AclOperation::Delete, &request.group_id) {
        return OffsetDeleteResponse::default().with_error_code(GROUP_DENIED);
    }
    let readable = |t: &str| access.allows(AclOperation::Read, ResourceType::Topic, t);
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .filter(|t| readable(&t.name))
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    match broker
        .coordinator
        .delete_offsets(&request.group_id, &partitions)
    {
        Err(e) => OffsetDeleteResponse::default().with_error_code(e),
        Ok(codes) => {
            let mut codes = codes.into_iter();
            OffsetDeleteResponse::default().with_topics(
                request
                    .topics
                    .into_iter()
                    .map(|t| {
                        let allowed = readable(&t.name);
                        OffsetDeleteResponseTopic::default()
                            .with_name(t.name)
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        let code = if allowed {
                                            codes.next().unwrap_or(0)
                                        } else {
                                            ResponseError::TopicAuthorizationFailed.code()
                                        };
                                        OffsetDeleteResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
        }
    }
}

/// The cluster's topics as the KIP-848 assignors see them: name to (id, partitions).
fn topics_view(broker: &Arc<Broker>) -> strom_coordinator::TopicsView {
    broker
        .image()
        .topics
        .values()
        .map(|t| (t.name.clone(), (t.topic_id, t.partitions.len() as i32)))
        .collect()
}

fn assignment_of(
    tps: impl IntoIterator<Item = (uuid::Uuid, Vec<i32>)>,
) -> strom_coordinator::Assignment {
    tps.into_iter()
        .map(|(t, ps)| (t, ps.into_iter().collect()))
        .collect()
}

/// ConsumerGroupHeartbeat (KIP-848): join, heartbeat, reconcile, leave. Needs READ on the
/// group and DESCRIBE on every topic subscribed to by name.
pub(super) async fn consumer_group_heartbeat(
    broker: &Arc<Broker>,
    access: &Access,
    request: ConsumerGroupHeartbeatRequest,
    client_id: &str,
    peer: SocketAddr,
) -> ConsumerGroupHeartbeatResponse {
    use kafka_protocol::messages::consumer_group_heartbeat_response::{
        Assignment, TopicPartitions,
    };
    let refused = |code: ResponseError, message: String| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(s(message)))
            .with_member_epoch(-1)
    };
    if group_denied(access, AclOperation::Read, &request.group_id) {
        return refused(
            ResponseError::GroupAuthorizationFailed,
            "group authorization failed".into(),
        );
    }
    let hidden: Vec<String> = request
        .subscribed_topic_names
        .iter()
        .flatten()
        .filter(|t| !access.allows(AclOperation::Describe, ResourceType::Topic, t))
        .map(|t| t.to_string())
        .collect();
    if !hidden.is_empty() {
        return refused(
            ResponseError::TopicAuthorizationFailed,
            format!("not authorized to describe topics {}", hidden.join(", ")),
        );
    }
    let req = strom_coordinator::consumer_group::Heartbeat {
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|i| i.to_string()),
        rack_id: request.rack_id.map(|r| r.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.to_string()).collect()),
        subscribed_topic_regex: request.subscribed_topic_regex.map(|r| r.to_string()),
        server_assignor: request.server_assignor.map(|a| a.to_string()),
        owned: request
            .topic_partitions
            .map(|tps| assignment_of(tps.into_iter().map(|tp| (tp.topic_id, tp.partitions)))),
        client_id: client_id.to_string(),
        client_host: format!("/{}", peer.ip()),
    };
    let topics = topics_view(broker);
    let (session, interval) = broker.group_timeouts(&broker.image(), &request.group_id);
    let outcome = match broker.coordinator.consumer_heartbeat_with_session(
        &request.group_id,
        req,
        &topics,
        session,
    ) {
        // Answered once the member and assignment records it wrote are replicated.
        Ok(r) => broker
            .wait_group_replicated(&request.group_id, GroupWrite::Other)
            .await
            .map(|()| r),
        Err(code) => Err(code),
    };
    match outcome {
        Ok(r) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(s(r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(interval)
            .with_assignment(r.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(t, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(t)
                                .with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            })),
        Err(code) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code)
            .with_member_epoch(-1)
            .with_heartbeat_interval_ms(interval),
    }
}

/// ConsumerGroupDescribe: KIP-848 groups; classic ones are GROUP_ID_NOT_FOUND, as in Kafka.
pub(super) fn consumer_group_describe(
    broker: &Arc<Broker>,
    access: &Access,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    use kafka_protocol::messages::consumer_group_describe_response::{
        Assignment, DescribedGroup, Member, TopicPartitions,
    };
    let group_ops = |id: &str| {
        if request.include_authorized_operations {
            access.operations(ResourceType::Group, id)
        } else {
            NOT_REQUESTED
        }
    };
    let image = broker.image();
    let render = |a: &strom_coordinator::Assignment| {
        Assignment::default().with_topic_partitions(
            a.iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(*t)
                        .with_topic_name(TopicName(s(image
                            .topic_by_id(t)
                            .map(|x| x.name.clone())
                            .unwrap_or_default())))
                        .with_partitions(ps.iter().copied().collect())
                })
                .collect(),
        )
    };
    let groups = request
        .group_ids
        .into_iter()
        .map(|id| match broker.coordinator.consumer_describe(&id) {
            _ if group_denied(access, AclOperation::Describe, &id) => DescribedGroup::default()
                .with_group_id(id)
                .with_error_code(GROUP_DENIED)
                .with_authorized_operations(NOT_REQUESTED),
            Err(code) => DescribedGroup::default()
                .with_authorized_operations(group_ops(&id))
                .with_group_id(id)
                .with_error_code(code)
                .with_group_state(s("Dead")),
            Ok(d) => DescribedGroup::default()
                .with_authorized_operations(group_ops(&id))
                .with_group_id(id)
                .with_group_state(s(d.state))
                .with_group_epoch(d.group_epoch)
                .with_assignment_epoch(d.assignment_epoch)
                .with_assignor_name(s(d.assignor))
                .with_members(
                    d.members
                        .iter()
                        .map(|(m, target)| {
                            Member::default()
                                .with_member_id(s(m.id.clone()))
                                .with_instance_id(m.instance_id.clone().map(s))
                                .with_rack_id(m.rack_id.clone().map(s))
                                .with_member_epoch(m.epoch)
                                .with_client_id(s(m.client_id.clone()))
                                .with_client_host(s(m.client_host.clone()))
                                .with_subscribed_topic_names(
                                    m.subscribed
                                        .iter()
                                        .map(|t| TopicName(s(t.clone())))
                                        .collect(),
                                )
                                .with_subscribed_topic_regex(m.regex.clone().map(s))
                                .with_assignment(render(&m.assigned))
                                .with_target_assignment(render(target))
                        })
                        .collect(),
                ),
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
