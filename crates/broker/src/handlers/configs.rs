//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics, brokers (dynamic
//! broker configs) and groups (KIP-848 group configs). Changes are metadata records; topic
//! and broker changes take effect on the logs at once. Describing needs DESCRIBE_CONFIGS,
//! altering ALTER_CONFIGS, on the topic, the group, or the cluster for brokers.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use strom_metadata::MetadataImage;

use strom_types::acl::{AclOperation, ResourceType, CLUSTER_NAME};

use crate::authz::Access;
use crate::broker::{Broker, Refusal};
use crate::dynamic_config;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
/// KIP-848's group configs (Kafka 4.0).
const GROUP: i8 = 32;

// ConfigSource values of the protocol.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
const GROUP_CONFIG: i8 = 8;

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
        "consumer.session.timeout.ms" | "consumer.heartbeat.interval.ms" => 3, // INT
        "compression.type" => 2,          // STRING
        "node.id" => 3,                   // INT
        "advertised.listeners"
        | "listeners"
        | "log.dirs"
        | "process.roles"
        | "leader.replication.throttled.replicas"
        | "follower.replication.throttled.replicas" => 7, // LIST
        _ => 5,                           // LONG
    }
}

/// One synonym of a config: name, value, source.
type Synonym = (String, String, i8);

