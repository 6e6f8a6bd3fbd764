//! Request dispatch: parse the header, answer or refuse the version, guard the body against
//! hostile lengths, decode it, run the API's handler, encode the response. One file per API.

mod acls;
mod admin;
mod api_versions;
mod client_quotas;
mod configs;
mod create_topics;
mod describe_quorum;
mod describe_topic_partitions;
mod elect_leaders;
mod fetch;
mod groups;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod offsets_for_leader_epoch;
mod produce;
mod reassignments;
mod scram_credentials;
mod transactions;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsResponse, ApiKey, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteTopicsRequest, DescribeQuorumResponse, DescribeUserScramCredentialsResponse,
    ElectLeadersResponse, FetchRequest, FetchResponse, ListPartitionReassignmentsResponse,
    ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use strom_metadata::{ControllerError, ControllerReply};
use strom_protocol::guard;
use strom_protocol::header::RequestHeader;
use strom_types::acl::AclOperation;

use crate::auth::{sasl, Admit, Session};
use crate::authz::Access;
use crate::broker::{Broker, Refusal};
use crate::fetch_codec::{self, Chunk};
use crate::quotas::millis;

/// Why a connection must close (Kafka closes on requests it cannot parse or serve).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The header does not parse.
    #[error("malformed request header")]
    Header(#[from] strom_protocol::header::HeaderError),
    /// An API or version Strom does not serve.
    #[error("unsupported request: api key {api_key} version {version}")]
    Unsupported {
        /// The API.
        api_key: i16,
        /// The version.
        version: i16,
    },
    /// The body failed the structural guard.
    #[error("request body refused")]
    Guard(#[from] guard::GuardError),
    /// The body did not decode.
    #[error("request body does not decode: {0}")]
    Decode(String),
    /// A quorum RPC was refused (sender not a voter, garbled).
    #[error("quorum RPC refused")]
    Quorum,
    /// A request the connection's authentication state does not allow.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A SASL exchange failed or a response closes the connection.
    #[error("SASL authentication failed")]
    AuthenticationFailed,
    /// The response could not be encoded.
    #[error("response could not be encoded: {0}")]
    Encode(String),
}

/// How long a request waits for a starting broker to join the cluster before it is
/// answered from whatever this node knows.
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The versions of each API Strom serves, as ApiVersions advertises them.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
];

fn supported(api_key: i16, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|(k, lo, hi)| *k as i16 == api_key && (*lo..=*hi).contains(&version))
}

/// A response ready to send: one buffer, or chunks with file regions (zero-copy fetch).
#[derive(Debug)]
pub enum Response {
    /// Encoded header and body.
    Bytes(Bytes),
    /// Encoded pieces and file regions, in order.
    Chunks(Vec<Chunk>),
}

