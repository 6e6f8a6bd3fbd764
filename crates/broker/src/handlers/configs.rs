//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (and describing the
//! broker). Topic changes are metadata records and take effect on the logs at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::broker::Broker;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

// ConfigSource values of the protocol.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

/// The broker property a topic config falls back to (Kafka's synonyms).
fn broker_synonym(topic_key: &str) -> Option<&'static str> {
    Some(match topic_key {
        "segment.bytes" => "log.segment.bytes",
        "segment.ms" => "log.roll.ms",
        "retention.ms" => "log.retention.ms",
        "retention.bytes" => "log.retention.bytes",
        "cleanup.policy" => "log.cleanup.policy",
        "flush.messages" => "log.flush.interval.messages",
        "flush.ms" => "log.flush.interval.ms",
        "max.message.bytes" => "message.max.bytes",
        "min.insync.replicas" => "min.insync.replicas",
        "index.interval.bytes" => "log.index.interval.bytes",
        "segment.index.bytes" => "log.index.size.max.bytes",
        "message.timestamp.type" => "log.message.timestamp.type",
        "delete.retention.ms" => "log.cleaner.delete.retention.ms",
        "min.cleanable.dirty.ratio" => "log.cleaner.min.cleanable.ratio",
        "min.compaction.lag.ms" => "log.cleaner.min.compaction.lag.ms",
        "file.delete.delay.ms" => "log.segment.delete.delay.ms",
        _ => return None,
    })
}

/// The protocol's ConfigType of each topic config.
fn config_type(key: &str) -> i8 {
    match key {
        "cleanup.policy" => 7,            // LIST
        "message.timestamp.type" => 2,    // STRING
        "min.cleanable.dirty.ratio" => 6, // DOUBLE
        "segment.bytes"
        | "segment.index.bytes"
        | "index.interval.bytes"
        | "max.message.bytes"
        | "min.insync.replicas" => 3, // INT
        "unclean.leader.election.enable" => 1, // BOOLEAN
        _ => 5,                           // LONG
    }
}

/// One synonym of a config: name, value, source.
type Synonym = (String, String, i8);

/// Where a topic config's value comes from, most specific first (Kafka's synonyms list):
/// the topic's own override, the broker property it falls back to, and the default.
fn topic_synonyms(
    broker: &Broker,
    overrides: &strom_metadata::records::Configs,
    key: &str,
) -> Vec<Synonym> {
    let mut out = Vec::new();
    if let Some(v) = overrides.get(key) {
        out.push((key.to_string(), v.clone(), DYNAMIC_TOPIC_CONFIG));
    }
    let broker_keys: Vec<&'static str> = match broker_synonym(key) {
        // Kafka lists every spelling of retention, the one that wins first.
        Some("log.retention.ms") => vec![
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
        Some(b) => vec![b],
        None => vec![],
    };
    for b in &broker_keys {
        if let Some(v) = broker.config.raw.get(*b) {
            out.push((b.to_string(), v.clone(), STATIC_BROKER_CONFIG));
        }
    }
    let default = if key == "min.insync.replicas" {
        Some("1".to_string())
    } else {
        strom_storage::LogConfig::default()
            .entries()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    };
    if let Some(v) = default {
        let name = broker_keys.first().copied().unwrap_or(key);
        out.push((name.to_string(), v, DEFAULT_CONFIG));
    }
    out
}