/// Where a topic config's value comes from, most specific first (Kafka's synonyms list):
/// the topic's own override, the broker property it falls back to, and the default.
fn topic_synonyms(
    broker: &Broker,
    image: &MetadataImage,
    overrides: &strom_metadata::records::Configs,
    key: &str,
) -> Vec<Synonym> {
    let mut out = Vec::new();
    if let Some(v) = overrides.get(key) {
        out.push((key.to_string(), v.clone(), DYNAMIC_TOPIC_CONFIG));
    }
    let broker_keys: Vec<&'static str> = match dynamic_config::broker_key_of(key) {
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
        out.extend(broker_layers(broker, image, b));
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

/// One described config: name, value, source and its synonyms.
type Entry = (String, String, i8, Vec<Synonym>);

/// The dynamic and static values of a broker property, most specific first.
fn broker_layers(broker: &Broker, image: &MetadataImage, key: &str) -> Vec<Synonym> {
    let node = broker.config.node_id.to_string();
    let mut out = Vec::new();
    for (resource, source) in [
        (node.as_str(), DYNAMIC_BROKER_CONFIG),
        ("", DYNAMIC_DEFAULT_BROKER_CONFIG),
    ] {
        if let Some(v) = image.broker_configs.get(resource).and_then(|c| c.get(key)) {
            out.push((key.to_string(), v.clone(), source));
        }
    }
    if let Some(v) = broker.config.raw.get(key) {
        out.push((key.to_string(), v.clone(), STATIC_BROKER_CONFIG));
    }
    out
}

/// A broker's configs: for this broker, its static properties with the dynamic values
/// laid over them; for the empty name, the cluster-wide dynamic defaults alone.
fn broker_entries(broker: &Broker, image: &MetadataImage, name: &str) -> Vec<Entry> {
    let mut keys: std::collections::BTreeSet<&String> = image
        .broker_configs
        .get("")
        .into_iter()
        .flat_map(|c| c.keys())
        .collect();
    if !name.is_empty() {
        keys.extend(broker.config.raw.keys());
        keys.extend(
            image
                .broker_configs
                .get(name)
                .into_iter()
                .flat_map(|c| c.keys()),
        );
    }
    let mut entries: Vec<Entry> = keys
        .into_iter()
        .filter_map(|k| {
            let mut synonyms = broker_layers(broker, image, k);
            if name.is_empty() {
                synonyms.retain(|s| s.2 == DYNAMIC_DEFAULT_BROKER_CONFIG);
            }
            let (_, value, source) = synonyms.first()?.clone();
            Some((k.clone(), value, source, synonyms))
        })
        .collect();
    if !name.is_empty() {
        // Properties every broker has are described even where nothing set them.
        let advertised = broker
            .advertised()
            .iter()
            .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
            .collect::<Vec<_>>()
            .join(",");
        let derived = [
            ("node.id", broker.config.node_id.to_string()),
            ("advertised.listeners", advertised),
        ];
        for (key, value) in derived {
            if !entries.iter().any(|e| e.0 == key) {
                let synonym = (key.to_string(), value.clone(), DEFAULT_CONFIG);
                entries.push((key.to_string(), value, DEFAULT_CONFIG, vec![synonym]));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
    }
    entries
}

/// A group's configs (KIP-848): every group, existing or not, has them, at the broker's
/// `group.consumer.*` values unless the group overrides them.
fn group_entries(broker: &Broker, image: &MetadataImage, group: &str) -> Vec<Entry> {
    let c = broker.coordinator.config();
    let overrides = image.group_configs.get(group);
    dynamic_config::GROUP_CONFIGS
        .iter()
        .map(|(key, broker_key)| {
            let default = if *key == "consumer.session.timeout.ms" {
                c.consumer_session_timeout_ms
            } else {
                c.consumer_heartbeat_interval_ms
            };
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.and_then(|o| o.get(*key)) {
                synonyms.push((key.to_string(), v.clone(), GROUP_CONFIG));
            }
            let broker_source = if broker.config.raw.contains_key(*broker_key) {
                STATIC_BROKER_CONFIG
            } else {
                DEFAULT_CONFIG
            };
            synonyms.push((broker_key.to_string(), default.to_string(), broker_source));
            let (_, value, source) = synonyms[0].clone();
            (key.to_string(), value, source, synonyms)
        })
        .collect()
}

/// Why `access` may not do `operation` to a config resource, if it may not.
fn denied(
    access: &Access,
    operation: AclOperation,
    resource_type: i8,
    name: &str,
) -> Option<Refusal> {
    let (resource, name, error) = match resource_type {
        TOPIC => (
            ResourceType::Topic,
            name,
            ResponseError::TopicAuthorizationFailed,
        ),
        GROUP => (
            ResourceType::Group,
            name,
            ResponseError::GroupAuthorizationFailed,
        ),
        BROKER => (
            ResourceType::Cluster,
            CLUSTER_NAME,
            ResponseError::ClusterAuthorizationFailed,
        ),
        _ => return None,
    };
    (!access.allows(operation, resource, name)).then(|| Refusal::new(error, error.to_string()))
}

pub(super) fn describe(
    broker: &Arc<Broker>,
    access: &Access,
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
            if let Some(e) = denied(
                access,
                AclOperation::DescribeConfigs,
                r.resource_type,
                &name,
            ) {
                out.error_code = e.code;
                out.error_message = Some(StrBytes::from_string(e.message));
                return out;
            }
            let entries: Vec<Entry> = match r.resource_type {
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
                        let min_isr = broker.min_insync_replicas(&image, &t.name);
                        all.push(("min.insync.replicas".into(), min_isr.to_string()));
                        for key in [
                            dynamic_config::LEADER_THROTTLED_REPLICAS,
                            dynamic_config::FOLLOWER_THROTTLED_REPLICAS,
                        ] {
                            let value = t.configs.get(key).cloned().unwrap_or_default();
                            all.push((key.into(), value));
                        }
                        all.into_iter()
                            .map(|(k, v)| {
                                let synonyms = topic_synonyms(broker, &image, &t.configs, &k);
                                let source =
                                    synonyms.first().map(|s| s.2).unwrap_or(DEFAULT_CONFIG);
                                (k, v, source, synonyms)
                            })
                            .collect()
                    }
                },
                BROKER if name.is_empty() || name == broker.config.node_id.to_string() => {
                    broker_entries(broker, &image, &name)
                }
                GROUP => group_entries(broker, &image, &name),
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
            // Null or empty: every config (as Kafka reads both).
            let resource_type = r.resource_type;
            let keys: Option<Vec<String>> = r
                .configuration_keys
                .filter(|ks| !ks.is_empty())
                .map(|ks| ks.iter().map(|k| k.to_string()).collect());
            out.configs = entries
                .into_iter()
                .filter(|(k, _, _, _)| keys.as_ref().is_none_or(|ks| ks.contains(k)))
                .map(|(k, v, source, synonyms)| {
                    let mut c = DescribeConfigsResourceResult::default()
                        .with_name(StrBytes::from_string(k.clone()))
                        .with_value(Some(StrBytes::from_string(v)))
                        .with_config_source(source)
                        // A broker property that only a restart changes, as Kafka marks it.
                        .with_read_only(
                            resource_type == BROKER
                                && !dynamic_config::is_dynamic_broker_config(&k),
                        );
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
    result: Result<(), Refusal>,
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

/// Replaces the overrides of one resource with `configs`.
async fn set_configs(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    configs: &BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), Refusal> {
    match resource_type {
        TOPIC => broker.set_topic_configs(name, configs, validate_only).await,
        BROKER => {
            broker
                .set_broker_configs(name, configs, validate_only)
                .await
        }
        GROUP => broker.set_group_configs(name, configs, validate_only).await,
        other => Err(Refusal {
            code: ResponseError::InvalidRequest.code(),
            message: format!("configs of resource type {other} cannot be altered"),
        }),
    }
}

/// The overrides a resource has now (what AlterConfigs replaces).
fn overrides(image: &MetadataImage, resource_type: i8, name: &str) -> BTreeMap<String, String> {
    let found = match resource_type {
        TOPIC => image.topics.get(name).map(|t| &t.configs),
        BROKER => image.broker_configs.get(name),
        GROUP => image.group_configs.get(name),
        _ => None,
    };
    found.cloned().unwrap_or_default()
}

/// The value of `key` in effect for a resource without an override of its own (what
/// APPEND and SUBTRACT start from).
fn inherited(
    broker: &Broker,
    image: &MetadataImage,
    resource_type: i8,
    name: &str,
    key: &str,
) -> String {
    let from_log_config = |config: strom_storage::LogConfig, key: &str| {
        config
            .entries()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    };
    let value = match resource_type {
        TOPIC => from_log_config(broker.log_config(image, name), key),
        // Below the cluster-wide default is the static value; below a broker's own
        // dynamic value, the cluster-wide default.
        BROKER => broker_layers(broker, image, key)
            .into_iter()
            .find(|s| {
                if name.is_empty() {
                    s.2 == STATIC_BROKER_CONFIG
                } else {
                    s.2 != DYNAMIC_BROKER_CONFIG
                }
            })
            .map(|s| s.1)
            .or_else(|| {
                let topic_key = dynamic_config::TOPIC_DEFAULTS
                    .iter()
                    .find(|(_, b)| *b == key)?
                    .0;
                from_log_config(broker.config.log_defaults.clone(), topic_key)
            }),
        GROUP => group_entries(broker, &MetadataImage::default(), name)
            .into_iter()
            .find(|e| e.0 == key)
            .map(|e| e.1),
        _ => None,
    };
    value.unwrap_or_default()
}

/// AlterConfigs: the given set replaces all of the resource's overrides (Kafka's semantics).
pub(super) async fn alter(
    broker: &Arc<Broker>,
    access: &Access,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        {
            let configs: BTreeMap<String, String> = r
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            let result = match denied(
                access,
                AclOperation::AlterConfigs,
                r.resource_type,
                &r.resource_name,
            ) {
                Some(e) => Err(e),
                None => {
                    set_configs(
                        broker,
                        r.resource_type,
                        &r.resource_name,
                        &configs,
                        request.validate_only,
                    )
                    .await
                }
            };
            responses.push(alter_result(r.resource_type, r.resource_name, result));
        }
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs: SET (0), DELETE (1), APPEND (2) and SUBTRACT (3) per key, on
/// topics, brokers and groups.
pub(super) async fn incremental_alter(
    broker: &Arc<Broker>,
    access: &Access,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let image = broker.image();
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in request.resources {
        {
            let name = r.resource_name.to_string();
            let kind = r.resource_type;
            let mut configs = overrides(&image, kind, &name);
            let mut result = match denied(access, AclOperation::AlterConfigs, kind, &name) {
                Some(e) => Err(e),
                None => Ok(()),
            };
            let allowed = result.is_ok();
            for c in r.configs.iter().filter(|_| allowed) {
                let key = c.name.to_string();
                let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                match c.config_operation {
                    0 => {
                        configs.insert(key, value);
                    }
                    1 => {
                        configs.remove(&key);
                    }
                    op @ (2 | 3) => {
                        let current = configs
                            .get(&key)
                            .cloned()
                            .unwrap_or_else(|| inherited(broker, &image, kind, &name, &key));
                        let mut items: Vec<String> = current
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect();
                        for v in value.split(',').filter(|s| !s.is_empty()) {
                            if op == 2 {
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
                        result = Err(Refusal {
                            code: ResponseError::InvalidRequest.code(),
                            message: format!("unknown config operation {other}"),
                        });
                    }
                }
            }
            let result = match result {
                Ok(()) => set_configs(broker, kind, &name, &configs, request.validate_only).await,
                Err(e) => Err(e),
            };
            let (code, message) = match result {
                Ok(()) => (0, None),
                Err(e) => (e.code, Some(StrBytes::from_string(e.message))),
            };
            responses.push(
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
                    .with_error_code(code)
                    .with_error_message(message),
            );
        }
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
