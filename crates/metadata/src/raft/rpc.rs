//! The quorum's wire format and its TCP transport.
//!
//! Raft and controller RPCs are Strom frames like every Kafka request: a 4-byte size, then
//! a request header (v1: api key, api version, correlation id, client id), then the body.
//! The API keys are Strom's own, above Kafka's range ([`API_RAFT_VOTE`] and on), and the
//! bodies are openraft's messages (and the controller's) as JSON. Kafka's KRaft RPCs
//! (Vote, BeginQuorumEpoch, Fetch of `__cluster_metadata`, FetchSnapshot) were considered:
//! KRaft's followers pull entries by Fetch while openraft's leader pushes AppendEntries, so
//! speaking them would mean replacing openraft's replication, the part we rely on it for.
//! The response is a 4-byte size, the correlation id, then a JSON body.
//!
//! [`TcpNetwork`] is openraft's network over this transport: one connection per peer,
//! reopened after an error, each call bounded by openraft's timeout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{QuorumConfig, TypeConfig};

/// openraft's Vote.
pub const API_RAFT_VOTE: i16 = 1000;
/// openraft's AppendEntries (also the leader's heartbeat).
pub const API_RAFT_APPEND: i16 = 1001;
/// One chunk of openraft's InstallSnapshot.
pub const API_RAFT_SNAPSHOT: i16 = 1002;
/// A request for the active controller (forwarded by a broker or a follower).
pub const API_CONTROLLER: i16 = 1003;
/// The quorum's state as its leader sees it (DescribeQuorum's data).
pub const API_QUORUM_STATUS: i16 = 1004;

/// Whether `api_key` is one of the quorum's own.
pub fn is_quorum_api(api_key: i16) -> bool {
    (API_RAFT_VOTE..=API_QUORUM_STATUS).contains(&api_key)
}

/// Largest response accepted from a peer (a snapshot chunk is far smaller).
const MAX_RESPONSE: usize = 64 << 20;

/// Encodes a request frame (with its size prefix).
pub fn encode_request(api_key: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + body.len());
    let size = 2 + 2 + 4 + 2 + body.len();
    out.extend_from_slice(&(size as i32).to_be_bytes());
    out.extend_from_slice(&api_key.to_be_bytes());
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Splits a request frame (without its size prefix) into api key, correlation id and
/// body, or `None` when the header is truncated.
pub fn decode_request(frame: &[u8]) -> Option<(i16, i32, &[u8])> {
    let api_key = i16::from_be_bytes(frame.get(0..2)?.try_into().ok()?);
    let correlation = i32::from_be_bytes(frame.get(4..8)?.try_into().ok()?);
    let client_len = i16::from_be_bytes(frame.get(8..10)?.try_into().ok()?);
    let body_at = 10 + usize::try_from(client_len.max(0)).ok()?;
    Some((api_key, correlation, frame.get(body_at..)?))
}