/// Handles one request frame of the connection `session`. `Ok(None)`: no response (Produce
/// with acks=0). `Err`: the connection must close; so must it after the response when
/// [`Session::must_close`] says so.
pub async fn handle(
    broker: &Arc<Broker>,
    frame: BytesMut,
    session: &mut Session,
) -> Result<Option<Response>, RequestError> {
    let first = (frame.len() >= 2).then(|| i16::from_be_bytes([frame[0], frame[1]]));
    match session.admit(first.unwrap_or(-1)) {
        Admit::Request => {}
        Admit::Token => {
            return match sasl::raw_token(broker, session, &frame).await {
                Some(token) => Ok(Some(Response::Bytes(token))),
                None => Err(RequestError::AuthenticationFailed),
            };
        }
        Admit::Refuse(why) => {
            tracing::info!(peer = %session.peer, listener = %session.listener, api_key = ?first, "{why}; closing");
            return Err(RequestError::Unauthenticated(why));
        }
    }
    let (peer, listener) = (session.peer, session.listener.clone());
    let listener: &str = &listener;
    if let Some(key) = first.filter(|k| strom_metadata::raft::rpc::is_quorum_api(*k)) {
        // The only quorum RPCs a Kafka listener takes are the leader's entries and snapshots
        // for a broker-only node (an observer), on its inter-broker listener. Voters get
        // every quorum RPC on the controller listener, so they refuse them here.
        use strom_metadata::raft::rpc::{API_RAFT_APPEND, API_RAFT_SNAPSHOT};
        let observer_rpc = [API_RAFT_APPEND, API_RAFT_SNAPSHOT].contains(&key)
            && !broker.metadata.quorum().config().is_voter()
            && broker.config.inter_broker_listener() == Some(listener);
        if !observer_rpc {
            tracing::warn!(%peer, listener, api_key = key, "a quorum RPC on a Kafka listener; closing");
            return Err(RequestError::Quorum);
        }
        // The quorum's own RPCs: a broker-only node is an observer of the metadata log.
        return match broker.metadata.handle_rpc(&frame).await {
            Some(answer) => Ok(Some(Response::Bytes(Bytes::from(answer)))),
            None => Err(RequestError::Quorum),
        };
    }
    if !broker.wait_ready(READY_WAIT).await {
        tracing::debug!("answering before this broker is registered and unfenced");
    }
    let header = RequestHeader::parse(&frame)?;
    let (api_key, version) = (header.api_key, header.api_version);
    session.facts.api = Some((api_key, version));
    if api_key == ApiKey::ApiVersions as i16 && !supported(api_key, version) {
        // Kafka answers a too-new ApiVersions in v0 with UNSUPPORTED_VERSION, so the client
        // can retry with a version from the list.
        return api_versions::unsupported(header.correlation_id).map(|b| Some(Response::Bytes(b)));
    }
    if !supported(api_key, version) {
        tracing::warn!(api_key, version, client = ?header.client_id, "unsupported request; closing");
        return Err(RequestError::Unsupported { api_key, version });
    }
    let body = frame.freeze().slice(header.header_len..);
    guard::check_request(api_key, version, &body)?;
    let key =
        ApiKey::try_from(api_key).map_err(|_| RequestError::Unsupported { api_key, version })?;
    let correlation_id = header.correlation_id;
    if let Some(id) = header.client_id.as_deref() {
        if session.client_id != id {
            session.client_id = id.to_string();
        }
    }
    let access = if broker.authorizer.enabled() {
        broker
            .authorizer
            .access(&session.principal, peer.ip(), &broker.image())
    } else {
        Access::open()
    };
    let access = &access;
    let out = match key {
        ApiKey::ApiVersions => {
            let r = api_versions::handle(decode(body, version)?, version);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::Metadata => {
            let r =
                metadata::handle(broker, access, decode(body, version)?, version, listener).await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::Produce => {
            let bytes = body.len();
            let outcome = produce::handle(broker, access, decode(body, version)?, version).await;
            let wait = broker
                .quotas
                .record_produce(&broker.image(), session.quota_client(), bytes);
            session.throttle(wait);
            match outcome {
                Some(r) => answer(
                    session,
                    key,
                    version,
                    correlation_id,
                    &r.with_throttle_time_ms(millis(wait)),
                )?,
                None => return Ok(None),
            }
        }
        ApiKey::Fetch => {
            let request: FetchRequest = decode(body, version)?;
            let consumer = fetch::replica_id(&request, version) < 0;
            let (mut r, mut regions) = fetch::handle(broker, access, request, version).await;
            if consumer {
                let bytes: u64 = regions.iter().flatten().map(|r| r.len()).sum();
                let wait = broker.quotas.record_fetch(
                    &broker.image(),
                    session.quota_client(),
                    bytes as usize,
                );
                if !wait.is_zero() {
                    // Kafka answers a throttled fetch with no data, and holds the
                    // connection back.
                    r = FetchResponse::default().with_throttle_time_ms(millis(wait));
                    regions = Vec::new();
                    session.throttle(wait);
                }
            }
            if broker.metrics.enabled() {
                note_errors(session, &r);
                fetch_bytes(broker, &r, &regions, consumer);
            }
            return Ok(Some(Response::Chunks(fetch_codec::encode(
                correlation_id,
                version,
                &r,
                regions,
            ))));
        }
        ApiKey::ListOffsets => {
            let r = list_offsets::handle(broker, access, decode(body, version)?, version);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::OffsetForLeaderEpoch => {
            let r = offsets_for_leader_epoch::handle(broker, access, decode(body, version)?);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::CreateTopics => {
            let request: CreateTopicsRequest = decode(body, version)?;
            let image = broker.image();
            let r = match mutation_wait(broker, session, &image, version >= 6) {
                Some(wait) => client_quotas::throttled_create_topics(&request, wait),
                None => {
                    let validate_only = request.validate_only;
                    let r = create_topics::handle(broker, access, request, version).await;
                    let created = r
                        .topics
                        .iter()
                        .filter(|t| t.error_code == 0 && !validate_only)
                        .map(|t| t.num_partitions.max(0) as u32)
                        .sum();
                    broker
                        .quotas
                        .record_mutations(&image, session.quota_client(), created);
                    r
                }
            };
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::DeleteTopics => {
            let request: DeleteTopicsRequest = decode(body, version)?;
            let image = broker.image();
            let r = match mutation_wait(broker, session, &image, version >= 5) {
                Some(wait) => client_quotas::throttled_delete_topics(&request, wait),
                None => {
                    let r = admin::delete_topics(broker, access, request, version).await;
                    let deleted = r
                        .responses
                        .iter()
                        .filter(|t| t.error_code == 0)
                        .filter_map(|t| image.topics.get(t.name.as_ref()?.as_str()))
                        .map(|t| t.partitions.len() as u32)
                        .sum();
                    broker
                        .quotas
                        .record_mutations(&image, session.quota_client(), deleted);
                    r
                }
            };
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::CreatePartitions => {
            let request: CreatePartitionsRequest = decode(body, version)?;
            let image = broker.image();
            let r = match mutation_wait(broker, session, &image, version >= 3) {
                Some(wait) => client_quotas::throttled_create_partitions(&request, wait),
                None => {
                    let asked: Vec<(String, i32)> = request
                        .topics
                        .iter()
                        .map(|t| (t.name.to_string(), t.count))
                        .collect();
                    let validate_only = request.validate_only;
                    let r = admin::create_partitions(broker, access, request).await;
                    let added = r
                        .results
                        .iter()
                        .zip(&asked)
                        .filter(|(res, _)| res.error_code == 0 && !validate_only)
                        .map(|(_, (name, count))| {
                            let had = image.topics.get(name).map_or(0, |t| t.partitions.len());
                            (*count as usize).saturating_sub(had) as u32
                        })
                        .sum();
                    broker
                        .quotas
                        .record_mutations(&image, session.quota_client(), added);
                    r
                }
            };
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::DeleteRecords => {
            let r = admin::delete_records(broker, access, decode(body, version)?);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::DescribeCluster => {
            let r = admin::describe_cluster(broker, access, decode(body, version)?, listener);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::ElectLeaders => {
            let request = decode(body, version)?;
            let r = match cluster_denied(access, AclOperation::Alter) {
                Some(code) => ElectLeadersResponse::default().with_error_code(code),
                None => elect_leaders::handle(broker, request).await,
            };
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::AlterPartitionReassignments => {
            let request = decode(body, version)?;
            let r = match cluster_denied(access, AclOperation::Alter) {
                Some(code) => AlterPartitionReassignmentsResponse::default().with_error_code(code),
                None => reassignments::alter(broker, request).await,
            };
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::ListPartitionReassignments => {
            let request = decode(body, version)?;
            let r = match cluster_denied(access, AclOperation::Describe) {
                Some(code) => ListPartitionReassignmentsResponse::default().with_error_code(code),
                None => reassignments::list(broker, request),
            };
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::DescribeQuorum => {
            let request = decode(body, version)?;
            let r = match cluster_denied(access, AclOperation::Describe) {
                Some(code) => DescribeQuorumResponse::default().with_error_code(code),
                None => describe_quorum::handle(broker, request, version).await,
            };
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::DescribeTopicPartitions => {
            let r = describe_topic_partitions::handle(broker, access, decode(body, version)?);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::DescribeLogDirs => {
            let r = admin::describe_log_dirs(broker, access, decode(body, version)?, version);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::DescribeConfigs => {
            let r = configs::describe(broker, access, decode(body, version)?, version);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::AlterConfigs => {
            let r = configs::alter(broker, access, decode(body, version)?).await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::IncrementalAlterConfigs => {
            let r = configs::incremental_alter(broker, access, decode(body, version)?).await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::InitProducerId => {
            let r = init_producer_id::handle(broker, access, decode(body, version)?, version).await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::FindCoordinator => {
            let r =
                groups::find_coordinator(broker, access, decode(body, version)?, version, listener)
                    .await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::JoinGroup => {
            let client_id = header.client_id.clone().unwrap_or_default();
            let r = groups::join_group(
                broker,
                access,
                decode(body, version)?,
                version,
                &client_id,
                peer,
            )
            .await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::SyncGroup => {
            let r = groups::sync_group(broker, access, decode(body, version)?, version).await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::Heartbeat => {
            let r = groups::heartbeat(broker, access, decode(body, version)?);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::LeaveGroup => {
            let r = groups::leave_group(broker, access, decode(body, version)?, version);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::OffsetCommit => {
            let r = groups::offset_commit(broker, access, decode(body, version)?).await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::OffsetFetch => {
            let r = groups::offset_fetch(broker, access, decode(body, version)?, version);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::ListGroups => {
            let r = groups::list_groups(broker, access, decode(body, version)?, version);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::DescribeGroups => {
            let r = groups::describe_groups(broker, access, decode(body, version)?, version);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::DeleteGroups => {
            let r = groups::delete_groups(broker, access, decode(body, version)?);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let client_id = header.client_id.clone().unwrap_or_default();
            let r = groups::consumer_group_heartbeat(
                broker,
                access,
                decode(body, version)?,
                &client_id,
                peer,
            )
            .await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::ConsumerGroupDescribe => {
            let r = groups::consumer_group_describe(broker, access, decode(body, version)?);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::OffsetDelete => {
            let r = groups::offset_delete(broker, access, decode(body, version)?);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::AddPartitionsToTxn => {
            let r =
                transactions::add_partitions(broker, access, decode(body, version)?, version).await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::AddOffsetsToTxn => {
            let r =
                transactions::add_offsets(broker, access, decode(body, version)?, version).await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::EndTxn => {
            let r = transactions::end_txn(broker, access, decode(body, version)?, version).await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::WriteTxnMarkers => {
            let r = transactions::write_txn_markers(broker, access, decode(body, version)?).await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::TxnOffsetCommit => {
            let r =
                transactions::txn_offset_commit(broker, access, decode(body, version)?, version)
                    .await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::DescribeTransactions => {
            let r =
                transactions::describe_transactions(broker, access, decode(body, version)?).await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::ListTransactions => {
            let r =
                transactions::list_transactions(broker, access, decode(body, version)?, version)
                    .await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::DescribeProducers => {
            let r = transactions::describe_producers(broker, access, decode(body, version)?);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::SaslHandshake => {
            let r = sasl::handshake(broker, session, decode(body, version)?, version);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::SaslAuthenticate => {
            let r = sasl::authenticate(broker, session, decode(body, version)?).await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::DescribeUserScramCredentials => {
            let request = decode(body, version)?;
            let r = match cluster_denied(access, AclOperation::Describe) {
                Some(code) => DescribeUserScramCredentialsResponse::default().with_error_code(code),
                None => scram_credentials::describe(broker, request),
            };
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::AlterUserScramCredentials => {
            let r = scram_credentials::alter(broker, access, decode(body, version)?).await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::DescribeAcls => {
            let r = acls::describe(broker, access, decode(body, version)?);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::CreateAcls => {
            let r = acls::create(broker, access, decode(body, version)?).await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::DeleteAcls => {
            let r = acls::delete(broker, access, decode(body, version)?).await;
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::DescribeClientQuotas => {
            let r = client_quotas::describe(broker, access, decode(body, version)?);
            answer(session, key, version, correlation_id, &r)?
        }
        ApiKey::AlterClientQuotas => {
            let r = client_quotas::alter(broker, access, decode(body, version)?).await;
            answer(session, key, version, correlation_id, &r)?
        }
        _ => return Err(RequestError::Unsupported { api_key, version }),
    };
    Ok(Some(Response::Bytes(out)))
}

/// Counts a fetch response's record bytes per topic (a consumer's) or as replication, and
/// its failed partitions. `regions` follow the response's partitions in order.
fn fetch_bytes(
    broker: &Broker,
    r: &FetchResponse,
    regions: &[Option<strom_storage::FileRegion>],
    consumer: bool,
) {
    let mut regions = regions.iter();
    let image = broker.image();
    for topic in &r.responses {
        // Topics that exist only: a client's made-up names (or unknown ids) get no series.
        let known = image.topics.contains_key(topic.topic.0.as_str());
        let metrics = (consumer && known).then(|| broker.metrics.topic(&topic.topic.0));
        for p in &topic.partitions {
            let bytes = regions
                .next()
                .and_then(Option::as_ref)
                .map_or(0, |r| r.len());
            match &metrics {
                Some(m) if p.error_code != 0 => m.fetch_failed(),
                Some(m) => m.fetched(bytes),
                None if !consumer => broker.metrics.replication_out(bytes),
                None => {}
            }
        }
    }
}

/// KIP-599: how long a topic mutation must wait, when the client's
/// `controller_mutation_rate` bucket is overdrawn and the version knows
/// THROTTLING_QUOTA_EXCEEDED (`strict`). Older versions go ahead and the connection is held
/// back instead.
fn mutation_wait(
    broker: &Broker,
    session: &mut Session,
    image: &strom_metadata::MetadataImage,
    strict: bool,
) -> Option<std::time::Duration> {
    let wait = broker
        .quotas
        .mutation_throttle(image, session.quota_client())?;
    session.throttle(wait);
    strict.then_some(wait)
}

/// Puts a controller's answers to a batch back into the request's outcomes: item `i` of
/// the batch is the request's item `slots[i]`. A reply that is not per-item (`each` gives
/// `None`), or none at all, fails every item sent.
pub(crate) fn spread<T>(
    outcomes: &mut [Result<T, Refusal>],
    slots: &[usize],
    reply: Result<ControllerReply, Refusal>,
    each: impl FnOnce(ControllerReply) -> Option<Vec<Result<T, ControllerError>>>,
) {
    let answers = reply.and_then(|r| {
        each(r).ok_or_else(|| {
            Refusal::new(
                kafka_protocol::ResponseError::UnknownServerError,
                "unexpected controller reply",
            )
        })
    });
    match answers {
        Ok(answers) => {
            for (slot, answer) in slots.iter().zip(answers) {
                outcomes[*slot] = answer.map_err(|e| crate::errors::controller_refusal(&e));
            }
        }
        Err(e) => {
            for slot in slots {
                outcomes[*slot] = Err(e.clone());
            }
        }
    }
}

/// The per-item outcomes of a [`ControllerReply::Outcomes`].
pub(crate) fn outcomes(reply: ControllerReply) -> Option<Vec<Result<(), ControllerError>>> {
    match reply {
        ControllerReply::Outcomes { outcomes, .. } => Some(outcomes),
        _ => None,
    }
}

/// CLUSTER_AUTHORIZATION_FAILED, if `access` may not do `operation` on the cluster.
fn cluster_denied(access: &Access, operation: AclOperation) -> Option<i16> {
    (!access.allows_cluster(operation))
        .then(|| kafka_protocol::ResponseError::ClusterAuthorizationFailed.code())
}

fn decode<T: Decodable>(mut body: Bytes, version: i16) -> Result<T, RequestError> {
    T::decode(&mut body, version).map_err(|e| RequestError::Decode(format!("{e:#}")))
}

/// [`respond`], noting the response's error codes for the request's metrics.
fn answer<T: Encodable + crate::metrics::ErrorCodes>(
    session: &mut Session,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Bytes, RequestError> {
    note_errors(session, body);
    respond(key, version, correlation_id, body)
}

fn note_errors(session: &mut Session, body: &impl crate::metrics::ErrorCodes) {
    let errors = &mut session.facts.errors;
    body.each_error(&mut |code| errors.push(code));
}

/// Encodes a response header (in the version the API uses) and body.
pub(crate) fn respond<T: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Bytes, RequestError> {
    let mut buf = BytesMut::new();
    let header_version = key.response_header_version(version);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)
        .map_err(|e| RequestError::Encode(e.to_string()))?;
    body.encode(&mut buf, version)
        .map_err(|e| RequestError::Encode(format!("{key:?} v{version}: {e}")))?;
    Ok(buf.freeze())
}
