//! CreateTopics: validated as Kafka does (name, partitions, replication factor, configs),
//! recorded in the metadata log, then the partition logs are created.

use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

pub(super) fn handle(
    broker: &Arc<Broker>,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let configs: Vec<(String, Option<String>)> = t
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
            let mut out = CreatableTopicResult::default().with_name(t.name.clone());
            if !t.assignments.is_empty() {
                out.error_code = kafka_protocol::ResponseError::InvalidRequest.code();
                out.error_message = Some(StrBytes::from_static_str(
                    "manual replica assignment is not supported yet",
                ));
                return out;
            }
            match broker.create_topic(
                &name,
                t.num_partitions,
                t.replication_factor,
                &configs,
                request.validate_only,
            ) {
                Ok(image) => {
                    out.topic_id = image.topic_id;
                    out.num_partitions = if image.partitions.is_empty() {
                        if t.num_partitions == -1 {
                            broker.config.num_partitions
                        } else {
                            t.num_partitions
                        }
                    } else {
                        image.partitions.len() as i32
                    };
                    out.replication_factor = 1;
                    if version >= 5 {
                        out.configs = Some(Vec::new());
                    }
                }
                Err(r) => {
                    out.error_code = r.code;
                    out.error_message = Some(StrBytes::from_string(r.message));
                    out.num_partitions = -1;
                    out.replication_factor = -1;
                }
            }
            out
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}