/// Encodes a response body (without the size prefix, which the server adds).
pub fn encode_response(correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Connecting, writing or reading failed.
    #[error("talking to {addr}")]
    Io {
        /// The peer.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The peer did not answer in time.
    #[error("{addr} did not answer within {timeout:?}")]
    Timeout {
        /// The peer.
        addr: String,
        /// The bound.
        timeout: Duration,
    },
    /// The answer did not parse.
    #[error("garbled answer from {addr}")]
    Garbled {
        /// The peer.
        addr: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// A stream to a peer: plaintext or TLS.
trait PeerStream: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> PeerStream for T {}

/// One connection to a peer, reopened after an error. Calls are one at a time.
pub struct PeerClient {
    addr: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    conn: Option<Box<dyn PeerStream>>,
    correlation: i32,
}

impl PeerClient {
    /// A client for `addr` (`host:port`), over TLS when `tls` is given; it connects on the
    /// first call.
    pub fn new(addr: impl Into<String>, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        PeerClient {
            addr: addr.into(),
            tls,
            conn: None,
            correlation: 0,
        }
    }

    /// The peer's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` under `api_key` and returns the decoded answer, within `timeout`.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        api_key: i16,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let body = serde_json::to_vec(request).map_err(|source| CallError::Garbled {
            addr: self.addr.clone(),
            source,
        })?;
        let addr = self.addr.clone();
        let raw = match tokio::time::timeout(timeout, self.round_trip(api_key, &body)).await {
            Ok(Ok(raw)) => raw,
            Ok(Err(source)) => {
                self.conn = None;
                return Err(CallError::Io { addr, source });
            }
            Err(_) => {
                self.conn = None;
                return Err(CallError::Timeout { addr, timeout });
            }
        };
        serde_json::from_slice(&raw).map_err(|source| CallError::Garbled { addr, source })
    }

    async fn round_trip(&mut self, api_key: i16, body: &[u8]) -> std::io::Result<Vec<u8>> {
        if self.conn.is_none() {
            let stream = TcpStream::connect(&self.addr).await?;
            stream.set_nodelay(true)?;
            self.conn = Some(match &self.tls {
                None => Box::new(stream),
                Some(tls) => {
                    let host = self.addr.rsplit_once(':').map_or(&*self.addr, |(h, _)| h);
                    let host = host.trim_start_matches('[').trim_end_matches(']');
                    let name = rustls::pki_types::ServerName::try_from(host.to_string())
                        .map_err(std::io::Error::other)?;
                    let connector = tokio_rustls::TlsConnector::from(tls.clone());
                    Box::new(connector.connect(name, stream).await?)
                }
            });
        }
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        let Some(conn) = self.conn.as_mut() else {
            return Err(std::io::Error::other("not connected"));
        };
        conn.write_all(&encode_request(api_key, correlation, body))
            .await?;
        conn.flush().await?;
        let size = conn.read_i32().await?;
        let size = usize::try_from(size)
            .ok()
            .filter(|s| (4..=MAX_RESPONSE).contains(s))
            .ok_or_else(|| std::io::Error::other(format!("bad response size {size}")))?;
        let mut buf = vec![0; size];
        conn.read_exact(&mut buf).await?;
        let got = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if got != correlation {
            return Err(std::io::Error::other(format!(
                "response to {got}, expected {correlation}"
            )));
        }
        buf.drain(..4);
        Ok(buf)
    }
}

/// When each peer last answered this node's AppendEntries (ms since the epoch): the
/// "last fetch time" DescribeQuorum reports.
#[derive(Default)]
pub struct PeerContact {
    last: Mutex<BTreeMap<u64, i64>>,
}

impl PeerContact {
    /// Notes an answer from `peer` now.
    pub fn touch(&self, peer: u64) {
        self.last.lock().insert(peer, strom_storage::now_ms());
    }

    /// The last answer from `peer`.
    pub fn last(&self, peer: u64) -> Option<i64> {
        self.last.lock().get(&peer).copied()
    }
}

/// openraft's network over TCP (TLS to voters when the quorum has it).
#[derive(Clone)]
pub struct TcpNetwork {
    contact: Arc<PeerContact>,
    config: QuorumConfig,
}

impl TcpNetwork {
    /// A network that notes peers' answers in `contact`.
    pub fn new(contact: Arc<PeerContact>, config: QuorumConfig) -> Self {
        TcpNetwork { contact, config }
    }
}

/// A [`TcpNetwork`] connection to one peer.
pub struct TcpPeer {
    target: u64,
    client: PeerClient,
    contact: Arc<PeerContact>,
}

impl RaftNetworkFactory<TypeConfig> for TcpNetwork {
    type Network = TcpPeer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> TcpPeer {
        TcpPeer {
            target,
            client: PeerClient::new(node.addr.clone(), self.config.tls_for(&node.addr)),
            contact: self.contact.clone(),
        }
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>;

impl TcpPeer {
    async fn rpc<
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    >(
        &mut self,
        api_key: i16,
        request: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E> {
        let answer: Result<Resp, RaftError<u64, E>> = self
            .client
            .call(api_key, request, option.hard_ttl())
            .await
            .map_err(|e| match e {
                CallError::Io { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                _ => RPCError::Network(NetworkError::new(&e)),
            })?;
        self.contact.touch(self.target);
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for TcpPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        self.rpc(API_RAFT_APPEND, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.rpc(API_RAFT_SNAPSHOT, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>> {
        self.rpc(API_RAFT_VOTE, &rpc, &option).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