pub(super) fn describe(
    broker: &Arc<Broker>,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let image = broker.image();
    let results = request
        .resources
        .into_iter()
        .map(|r| {
            let mut out = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let name = r.resource_name.to_string();
            let entries: Vec<(String, String, i8, Vec<Synonym>)> = match r.resource_type {
                TOPIC => match image.topics.get(&name) {
                    None => {
                        out.error_code = ResponseError::UnknownTopicOrPartition.code();
                        out.error_message = Some(StrBytes::from_string(format!(
                            "topic '{name}' does not exist"
                        )));
                        return out;
                    }
                    Some(t) => {
                        let effective = broker.log_config(&image, &name);
                        let mut all: Vec<(String, String)> = effective
                            .entries()
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect();
                        let min_isr = t
                            .configs
                            .get("min.insync.replicas")
                            .cloned()
                            .unwrap_or_else(|| broker.config.min_insync_replicas.to_string());
                        all.push(("min.insync.replicas".into(), min_isr));
                        all.into_iter()
                            .map(|(k, v)| {
                                let synonyms = topic_synonyms(broker, &t.configs, &k);
                                let source =
                                    synonyms.first().map(|s| s.2).unwrap_or(DEFAULT_CONFIG);
                                (k, v, source, synonyms)
                            })
                            .collect()
                    }
                },
                BROKER if name.is_empty() || name == broker.config.node_id.to_string() => broker
                    .config
                    .raw
                    .iter()
                    .map(|(k, v)| {
                        let synonym = (k.clone(), v.clone(), STATIC_BROKER_CONFIG);
                        (k.clone(), v.clone(), STATIC_BROKER_CONFIG, vec![synonym])
                    })
                    .collect(),
                BROKER => {
                    out.error_code = ResponseError::InvalidRequest.code();
                    out.error_message = Some(StrBytes::from_string(format!(
                        "broker {name} is not this broker"
                    )));
                    return out;
                }
                other => {
                    out.error_code = ResponseError::InvalidRequest.code();
                    out.error_message = Some(StrBytes::from_string(format!(
                        "resource type {other} is not supported"
                    )));
                    return out;
                }
            };
            let keys: Option<Vec<String>> = r
                .configuration_keys
                .map(|ks| ks.iter().map(|k| k.to_string()).collect());
            out.configs = entries
                .into_iter()
                .filter(|(k, _, _, _)| keys.as_ref().is_none_or(|ks| ks.contains(k)))
                .map(|(k, v, source, synonyms)| {
                    let mut c = DescribeConfigsResourceResult::default()
                        .with_name(StrBytes::from_string(k.clone()))
                        .with_value(Some(StrBytes::from_string(v)))
                        .with_config_source(source);
                    if request.include_synonyms {
                        c.synonyms = synonyms
                            .into_iter()
                            .map(|(name, value, source)| {
                                DescribeConfigsSynonym::default()
                                    .with_name(StrBytes::from_string(name))
                                    .with_value(Some(StrBytes::from_string(value)))
                                    .with_source(source)
                            })
                            .collect();
                    }
                    if version >= 3 {
                        c.config_type = config_type(&k);
                    }
                    c
                })
                .collect();
            out
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn alter_result(
    resource_type: i8,
    name: StrBytes,
    result: Result<(), crate::broker::Refusal>,
) -> AlterConfigsResourceResponse {
    let mut out = AlterConfigsResourceResponse::default()
        .with_resource_type(resource_type)
        .with_resource_name(name);
    if let Err(r) = result {
        out.error_code = r.code;
        out.error_message = Some(StrBytes::from_string(r.message));
    }
    out
}

fn only_topics(resource_type: i8) -> Result<(), crate::broker::Refusal> {
    if resource_type == TOPIC {
        Ok(())
    } else {
        Err(crate::broker::Refusal {
            code: ResponseError::InvalidRequest.code(),
            message: "only topic configs can be altered yet".into(),
        })
    }
}

/// AlterConfigs: the given set replaces all of the topic's overrides (Kafka's semantics).
pub(super) fn alter(broker: &Arc<Broker>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let responses = request
        .resources
        .into_iter()
        .map(|r| {
            let result = only_topics(r.resource_type).and_then(|()| {
                let configs: BTreeMap<String, String> = r
                    .configs
                    .iter()
                    .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                    .collect();
                broker.set_topic_configs(&r.resource_name, &configs, request.validate_only)
            });
            alter_result(r.resource_type, r.resource_name, result)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs: SET (0), DELETE (1), APPEND (2) and SUBTRACT (3) per key.
pub(super) fn incremental_alter(
    broker: &Arc<Broker>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let image = broker.image();
    let responses = request
        .resources
        .into_iter()
        .map(|r| {
            let result = only_topics(r.resource_type).and_then(|()| {
                let name = r.resource_name.to_string();
                let mut configs = image
                    .topics
                    .get(&name)
                    .map(|t| t.configs.clone())
                    .unwrap_or_default();
                for c in &r.configs {
                    let key = c.name.to_string();
                    let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                    match c.config_operation {
                        0 => {
                            configs.insert(key, value);
                        }
                        1 => {
                            configs.remove(&key);
                        }
                        2 | 3 => {
                            let current = configs.get(&key).cloned().unwrap_or_else(|| {
                                broker
                                    .log_config(&image, &name)
                                    .entries()
                                    .into_iter()
                                    .find(|(k, _)| *k == key)
                                    .map(|(_, v)| v)
                                    .unwrap_or_default()
                            });
                            let mut items: Vec<String> = current
                                .split(',')
                                .filter(|s| !s.is_empty())
                                .map(str::to_string)
                                .collect();
                            for v in value.split(',').filter(|s| !s.is_empty()) {
                                if c.config_operation == 2 {
                                    if !items.iter().any(|i| i == v) {
                                        items.push(v.to_string());
                                    }
                                } else {
                                    items.retain(|i| i != v);
                                }
                            }
                            configs.insert(key, items.join(","));
                        }
                        other => {
                            return Err(crate::broker::Refusal {
                                code: ResponseError::InvalidRequest.code(),
                                message: format!("unknown config operation {other}"),
                            })
                        }
                    }
                }
                broker.set_topic_configs(&name, &configs, request.validate_only)
            });
            let (code, message) = match result {
                Ok(()) => (0, None),
                Err(e) => (e.code, Some(StrBytes::from_string(e.message))),
            };
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
