//! Replication's ways out of this broker, over the real network: replica fetches to a
//! partition's leader as Kafka Fetch requests (with the replica's id and broker epoch in
//! `ReplicaState` from v15 on, topic ids from v13 on), on one connection per leader made
//! with Strom's own client; and ISR proposals to the active controller (AlterPartition)
//! through the metadata node.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use strom_client::connection::Connection;
use strom_metadata::controller::partitions::AlterPartition;
use strom_metadata::ControllerRequest;
use strom_replication::{
    EpochEnd, FetchedPartition, IsrProposal, IsrProposer, LinkError, ReplicaFetch, ReplicaLinks,
};
use strom_types::TopicPartition;

use crate::broker::Broker;

/// How long a replica fetch may take beyond its own long-poll (Kafka's
/// `replica.socket.timeout.ms`, 30 s).
const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);

/// Fetches from leaders over TCP, one cached connection per leader.
pub(crate) struct BrokerLinks {
    broker: Weak<Broker>,
    connections: Arc<Mutex<HashMap<i32, Arc<Connection>>>>,
}

impl BrokerLinks {
    pub(crate) fn new(broker: Weak<Broker>) -> Self {
        BrokerLinks {
            broker,
            connections: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

fn link_error(code: i16) -> Option<LinkError> {
    if code == 0 {
        return None;
    }
    Some(match ResponseError::try_from_code(code) {
        Some(ResponseError::NotLeaderOrFollower) => LinkError::NotLeader,
        Some(ResponseError::FencedLeaderEpoch) => LinkError::FencedLeaderEpoch,
        Some(ResponseError::UnknownLeaderEpoch) => LinkError::UnknownLeaderEpoch,
        Some(ResponseError::OffsetOutOfRange) => LinkError::OffsetOutOfRange,
        Some(ResponseError::UnknownTopicOrPartition | ResponseError::UnknownTopicId) => {
            LinkError::UnknownPartition
        }
        _ => LinkError::Other(code),
    })
}

impl ReplicaLinks for BrokerLinks {
    fn fetch(
        &self,
        leader: i32,
        request: ReplicaFetch,
    ) -> BoxFuture<'static, Result<Vec<FetchedPartition>, LinkError>> {
        let broker = self.broker.clone();
        let connections = self.connections.clone();
        Box::pin(async move {
            let transport = |e: &dyn std::fmt::Display| LinkError::Transport(e.to_string());
            let b = broker
                .upgrade()
                .ok_or_else(|| LinkError::Transport("broker stopped".into()))?;
            let cached = connections.lock().get(&leader).cloned();
            let conn = match cached.filter(|c| !c.is_closed()) {
                Some(c) => c,
                None => {
                    let (host, port) =
                        b.inter_broker_endpoint_of(&b.image(), leader)
                            .ok_or_else(|| {
                                LinkError::Transport(format!("broker {leader} has no endpoint"))
                            })?;
                    let client_id = format!("strom-replica-fetcher-{}", b.config.node_id);
                    let c = Connection::connect_with(
                        &format!("{host}:{port}"),
                        &client_id,
                        SOCKET_TIMEOUT,
                        &b.inter_broker,
                    )
                    .await
                    .map_err(|e| transport(&e))?;
                    let c = Arc::new(c);
                    connections.lock().insert(leader, c.clone());
                    c
                }
            };
            let image = b.image();
            drop(b);
            let version = conn
                .version_up_to::<FetchRequest>(16)
                .map_err(|e| transport(&e))?;
            // One topic entry per partition keeps the mapping back simple; the leader
            // answers in request order.
            let mut topics = Vec::with_capacity(request.partitions.len());
            let mut order = Vec::with_capacity(request.partitions.len());
            for p in &request.partitions {
                let topic_id = image
                    .topics
                    .get(p.tp.topic.as_str())
                    .map(|t| t.topic_id)
                    .unwrap_or(p.topic_id);
                topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(p.tp.topic.to_string())))
                        .with_topic_id(topic_id)
                        .with_partitions(vec![FetchPartition::default()
                            .with_partition(p.tp.partition)
                            .with_current_leader_epoch(p.current_leader_epoch)
                            .with_fetch_offset(p.fetch_offset)
                            .with_last_fetched_epoch(p.last_fetched_epoch)
                            .with_log_start_offset(p.log_start_offset)
                            .with_partition_max_bytes(p.max_bytes)]),
                );
                order.push(p.tp.clone());
            }
            let mut fetch = FetchRequest::default()
                .with_max_wait_ms(request.max_wait_ms)
                .with_min_bytes(request.min_bytes)
                .with_max_bytes(request.max_bytes)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(topics);
            if version >= 15 {
                fetch.replica_state = ReplicaState::default()
                    .with_replica_id(BrokerId(request.replica_id))
                    .with_replica_epoch(request.broker_epoch);
                fetch.replica_id = BrokerId(-1);
            } else {
                fetch.replica_id = BrokerId(request.replica_id);
            }
            let timeout = SOCKET_TIMEOUT + Duration::from_millis(request.max_wait_ms.max(0) as u64);
            let response = match conn.send_within(&fetch, version, timeout).await {
                Ok(r) => r,
                Err(e) => {
                    connections.lock().remove(&leader);
                    return Err(transport(&e));
                }
            };
            if let Some(e) = link_error(response.error_code) {
                return Err(e);
            }
            let mut out = Vec::with_capacity(order.len());
            for (tp, topic) in order.into_iter().zip(response.responses) {
                let Some(p) = topic.partitions.into_iter().next() else {
                    continue;
                };
                let diverging = (p.diverging_epoch.epoch != -1
                    || p.diverging_epoch.end_offset != -1)
                    .then_some(EpochEnd {
                        epoch: p.diverging_epoch.epoch,
                        end_offset: p.diverging_epoch.end_offset,
                    });
                out.push(FetchedPartition {
                    tp: TopicPartition::new(tp.topic.as_str(), p.partition_index),
                    error: link_error(p.error_code),
                    high_watermark: p.high_watermark,
                    log_start_offset: p.log_start_offset,
                    diverging_epoch: diverging,
                    records: p.records.unwrap_or_default(),
                });
            }
            Ok(out)
        })
    }
}

/// Sends ISR proposals to the active controller as this broker, at its current epoch.
pub(crate) struct BrokerProposer(pub(crate) Weak<Broker>);

impl IsrProposer for BrokerProposer {
    fn alter_partition(&self, proposal: IsrProposal) -> BoxFuture<'static, Result<(), String>> {
        let broker = self.0.clone();
        Box::pin(async move {
            let b = broker.upgrade().ok_or("broker stopped")?;
            let before = b
                .replicas
                .get(&proposal.tp)
                .map(|p| p.assignment().isr.len());
            let after = proposal.new_isr.len();
            let request = ControllerRequest::AlterPartition(AlterPartition {
                broker_id: b.config.node_id,
                broker_epoch: b.broker_epoch(),
                topic_id: proposal.topic_id,
                partition: proposal.tp.partition,
                leader_epoch: proposal.leader_epoch,
                partition_epoch: proposal.partition_epoch,
                new_isr: proposal.new_isr,
                member_epochs: proposal.member_epochs,
            });
            b.submit(request).await.map_err(|r| r.message)?;
            if let Some(before) = before {
                b.metrics.isr_changed(before, after);
            }
            Ok(())
        })
    }
}
