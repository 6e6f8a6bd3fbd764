//! Request dispatch: parse the header, answer or refuse the version, guard the body against
//! hostile lengths, decode it, run the API's handler, encode the response. One file per API.

mod admin;
mod api_versions;
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
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use strom_protocol::guard;
use strom_protocol::header::RequestHeader;

use crate::auth::{sasl, Admit, Session};
use crate::broker::Broker;
use crate::fetch_codec::{self, Chunk};

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
    let out = match key {
        ApiKey::ApiVersions => {
            let r = api_versions::handle(decode(body, version)?, version);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::Metadata => {
            let r = metadata::handle(broker, decode(body, version)?, version, listener).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::Produce => match produce::handle(broker, decode(body, version)?, version).await {
            Some(r) => respond(key, version, correlation_id, &r)?,
            None => return Ok(None),
        },
        ApiKey::Fetch => {
            let (r, regions) = fetch::handle(broker, decode(body, version)?, version).await;
            return Ok(Some(Response::Chunks(fetch_codec::encode(
                correlation_id,
                version,
                &r,
                regions,
            ))));
        }
        ApiKey::ListOffsets => {
            let r = list_offsets::handle(broker, decode(body, version)?, version);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::OffsetForLeaderEpoch => {
            let r = offsets_for_leader_epoch::handle(broker, decode(body, version)?);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::CreateTopics => {
            let r = create_topics::handle(broker, decode(body, version)?, version).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::DeleteTopics => {
            let r = admin::delete_topics(broker, decode(body, version)?, version).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::CreatePartitions => {
            let r = admin::create_partitions(broker, decode(body, version)?).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::DeleteRecords => {
            let r = admin::delete_records(broker, decode(body, version)?);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::DescribeCluster => {
            let r = admin::describe_cluster(broker, decode(body, version)?, listener);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::ElectLeaders => {
            let r = elect_leaders::handle(broker, decode(body, version)?).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::AlterPartitionReassignments => {
            let r = reassignments::alter(broker, decode(body, version)?).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::ListPartitionReassignments => {
            let r = reassignments::list(broker, decode(body, version)?);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::DescribeQuorum => {
            let r = describe_quorum::handle(broker, decode(body, version)?, version).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::DescribeTopicPartitions => {
            let r = describe_topic_partitions::handle(broker, decode(body, version)?);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::DescribeLogDirs => {
            let r = admin::describe_log_dirs(broker, decode(body, version)?, version);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::DescribeConfigs => {
            let r = configs::describe(broker, decode(body, version)?, version);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::AlterConfigs => {
            let r = configs::alter(broker, decode(body, version)?).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::IncrementalAlterConfigs => {
            let r = configs::incremental_alter(broker, decode(body, version)?).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::InitProducerId => {
            let r = init_producer_id::handle(broker, decode(body, version)?, version).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::FindCoordinator => {
            let r =
                groups::find_coordinator(broker, decode(body, version)?, version, listener).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::JoinGroup => {
            let client_id = header.client_id.clone().unwrap_or_default();
            let r =
                groups::join_group(broker, decode(body, version)?, version, &client_id, peer).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::SyncGroup => {
            let r = groups::sync_group(broker, decode(body, version)?, version).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::Heartbeat => {
            let r = groups::heartbeat(broker, decode(body, version)?);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::LeaveGroup => {
            let r = groups::leave_group(broker, decode(body, version)?, version);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::OffsetCommit => {
            let r = groups::offset_commit(broker, decode(body, version)?).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::OffsetFetch => {
            let r = groups::offset_fetch(broker, decode(body, version)?, version);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::ListGroups => {
            let r = groups::list_groups(broker, decode(body, version)?, version);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::DescribeGroups => {
            let r = groups::describe_groups(broker, decode(body, version)?, version);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::DeleteGroups => {
            let r = groups::delete_groups(broker, decode(body, version)?);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let client_id = header.client_id.clone().unwrap_or_default();
            let r =
                groups::consumer_group_heartbeat(broker, decode(body, version)?, &client_id, peer)
                    .await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::ConsumerGroupDescribe => {
            let r = groups::consumer_group_describe(broker, decode(body, version)?);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::OffsetDelete => {
            let r = groups::offset_delete(broker, decode(body, version)?);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::AddPartitionsToTxn => {
            let r = transactions::add_partitions(broker, decode(body, version)?, version).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::AddOffsetsToTxn => {
            let r = transactions::add_offsets(broker, decode(body, version)?, version).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::EndTxn => {
            let r = transactions::end_txn(broker, decode(body, version)?, version).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::WriteTxnMarkers => {
            let r = transactions::write_txn_markers(broker, decode(body, version)?).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::TxnOffsetCommit => {
            let r = transactions::txn_offset_commit(broker, decode(body, version)?, version).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::DescribeTransactions => {
            let r = transactions::describe_transactions(broker, decode(body, version)?).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::ListTransactions => {
            let r = transactions::list_transactions(broker, decode(body, version)?, version).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::DescribeProducers => {
            let r = transactions::describe_producers(broker, decode(body, version)?);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::SaslHandshake => {
            let r = sasl::handshake(broker, session, decode(body, version)?, version);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::SaslAuthenticate => {
            let r = sasl::authenticate(broker, session, decode(body, version)?).await;
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::DescribeUserScramCredentials => {
            let r = scram_credentials::describe(broker, decode(body, version)?);
            respond(key, version, correlation_id, &r)?
        }
        ApiKey::AlterUserScramCredentials => {
            let r = scram_credentials::alter(broker, decode(body, version)?).await;
            respond(key, version, correlation_id, &r)?
        }
        _ => return Err(RequestError::Unsupported { api_key, version }),
    };
    Ok(Some(Response::Bytes(out)))
}

fn decode<T: Decodable>(mut body: Bytes, version: i16) -> Result<T, RequestError> {
    T::decode(&mut body, version).map_err(|e| RequestError::Decode(format!("{e:#}")))
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
