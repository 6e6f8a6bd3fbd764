//! The admin client's consumer-group and offset calls: list, describe (members and their
//! assignments, for classic and KIP-848 groups) and delete groups; list, alter and delete a
//! group's committed offsets; list partition offsets (earliest, latest, by time). Group
//! calls go to the group's coordinator (FindCoordinator), offset lookups to each partition's
//! leader, as Kafka's AdminClient does.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    BrokerId, ConsumerGroupDescribeRequest, DeleteGroupsRequest, DescribeGroupsRequest, GroupId,
    ListGroupsRequest, ListOffsetsRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::Request as _;
use uuid::Uuid;

use crate::admin::{check, s, Admin};
use crate::error::{ClientError, Result};
use crate::group::{
    by_topic, decode_assignment, find_coordinator, offset_commit_topics, TopicPartition,
};

const GROUP_ID_NOT_FOUND: i16 = 69;

/// A group as ListGroups gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// State (Empty, Stable, ...; empty when the broker does not say).
    pub state: String,
    /// Protocol type (`consumer` for consumer groups; empty for offset-only groups).
    pub protocol_type: String,
    /// Group type: `classic` or `consumer` (KIP-848); empty when the broker does not say.
    pub group_type: String,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub host: String,
    /// Partitions assigned to it.
    pub assignment: Vec<TopicPartition>,
}

/// A described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State: Empty, PreparingRebalance, CompletingRebalance, Stable, Dead (classic);
    /// Empty, Assigning, Reconciling, Stable (KIP-848).
    pub state: String,
    /// `classic` or `consumer` (KIP-848).
    pub group_type: String,
    /// The protocol type the members joined with (`consumer` for consumer groups, empty for
    /// a group that only has committed offsets).
    pub protocol_type: String,
    /// The assignor: the classic protocol's chosen one, or the coordinator's under KIP-848.
    pub assignor: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The next offset the group reads.
    pub offset: i64,
    /// The metadata committed with it.
    pub metadata: String,
}

/// Which offset of a partition to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the high watermark).
    Latest,
    /// The first offset whose timestamp is at or after this one (ms).
    Timestamp(i64),
}

/// An offset found by [`Admin::list_offsets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset (-1 when no record is at or after the timestamp).
    pub offset: i64,
    /// The record's timestamp for a time lookup, else -1.
    pub timestamp: i64,
}

