//! [`MetadataNode`]: one node's view of the cluster metadata, as the broker uses it: the
//! image, the quorum, the controller (on voters), and the way to the active controller
//! from anywhere.
//!
//! [`MetadataNode::submit`] sends a [`ControllerRequest`] to the active controller, on this
//! node or over the quorum's RPCs, retries across leader changes until its deadline, and
//! returns once this node's own image includes the change. Raft and controller RPCs that
//! reach a listener are answered by [`MetadataNode::handle_rpc`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::controller::{
    Controller, ControllerConfig, ControllerError, ControllerReply, ControllerRequest,
};
use crate::image::MetadataImage;
use crate::raft::rpc::{self, PeerClient};
use crate::raft::{Quorum, QuorumConfig, QuorumStatus};
use crate::MetadataError;

/// One node's metadata.
pub struct MetadataNode {
    quorum: Arc<Quorum>,
    controller: Option<Arc<Controller>>,
}

impl std::fmt::Debug for MetadataNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataNode")
            .field("quorum", &self.quorum)
            .finish()
    }
}

/// Bound on one forwarded call; the overall deadline is the caller's.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

impl MetadataNode {
    /// Joins the quorum; voters also run a controller.
    pub async fn start(
        config: QuorumConfig,
        controller: ControllerConfig,
    ) -> Result<Arc<MetadataNode>, MetadataError> {
        let quorum = Quorum::start(config).await?;
        Ok(Self::with_quorum(quorum, controller))
    }

    /// A node over a started quorum.
    pub fn with_quorum(quorum: Arc<Quorum>, controller: ControllerConfig) -> Arc<MetadataNode> {
        let controller = quorum
            .config()
            .is_voter()
            .then(|| Controller::start(quorum.clone(), controller));
        Arc::new(MetadataNode { quorum, controller })
    }

    /// The quorum.
    pub fn quorum(&self) -> &Arc<Quorum> {
        &self.quorum
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.quorum.image()
    }

