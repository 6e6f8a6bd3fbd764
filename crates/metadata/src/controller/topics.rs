//! Topic, partition, config and producer-id changes: checked against the image, returned as
//! the records that make them.

use std::collections::BTreeMap;

use super::placement::{self, Candidate};
use super::{ConfigResource, ControllerError, ControllerRequest, NewTopic};
use crate::image::{MetadataImage, TopicImage};
use crate::records::{Configs, MetadataRecord};

/// Makes the record that sets (`Some`) or removes (`None`) one config of a resource.
type RecordFor = Box<dyn Fn(String, Option<String>) -> MetadataRecord>;

/// Producer ids are reserved this many at a time (Kafka's block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// The records of a topic, partition or config change, and the id of a created topic.
pub fn change(
    image: &MetadataImage,
    request: ControllerRequest,
) -> Result<(Vec<MetadataRecord>, Option<uuid::Uuid>), ControllerError> {
    match request {
        ControllerRequest::DeleteTopic { name } => {
            let topic = existing(image, &name)?;
            Ok((
                vec![MetadataRecord::RemoveTopic {
                    topic_id: topic.topic_id,
                }],
                Some(topic.topic_id),
            ))
        }
        ControllerRequest::CreatePartitions {
            name,
            count,
            assignment,
            validate_only,
        } => {
            let topic = existing(image, &name)?;
            let current = topic.partitions.len() as i32;
            if count <= current {
                return Err(ControllerError::InvalidPartitions(format!(
                    "topic currently has {current} partitions, {count} would not be an increase"
                )));
            }
            let replicas = match assignment {
                Some(a) => {
                    if a.len() as i32 != count - current {
                        return Err(ControllerError::InvalidReplicaAssignment(format!(
                            "{} new partitions but {} assignments",
                            count - current,
                            a.len()
                        )));
                    }
                    check_assignment(image, &a)?;
                    a
                }
                None => {
                    let rf = topic
                        .partitions
                        .values()
                        .next()
                        .map_or(1, |p| p.replicas.len() as i16);
                    place(image, count - current, rf, current)?
                }
            };
            if validate_only {
                return Ok((Vec::new(), None));
            }
            Ok((
                partition_records(image, topic.topic_id, current, replicas).collect(),
                None,
            ))
        }
        ControllerRequest::SetConfigs {
            resource,
            configs,
            validate_only,
        } => {
            let (current, record): (Configs, RecordFor) = match resource {
                ConfigResource::Topic(topic) => {
                    let current = existing(image, &topic)?.configs.clone();
                    (
                        current,
                        Box::new(move |name, value| MetadataRecord::TopicConfig {
                            topic: topic.clone(),
                            name,
                            value,
                        }),
                    )
                }
                ConfigResource::Broker(broker) => (
                    image
                        .broker_configs
                        .get(&broker)
                        .cloned()
                        .unwrap_or_default(),
                    Box::new(move |name, value| MetadataRecord::BrokerConfig {
                        broker: broker.clone(),
                        name,
                        value,
                    }),
                ),
                ConfigResource::Group(group) => (
                    image.group_configs.get(&group).cloned().unwrap_or_default(),
                    Box::new(move |name, value| MetadataRecord::GroupConfig {
                        group: group.clone(),
                        name,
                        value,
                    }),
                ),
            };
            if validate_only {
                return Ok((Vec::new(), None));
            }
            Ok((config_changes(&current, &configs, record), None))
        }
        ControllerRequest::CreateTopics { .. }
        | ControllerRequest::AllocateProducerIds { .. }
        | ControllerRequest::RegisterBroker { .. }
        | ControllerRequest::Heartbeat { .. }
        | ControllerRequest::AlterPartition(_)
        | ControllerRequest::ElectLeaders { .. }
        | ControllerRequest::AlterReassignments { .. }
        | ControllerRequest::AlterScramCredentials { .. }
        | ControllerRequest::CreateAcls { .. }
        | ControllerRequest::AlterClientQuotas { .. }
        | ControllerRequest::DeleteAcls { .. } => Err(ControllerError::InvalidRequest(
            "not a topic or config change".into(),
        )),
    }
}