impl Admin {
    /// Every group of every broker (ListGroups).
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        self.cluster.all_topics(true).await?;
        let mut out = BTreeMap::new();
        for addr in self.cluster.broker_addresses() {
            let conn = self.cluster.connection(&addr).await?;
            let r = conn.send(&ListGroupsRequest::default()).await?;
            check(r.error_code)?;
            for g in r.groups {
                out.insert(
                    g.group_id.0.to_string(),
                    GroupListing {
                        group_id: g.group_id.0.to_string(),
                        state: g.group_state.to_string(),
                        protocol_type: g.protocol_type.to_string(),
                        group_type: g.group_type.to_string(),
                    },
                );
            }
        }
        Ok(out.into_values().collect())
    }

    /// Describes groups with their members and assignments. A group that does not exist is
    /// GROUP_ID_NOT_FOUND.
    pub async fn describe_groups(&self, groups: &[String]) -> Result<Vec<GroupDescription>> {
        let mut out = Vec::new();
        for group in groups {
            out.push(self.describe_group(group).await?);
        }
        Ok(out)
    }

    async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let conn = find_coordinator(&self.cluster, group).await?;
        // KIP-848 first, where the broker has it; a classic group is not found there.
        if conn.version::<ConsumerGroupDescribeRequest>().is_ok() {
            let r = conn
                .send(
                    &ConsumerGroupDescribeRequest::default()
                        .with_group_ids(vec![GroupId(s(group))]),
                )
                .await?;
            let g = r.groups.into_iter().next().ok_or_else(|| {
                ClientError::Protocol("empty ConsumerGroupDescribe response".into())
            })?;
            if g.error_code == 0 {
                let mut members = Vec::with_capacity(g.members.len());
                for m in g.members {
                    let mut assignment = Vec::new();
                    for t in &m.assignment.topic_partitions {
                        let Some(topic) = self.topic_name(&t.topic_name, t.topic_id).await? else {
                            continue; // deleted since it was assigned
                        };
                        assignment.extend(t.partitions.iter().map(|p| (topic.clone(), *p)));
                    }
                    members.push(MemberDescription {
                        member_id: m.member_id.to_string(),
                        instance_id: m.instance_id.map(|i| i.to_string()),
                        client_id: m.client_id.to_string(),
                        host: m.client_host.to_string(),
                        assignment,
                    });
                }
                return Ok(GroupDescription {
                    group_id: group.to_string(),
                    state: g.group_state.to_string(),
                    group_type: "consumer".into(),
                    protocol_type: "consumer".into(),
                    assignor: g.assignor_name.to_string(),
                    members,
                });
            }
            if g.error_code != GROUP_ID_NOT_FOUND {
                return Err(ClientError::kafka(g.error_code));
            }
        }
        let r = conn
            .send(&DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]))
            .await?;
        let g = r
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol("empty DescribeGroups response".into()))?;
        check(g.error_code)?;
        if g.group_state.as_str() == "Dead" {
            return Err(ClientError::kafka(GROUP_ID_NOT_FOUND));
        }
        let mut members = Vec::new();
        for m in g.members {
            members.push(MemberDescription {
                member_id: m.member_id.to_string(),
                instance_id: m.group_instance_id.map(|i| i.to_string()),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment: if g.protocol_type.as_str() == "consumer" {
                    decode_assignment(&m.member_assignment).unwrap_or_default()
                } else {
                    Vec::new()
                },
            });
        }
        Ok(GroupDescription {
            group_id: group.to_string(),
            state: g.group_state.to_string(),
            group_type: "classic".into(),
            protocol_type: g.protocol_type.to_string(),
            assignor: g.protocol_data.to_string(),
            members,
        })
    }

    /// The name of a topic a KIP-848 assignment names: the one the broker gave, else the one
    /// Metadata has for its id (`None` if the topic is gone).
    async fn topic_name(&self, name: &TopicName, id: Uuid) -> Result<Option<String>> {
        if !name.0.is_empty() {
            return Ok(Some(name.0.to_string()));
        }
        self.cluster.topic_name(id.into_bytes()).await
    }

    /// Deletes groups, each at its coordinator, stopping at the first that fails: a group
    /// with members is NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND. Call it once per
    /// group to learn every group's outcome.
    pub async fn delete_groups(&self, groups: &[String]) -> Result<()> {
        for group in groups {
            let conn = find_coordinator(&self.cluster, group).await?;
            let r = conn
                .send(&DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]))
                .await?;
            for g in r.results {
                check(g.error_code)?;
            }
        }
        Ok(())
    }

    /// Every offset the group has committed.
    pub async fn list_group_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>> {
        let conn = find_coordinator(&self.cluster, group).await?;
        let version = conn.version::<OffsetFetchRequest>()?;
        if version < 2 {
            // Asking for every topic (topics = null) came with v2.
            return Err(ClientError::UnsupportedVersion {
                api_key: OffsetFetchRequest::KEY,
            });
        }
        let mut request = OffsetFetchRequest::default();
        if version >= 8 {
            request.groups = vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(None)];
        } else {
            request.group_id = GroupId(s(group));
            request.topics = None; // all
        }
        let r = conn.send_at(&request, version).await?;
        let mut out = Vec::new();
        if version >= 8 {
            for g in r.groups {
                check(g.error_code)?;
                for t in g.topics {
                    for p in t.partitions {
                        check(p.error_code)?;
                        out.push(CommittedOffset {
                            topic: t.name.0.to_string(),
                            partition: p.partition_index,
                            offset: p.committed_offset,
                            metadata: p.metadata.map(|m| m.to_string()).unwrap_or_default(),
                        });
                    }
                }
            }
        } else {
            check(r.error_code)?;
            for t in r.topics {
                for p in t.partitions {
                    check(p.error_code)?;
                    out.push(CommittedOffset {
                        topic: t.name.0.to_string(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        metadata: p.metadata.map(|m| m.to_string()).unwrap_or_default(),
                    });
                }
            }
        }
        out.retain(|o| o.offset >= 0);
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// Sets the group's committed offsets, as an admin does for an inactive group
    /// (generation -1, no member). A group with active members refuses (UNKNOWN_MEMBER_ID
    /// or similar).
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<()> {
        let conn = find_coordinator(&self.cluster, group).await?;
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(offset_commit_topics(offsets));
        let r = conn.send(&request).await?;
        for t in r.topics {
            for p in t.partitions {
                check(p.error_code)?;
            }
        }
        Ok(())
    }

    /// Deletes committed offsets of an empty group, or of topics no member subscribes to
    /// (GROUP_SUBSCRIBED_TO_TOPIC otherwise).
    pub async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        let conn = find_coordinator(&self.cluster, group).await?;
        let request = OffsetDeleteRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(
                by_topic(partitions)
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|p| {
                                        OffsetDeleteRequestPartition::default()
                                            .with_partition_index(p)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let r = conn.send(&request).await?;
        check(r.error_code)?;
        for t in r.topics {
            for p in t.partitions {
                check(p.error_code)?;
            }
        }
        Ok(())
    }

    /// Just the offsets of [`Admin::list_offsets`] (none asked: none answered).
    pub async fn offsets_of(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<HashMap<TopicPartition, i64>> {
        if partitions.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(self
            .list_offsets(partitions, spec)
            .await?
            .into_iter()
            .map(|(tp, o)| (tp, o.offset))
            .collect())
    }

    /// A group's committed offsets with each partition's end offset (the high watermark):
    /// (partition, committed, end), the end -1 when it could not be found. Lag is
    /// `end - committed`.
    pub async fn group_lag(&self, group: &str) -> Result<Vec<(TopicPartition, i64, i64)>> {
        let committed = self.list_group_offsets(group).await?;
        let partitions: Vec<TopicPartition> = committed
            .iter()
            .map(|o| (o.topic.clone(), o.partition))
            .collect();
        let ends = self.offsets_of(&partitions, OffsetSpec::Latest).await?;
        Ok(partitions
            .into_iter()
            .zip(committed)
            .map(|(tp, o)| {
                let end = ends.get(&tp).copied().unwrap_or(-1);
                (tp, o.offset, end)
            })
            .collect())
    }

    /// Offsets of partitions by `spec`, asked of each partition's leader.
    pub async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<HashMap<TopicPartition, ListedOffset>> {
        let timestamp = match spec {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(t) => t,
        };
        let mut by_leader: HashMap<String, BTreeMap<&str, Vec<i32>>> = HashMap::new();
        for (t, p) in partitions {
            let conn = self.cluster.leader(t, *p).await?;
            by_leader
                .entry(conn.addr().to_string())
                .or_default()
                .entry(t)
                .or_default()
                .push(*p);
        }
        let mut out = HashMap::new();
        for (addr, topics) in by_leader {
            let conn = self.cluster.connection(&addr).await?;
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            ListOffsetsTopic::default()
                                .with_name(TopicName(s(t)))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|p| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(p)
                                                .with_timestamp(timestamp)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let r = conn.send(&request).await?;
            for t in r.topics {
                for p in t.partitions {
                    check(p.error_code)?;
                    out.insert(
                        (t.name.0.to_string(), p.partition_index),
                        ListedOffset {
                            offset: p.offset,
                            timestamp: p.timestamp,
                        },
                    );
                }
            }
        }
        Ok(out)
    }
}
