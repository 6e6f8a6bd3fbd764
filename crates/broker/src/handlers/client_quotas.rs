//! DescribeClientQuotas and AlterClientQuotas: client quotas in the metadata log (DESCRIBE
//! and ALTER configs on the cluster, as Kafka checks), and the answers of the topic APIs
//! that `controller_mutation_rate` refuses (KIP-599).

use std::time::Duration;

use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlteredEntity, EntryData as AlteredEntry,
};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_metadata::controller::quotas::QuotaChange;
use strom_metadata::ControllerRequest;
use strom_types::acl::AclOperation;
use strom_types::quota::{self, QuotaEntity, QuotaValue, CLIENT_ID, USER};

use crate::authz::Access;
use crate::broker::{Broker, Refusal};
use crate::quotas::millis;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// DescribeClientQuotas match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

pub(super) fn describe(
    broker: &Broker,
    access: &Access,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let refuse = |e: ResponseError, message: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(text(&message)))
    };
    if !access.allows_cluster(AclOperation::DescribeConfigs) {
        return refuse(
            ResponseError::ClusterAuthorizationFailed,
            "cluster authorization failed".into(),
        );
    }
    // Each component filters one entity type; `strict`: the entity has no other type.
    let mut filters: Vec<(&str, i8, Option<String>)> = Vec::new();
    for c in &request.components {
        let kind = c.entity_type.as_str();
        if kind != USER && kind != CLIENT_ID {
            return refuse(
                ResponseError::InvalidRequest,
                format!("unknown quota entity type '{kind}'"),
            );
        }
        if filters.iter().any(|(k, ..)| *k == kind) {
            return refuse(
                ResponseError::InvalidRequest,
                format!("entity type '{kind}' is filtered twice"),
            );
        }
        if !matches!(c.match_type, MATCH_EXACT | MATCH_DEFAULT | MATCH_ANY)
            || (c.match_type == MATCH_EXACT) != c._match.is_some()
        {
            return refuse(
                ResponseError::InvalidRequest,
                format!("invalid match type {} for '{kind}'", c.match_type),
            );
        }
        filters.push((kind, c.match_type, c._match.as_ref().map(|m| m.to_string())));
    }
    let image = broker.image();
    let entries = image
        .client_quotas
        .iter()
        .filter(|(entity, _)| {
            let parts = entity.parts();
            let matched = filters.iter().all(|(kind, how, name)| {
                parts.iter().any(|(k, n)| {
                    k == kind
                        && match *how {
                            MATCH_EXACT => *n == name.as_deref(),
                            MATCH_DEFAULT => n.is_none(),
                            _ => n.is_some(),
                        }
                })
            });
            matched && (!request.strict || parts.len() == filters.len())
        })
        .map(|(entity, values)| {
            EntryData::default()
                .with_entity(
                    entity
                        .parts()
                        .into_iter()
                        .map(|(k, n)| {
                            EntityData::default()
                                .with_entity_type(text(k))
                                .with_entity_name(n.map(text))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| ValueData::default().with_key(text(k)).with_value(v.0))
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

pub(super) async fn alter(
    broker: &Broker,
    access: &Access,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let allowed = access.allows_cluster(AclOperation::AlterConfigs);
    let mut outcomes: Vec<Result<(), Refusal>> = Vec::new();
    let (mut changes, mut slots) = (Vec::new(), Vec::new());
    for e in &request.entries {
        let change = (|| {
            if !allowed {
                return Err(Refusal::new(
                    ResponseError::ClusterAuthorizationFailed,
                    "cluster authorization failed",
                ));
            }
            let invalid = |m: String| Refusal::new(ResponseError::InvalidRequest, m);
            let entity = QuotaEntity::from_parts(
                e.entity
                    .iter()
                    .map(|p| (p.entity_type.as_str(), p.entity_name.as_deref())),
            )
            .map_err(invalid)?;
            let mut ops = Vec::new();
            for op in &e.ops {
                let key = op.key.to_string();
                if ops.iter().any(|(k, _)| *k == key) {
                    return Err(invalid(format!("'{key}' is given twice")));
                }
                let value = if op.remove {
                    if !quota::KEYS.contains(&key.as_str()) {
                        return Err(invalid(format!("'{key}' is not a quota key")));
                    }
                    None
                } else {
                    quota::validate(&key, op.value).map_err(invalid)?;
                    Some(QuotaValue(op.value))
                };
                ops.push((key, value));
            }
            Ok(QuotaChange { entity, ops })
        })();
        match change {
            Ok(c) => {
                slots.push(outcomes.len());
                outcomes.push(Ok(()));
                changes.push(c);
            }
            Err(r) => outcomes.push(Err(r)),
        }
    }
    if !changes.is_empty() && !request.validate_only {
        let reply = broker
            .submit(ControllerRequest::AlterClientQuotas { changes })
            .await;
        super::spread(&mut outcomes, &slots, reply, super::outcomes);
    }
    let entries = request
        .entries
        .iter()
        .zip(outcomes)
        .map(|(e, outcome)| {
            let entry = AlteredEntry::default().with_entity(
                e.entity
                    .iter()
                    .map(|p| {
                        AlteredEntity::default()
                            .with_entity_type(p.entity_type.clone())
                            .with_entity_name(p.entity_name.clone())
                    })
                    .collect(),
            );
            match outcome {
                Ok(()) => entry,
                Err(r) => entry
                    .with_error_code(r.code)
                    .with_error_message(Some(text(&r.message))),
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

fn exceeded(wait: Duration) -> (i16, Option<StrBytes>) {
    (
        ResponseError::ThrottlingQuotaExceeded.code(),
        Some(text(&format!(
            "the controller mutation quota is exceeded; retry in {} ms",
            millis(wait)
        ))),
    )
}

/// CreateTopics refused whole by the mutation quota.
pub(super) fn throttled_create_topics(
    request: &CreateTopicsRequest,
    wait: Duration,
) -> CreateTopicsResponse {
    let (code, message) = exceeded(wait);
    CreateTopicsResponse::default()
        .with_throttle_time_ms(millis(wait))
        .with_topics(
            request
                .topics
                .iter()
                .map(|t| {
                    CreatableTopicResult::default()
                        .with_name(t.name.clone())
                        .with_error_code(code)
                        .with_error_message(message.clone())
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                })
                .collect(),
        )
}

/// CreatePartitions refused whole by the mutation quota.
pub(super) fn throttled_create_partitions(
    request: &CreatePartitionsRequest,
    wait: Duration,
) -> CreatePartitionsResponse {
    let (code, message) = exceeded(wait);
    CreatePartitionsResponse::default()
        .with_throttle_time_ms(millis(wait))
        .with_results(
            request
                .topics
                .iter()
                .map(|t| {
                    CreatePartitionsTopicResult::default()
                        .with_name(t.name.clone())
                        .with_error_code(code)
                        .with_error_message(message.clone())
                })
                .collect(),
        )
}

/// DeleteTopics refused whole by the mutation quota.
pub(super) fn throttled_delete_topics(
    request: &DeleteTopicsRequest,
    wait: Duration,
) -> DeleteTopicsResponse {
    let (code, message) = exceeded(wait);
    let by_name = request
        .topic_names
        .iter()
        .map(|n| (Some(n.clone()), uuid::Uuid::nil()));
    let by_id = request.topics.iter().map(|t| (t.name.clone(), t.topic_id));
    DeleteTopicsResponse::default()
        .with_throttle_time_ms(millis(wait))
        .with_responses(
            by_name
                .chain(by_id)
                .map(|(name, id)| {
                    DeletableTopicResult::default()
                        .with_name(name)
                        .with_topic_id(id)
                        .with_error_code(code)
                        .with_error_message(message.clone())
                })
                .collect(),
        )
}