/// The records that create `topics`, and each one's outcome in order. The image is
/// advanced as topics are placed, so a name given twice is refused the second time and
/// placement sees the brokers as they are.
pub fn create_topics(
    image: &MetadataImage,
    topics: Vec<NewTopic>,
    validate_only: bool,
) -> (
    Vec<MetadataRecord>,
    Vec<Result<uuid::Uuid, ControllerError>>,
) {
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(topics.len());
    let mut seen = std::collections::BTreeSet::new();
    for topic in topics {
        let outcome = create_topic(image, topic, &mut seen);
        match outcome {
            Ok((topic_records, id)) => {
                if !validate_only {
                    records.extend(topic_records);
                }
                results.push(Ok(id));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    (records, results)
}

fn create_topic(
    image: &MetadataImage,
    topic: NewTopic,
    seen: &mut std::collections::BTreeSet<String>,
) -> Result<(Vec<MetadataRecord>, uuid::Uuid), ControllerError> {
    let NewTopic {
        name,
        partitions,
        replication_factor,
        configs,
        assignment,
    } = topic;
    if image.topics.contains_key(&name) || !seen.insert(name.clone()) {
        return Err(ControllerError::TopicAlreadyExists(name));
    }
    let replicas = match assignment {
        Some(a) => {
            check_assignment(image, &a)?;
            a
        }
        None => place(image, partitions, replication_factor, 0)?,
    };
    let topic_id = uuid::Uuid::new_v4();
    let mut records = vec![MetadataRecord::Topic {
        name: name.clone(),
        topic_id,
    }];
    records.extend(
        configs
            .into_iter()
            .map(|(k, v)| MetadataRecord::TopicConfig {
                topic: name.clone(),
                name: k,
                value: Some(v),
            }),
    );
    records.extend(partition_records(image, topic_id, 0, replicas));
    Ok((records, topic_id))
}

/// The next block of producer ids for `broker_id`: (records, start, end).
pub fn allocate_producer_ids(
    image: &MetadataImage,
    broker_id: i32,
) -> (Vec<MetadataRecord>, i64, i64) {
    let start = image.next_producer_id;
    let end = start + PRODUCER_ID_BLOCK_SIZE;
    (
        vec![MetadataRecord::ProducerIds {
            broker_id,
            next_producer_id: end,
        }],
        start,
        end,
    )
}

/// The records that turn a resource's `current` configs into `wanted`: removals first.
pub fn config_changes(
    current: &Configs,
    wanted: &BTreeMap<String, String>,
    record: impl Fn(String, Option<String>) -> MetadataRecord,
) -> Vec<MetadataRecord> {
    let removed = current
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .map(|k| record(k.clone(), None));
    let set = wanted
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| record(k.clone(), Some(v.clone())));
    removed.chain(set).collect()
}

fn existing<'a>(image: &'a MetadataImage, name: &str) -> Result<&'a TopicImage, ControllerError> {
    image
        .topics
        .get(name)
        .ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))
}

/// Replicas for `count` new partitions over the active brokers.
fn place(
    image: &MetadataImage,
    count: i32,
    replication_factor: i16,
    first_partition: i32,
) -> Result<Vec<Vec<i32>>, ControllerError> {
    if replication_factor < 1 {
        return Err(ControllerError::InvalidReplicationFactor(format!(
            "replication factor must be at least 1, got {replication_factor}"
        )));
    }
    let candidates: Vec<Candidate> = image
        .active_brokers()
        .map(|b| Candidate {
            id: b.id,
            rack: b.rack.clone(),
        })
        .collect();
    let start = rand::random::<u32>() as usize;
    let shift = rand::random::<u32>() as usize;
    placement::place(
        count,
        replication_factor,
        first_partition,
        &candidates,
        start,
        shift,
    )
    .map_err(|e| ControllerError::InvalidReplicationFactor(e.to_string()))
}

/// What a manual assignment can be checked for without the metadata, as Kafka checks it:
/// every partition names the same number of distinct brokers. Returns that number.
pub fn assignment_shape(assignment: &[Vec<i32>]) -> Result<i16, ControllerError> {
    let invalid = |m: String| Err(ControllerError::InvalidReplicaAssignment(m));
    let Some(first) = assignment.first() else {
        return invalid("the assignment names no partitions".into());
    };
    for (i, replicas) in assignment.iter().enumerate() {
        if replicas.is_empty() {
            return invalid(format!("partition {i} has no replicas"));
        }
        if replicas.len() != first.len() {
            return invalid(format!(
                "inconsistent replication factor: {} replicas for one partition, {} for another",
                first.len(),
                replicas.len()
            ));
        }
        let mut seen = replicas.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != replicas.len() {
            return invalid(format!("duplicate brokers in {replicas:?}"));
        }
    }
    i16::try_from(first.len()).or_else(|_| invalid("too many replicas".into()))
}

/// A manual assignment: its shape, and every broker it names registered.
fn check_assignment(image: &MetadataImage, assignment: &[Vec<i32>]) -> Result<(), ControllerError> {
    assignment_shape(assignment)?;
    if let Some(unknown) = assignment
        .iter()
        .flatten()
        .find(|b| !image.brokers.contains_key(b))
    {
        return Err(ControllerError::InvalidReplicaAssignment(format!(
            "unknown broker {unknown}: the registered brokers are {:?}",
            image.brokers.keys().collect::<Vec<_>>()
        )));
    }
    Ok(())
}

/// Partition records for new partitions numbered from `first`: each led by its first
/// replica that is active (else leaderless), with every replica in sync.
fn partition_records(
    image: &MetadataImage,
    topic_id: uuid::Uuid,
    first: i32,
    replicas: Vec<Vec<i32>>,
) -> impl Iterator<Item = MetadataRecord> + '_ {
    replicas.into_iter().enumerate().map(move |(i, replicas)| {
        let leader = replicas
            .iter()
            .copied()
            .find(|r| image.brokers.get(r).is_some_and(|b| b.is_active()))
            .unwrap_or(-1);
        MetadataRecord::Partition {
            topic_id,
            partition: first + i as i32,
            isr: replicas.clone(),
            replicas,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    })
}