    /// Every newly applied image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.quorum.subscribe()
    }

    /// The active controller's node id, if known.
    pub fn controller_id(&self) -> Option<i32> {
        self.quorum.leader()
    }

    /// Sends `request` to the active controller, retrying across leader changes and
    /// unreachable peers until `timeout`, then waits for this node's image to include it.
    pub async fn submit(
        &self,
        request: ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerReply, ControllerError> {
        let deadline = Instant::now() + timeout;
        let mut client: Option<PeerClient> = None;
        // Until this node hears of a leader (an observer that has not joined yet), it asks
        // the voters in turn and follows their hints.
        let voters: Vec<i32> = self.quorum.config().voters.keys().copied().collect();
        let mut hint: Option<i32> = None;
        let mut turn = 0usize;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ControllerError::Timeout(format!(
                    "no active controller committed the change within {} ms",
                    timeout.as_millis()
                )));
            }
            let target = self.quorum.leader().or(hint.take()).or_else(|| {
                turn += 1;
                voters.get(turn % voters.len().max(1)).copied()
            });
            let outcome = match target {
                Some(leader) if leader == self.quorum.config().node_id => match &self.controller {
                    Some(c) => tokio::time::timeout(left, c.handle(request.clone()))
                        .await
                        .unwrap_or_else(|_| {
                            Err(ControllerError::Timeout(
                                "the controller did not answer in time".into(),
                            ))
                        }),
                    None => Err(ControllerError::NotController { leader: None }),
                },
                Some(leader) => match self.quorum.address_of(leader) {
                    Some(addr) => {
                        let c = match &mut client {
                            Some(c) if c.addr() == addr => c,
                            _ => {
                                let tls = self.quorum.config().tls_for(&addr);
                                client.insert(PeerClient::new(addr, tls))
                            }
                        };
                        match c
                            .call::<_, Result<ControllerReply, ControllerError>>(
                                rpc::API_CONTROLLER,
                                &request,
                                left.min(CALL_TIMEOUT),
                            )
                            .await
                        {
                            Ok(answer) => answer,
                            Err(e) => {
                                tracing::debug!(leader, error = %e, "forwarding to the controller");
                                Err(ControllerError::NotController { leader: None })
                            }
                        }
                    }
                    None => Err(ControllerError::NotController { leader: None }),
                },
                None => Err(ControllerError::NotController { leader: None }),
            };
            match outcome {
                Ok(reply) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    self.quorum
                        .wait_for_offset(reply.offset(), left.max(Duration::from_millis(1)))
                        .await;
                    return Ok(reply);
                }
                Err(ControllerError::NotController { leader }) => {
                    hint = leader.filter(|l| *l != self.quorum.config().node_id);
                    if hint.is_some() {
                        // Stale hints could bounce between two nodes: a short pause bounds it.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    // Wait for news of a leader (bounded: a lost message must not stall us).
                    let pause = deadline
                        .saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(200));
                    let _ = tokio::time::timeout(pause, self.quorum.leader_changed()).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The quorum's state from its leader (forwarded when this node is not it).
    pub async fn quorum_status(&self) -> QuorumStatus {
        if self.quorum.is_leader() {
            return self.quorum.status();
        }
        if let Some(addr) = self.quorum.leader().and_then(|l| self.quorum.address_of(l)) {
            let tls = self.quorum.config().tls_for(&addr);
            let mut client = PeerClient::new(addr, tls);
            if let Ok(status) = client
                .call::<_, QuorumStatus>(rpc::API_QUORUM_STATUS, &(), CALL_TIMEOUT)
                .await
            {
                return status;
            }
        }
        self.quorum.status()
    }

    /// Answers one quorum RPC frame (without its size prefix): the response frame without
    /// its size prefix, or `None` to refuse it (the connection is then closed).
    pub async fn handle_rpc(&self, frame: &[u8]) -> Option<Vec<u8>> {
        let Some((api_key, correlation, body)) = rpc::decode_request(frame) else {
            tracing::warn!("refused a quorum RPC with a truncated header");
            return None;
        };
        let answer = match api_key {
            rpc::API_RAFT_VOTE => match serde_json::from_slice(body) {
                Ok(req) => serde_json::to_vec(&self.quorum.vote(req).await?),
                Err(e) => return garbled(api_key, e),
            },
            rpc::API_RAFT_APPEND => match serde_json::from_slice(body) {
                Ok(req) => serde_json::to_vec(&self.quorum.append_entries(req).await?),
                Err(e) => return garbled(api_key, e),
            },
            rpc::API_RAFT_SNAPSHOT => match serde_json::from_slice(body) {
                Ok(req) => serde_json::to_vec(&self.quorum.install_snapshot(req).await?),
                Err(e) => return garbled(api_key, e),
            },
            rpc::API_CONTROLLER => match serde_json::from_slice::<ControllerRequest>(body) {
                Ok(req) => {
                    let reply = match &self.controller {
                        Some(c) if self.quorum.is_leader() => c.handle(req).await,
                        _ => Err(ControllerError::NotController {
                            leader: self.quorum.leader(),
                        }),
                    };
                    serde_json::to_vec(&reply)
                }
                Err(e) => return garbled(api_key, e),
            },
            rpc::API_QUORUM_STATUS => serde_json::to_vec(&self.quorum.status()),
            other => {
                tracing::warn!(api_key = other, "refused an unknown quorum RPC");
                return None;
            }
        };
        match answer {
            Ok(body) => Some(rpc::encode_response(correlation, &body)),
            Err(e) => {
                tracing::warn!(error = %e, "could not encode a quorum RPC answer");
                None
            }
        }
    }

    /// Serves quorum RPCs on `listener` (the controller listener) until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "controller listener accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let node = self.clone();
            let tls = self.quorum.config().tls.as_ref().map(|t| t.server.clone());
            tokio::spawn(async move {
                let served = match tls {
                    None => {
                        let (reader, writer) = stream.into_split();
                        node.serve_connection(reader, writer).await
                    }
                    Some(server) => {
                        // Mutual TLS: the server config requires a certificate the truststore
                        // vouches for, so only the cluster's own nodes get this far.
                        let acceptor = tokio_rustls::TlsAcceptor::from(server);
                        match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls)) => {
                                let (reader, writer) = tokio::io::split(tls);
                                node.serve_connection(reader, writer).await
                            }
                            Ok(Err(e)) => Err(e),
                            Err(_) => Err(std::io::Error::other("TLS handshake timed out")),
                        }
                    }
                };
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "controller connection closed");
                }
            });
        }
    }

    async fn serve_connection<R, W>(&self, mut reader: R, mut writer: W) -> std::io::Result<()>
    where
        R: tokio::io::AsyncRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin,
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let size = match reader.read_i32().await {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            };
            let Some(size) = usize::try_from(size).ok().filter(|s| *s <= MAX_RPC) else {
                tracing::warn!(size, "refused a quorum RPC frame of a bad size");
                return Ok(());
            };
            let mut frame = vec![0; size];
            reader.read_exact(&mut frame).await?;
            let Some(answer) = self.handle_rpc(&frame).await else {
                return Ok(());
            };
            let mut out = Vec::with_capacity(4 + answer.len());
            out.extend_from_slice(&(answer.len() as i32).to_be_bytes());
            out.extend_from_slice(&answer);
            writer.write_all(&out).await?;
            writer.flush().await?;
        }
    }

    /// Stops the quorum.
    pub async fn shutdown(&self) {
        self.quorum.shutdown().await;
    }
}

/// Largest quorum RPC frame accepted.
pub const MAX_RPC: usize = 64 << 20;

fn garbled(api_key: i16, e: serde_json::Error) -> Option<Vec<u8>> {
    tracing::warn!(api_key, error = %e, "refused a garbled quorum RPC");
    None
}
