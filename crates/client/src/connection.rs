//! One connection to one broker. Requests are written as they come (pipelined) and each
//! response is routed to its caller by correlation id by a reader task. At connect the
//! broker's API versions are fetched (ApiVersions, falling back to v0 when the broker answers
//! UNSUPPORTED_VERSION), and [`Connection::version`] picks the highest version both sides
//! speak.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, Request, StrBytes};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::error::{ClientError, Result};
use crate::security::Connector;

/// Largest response accepted (a fetch can be large; a corrupt length must not allocate GBs).
const MAX_RESPONSE: usize = 256 << 20;

type Pending = Arc<Mutex<Option<HashMap<i32, oneshot::Sender<Bytes>>>>>;

/// A connection to one broker.
pub struct Connection {
    addr: String,
    client_id: String,
    writer: tokio::sync::Mutex<Box<dyn AsyncWrite + Send + Unpin>>,
    pending: Pending,
    next_id: AtomicI32,
    versions: HashMap<i16, (i16, i16)>,
    /// Finalized feature levels the broker reported (ApiVersions v3+), by name.
    features: HashMap<String, i16>,
    timeout: Duration,
    /// When to stop using it for new requests: shortly before its SASL session ends
    /// (`connections.max.reauth.ms` on the broker), a fresh connection takes over.
    retire_at: Option<std::time::Instant>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `addr` in plaintext and negotiates API versions.
    pub async fn connect(addr: &str, client_id: &str, timeout: Duration) -> Result<Connection> {
        Connection::connect_with(addr, client_id, timeout, &Connector::plaintext()).await
    }

    /// Connects to `addr` through `connector` (TLS, SASL), negotiates API versions and
    /// authenticates.
    pub async fn connect_with(
        addr: &str,
        client_id: &str,
        timeout: Duration,
        connector: &Connector,
    ) -> Result<Connection> {
        let io = |source| ClientError::Io {
            addr: addr.to_string(),
            source,
        };
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let mut conn = match connector.tls() {
            None => {
                let (reader, writer) = stream.into_split();
                Connection::start_on(addr, client_id, timeout, reader, Box::new(writer))
            }
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| ClientError::Config(format!("server name {host}: {e}")))?;
                let handshake = tokio_rustls::TlsConnector::from(tls.clone()).connect(name, stream);
                let stream = tokio::time::timeout(timeout, handshake)
                    .await
                    .map_err(|_| ClientError::Timeout(timeout))?
                    .map_err(io)?;
                let (reader, writer) = tokio::io::split(stream);
                Connection::start_on(addr, client_id, timeout, reader, Box::new(writer))
            }
        };
        (conn.versions, conn.features) = conn.fetch_versions().await?;
        let lifetime_ms = connector.authenticate(&conn).await?;
        if lifetime_ms > 0 {
            // Retire at 85% of the session, leaving requests in flight time to finish.
            let ms = (lifetime_ms as u64).saturating_mul(85) / 100;
            conn.retire_at = Some(std::time::Instant::now() + Duration::from_millis(ms));
        }
        Ok(conn)
    }

    /// A connection over `reader`/`writer`, with its reader task started.
    fn start_on<R: AsyncRead + Unpin + Send + 'static>(
        addr: &str,
        client_id: &str,
        timeout: Duration,
        mut reader: R,
        writer: Box<dyn AsyncWrite + Send + Unpin>,
    ) -> Connection {
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let routes = pending.clone();
        let peer = addr.to_string();
        tokio::spawn(async move {
            let outcome: std::io::Result<()> = async {
                loop {
                    let size = reader.read_i32().await?;
                    if size < 4 || size as usize > MAX_RESPONSE {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("response size {size}"),
                        ));
                    }
                    let mut body = vec![0u8; size as usize];
                    reader.read_exact(&mut body).await?;
                    let correlation = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    let waiter = routes.lock().as_mut().and_then(|m| m.remove(&correlation));
                    match waiter {
                        Some(tx) => {
                            let _ = tx.send(Bytes::from(body));
                        }
                        None => tracing::warn!(%peer, correlation, "response nobody waits for"),
                    }
                }
            }
            .await;
            if let Err(e) = outcome {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
            // Every waiter learns the connection is gone (their senders drop).
            routes.lock().take();
        });
        Connection {
            addr: addr.to_string(),
            client_id: client_id.to_string(),
            writer: tokio::sync::Mutex::new(writer),
            pending,
            next_id: AtomicI32::new(1),
            versions: HashMap::new(),
            features: HashMap::new(),
            timeout,
            retire_at: None,
        }
    }

    /// True once the connection is gone (every later request fails with `Closed`).
    pub fn is_closed(&self) -> bool {
        self.pending.lock().is_none()
    }

    /// True once new requests should go on a fresh connection: this one is closed, or its
    /// SASL session is about to end.
    pub fn is_retired(&self) -> bool {
        self.is_closed()
            || self
                .retire_at
                .is_some_and(|t| std::time::Instant::now() >= t)
    }

    /// The broker's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The broker's API version ranges and finalized features.
    async fn fetch_versions(&self) -> Result<(HashMap<i16, (i16, i16)>, HashMap<String, i16>)> {
        let mut request = ApiVersionsRequest::default();
        let max = ApiVersionsRequest::VERSIONS.max.min(4);
        if max >= 3 {
            request.client_software_name = StrBytes::from_static_str("strom-client");
            request.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        }
        let mut r: ApiVersionsResponse = self.send_at(&request, max).await?;
        if r.error_code == 35 {
            // Too new for the broker: it answered in v0 with what it supports; ask in v0.
            r = self.send_at(&ApiVersionsRequest::default(), 0).await?;
        }
        if r.error_code != 0 {
            return Err(ClientError::kafka(r.error_code));
        }
        let versions = r
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        let features = r
            .finalized_features
            .iter()
            .map(|f| (f.name.to_string(), f.max_version_level))
            .collect();
        Ok((versions, features))
    }

    /// The finalized level of feature `name` (`transaction.version`...), if the broker
    /// reported one.
    pub fn feature_level(&self, name: &str) -> Option<i16> {
        self.features.get(name).copied()
    }

    /// The highest version of `R` both this client and the broker speak.
    pub fn version<R: Request>(&self) -> Result<i16> {
        let (lo, hi) = self
            .versions
            .get(&R::KEY)
            .copied()
            .ok_or(ClientError::UnsupportedVersion { api_key: R::KEY })?;
        let top = hi.min(R::VERSIONS.max);
        if top < lo.max(R::VERSIONS.min) {
            return Err(ClientError::UnsupportedVersion { api_key: R::KEY });
        }
        Ok(top)
    }

    /// The highest version of `R` both sides speak, capped at `cap` (the newest version whose
    /// fields this client fills in).
    pub fn version_up_to<R: Request>(&self, cap: i16) -> Result<i16> {
        let (lo, _) = self
            .versions
            .get(&R::KEY)
            .copied()
            .ok_or(ClientError::UnsupportedVersion { api_key: R::KEY })?;
        let v = self.version::<R>()?.min(cap);
        if v < lo {
            return Err(ClientError::UnsupportedVersion { api_key: R::KEY });
        }
        Ok(v)
    }

    /// Sends `request` at the best common version and waits for its response.
    pub async fn send<R: Request>(&self, request: &R) -> Result<R::Response> {
        let version = self.version::<R>()?;
        self.send_at(request, version).await
    }

    /// Sends `request` at `version` and waits for its response (within the timeout).
    pub async fn send_at<R: Request>(&self, request: &R, version: i16) -> Result<R::Response> {
        self.send_within(request, version, self.timeout).await
    }

    /// Sends `request` at `version` and waits up to `timeout` for its response (a JoinGroup
    /// may legitimately wait for a whole rebalance timeout).
    pub async fn send_within<R: Request>(
        &self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        self.start(request, version, timeout).await?.await
    }

    /// Writes `request` now and returns a future of its response that borrows nothing, so
    /// requests go on the wire in the order they are started even when their responses are
    /// awaited elsewhere (the producer keeps a partition's batches in order this way).
    pub async fn start<R: Request>(
        &self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<impl std::future::Future<Output = Result<R::Response>> + Send + 'static> {
        let (correlation, rx) = self.register()?;
        self.write(request, version, correlation).await?;
        let pending = self.pending.clone();
        Ok(async move {
            let body = match tokio::time::timeout(timeout, rx).await {
                Err(_) => {
                    if let Some(m) = pending.lock().as_mut() {
                        m.remove(&correlation);
                    }
                    return Err(ClientError::Timeout(timeout));
                }
                Ok(Err(_)) => return Err(ClientError::Closed),
                Ok(Ok(body)) => body,
            };
            decode_response::<R>(body, version)
        })
    }
}

/// Decodes a response body (after the size) of `R` at `version`.
fn decode_response<R: Request>(body: Bytes, version: i16) -> Result<R::Response> {
    let mut buf = body;
    let header_version = R::Response::header_version(version);
    ResponseHeader::decode(&mut buf, header_version)
        .map_err(|e| ClientError::Protocol(format!("response header: {e}")))?;
    let response = R::Response::decode(&mut buf, version)
        .map_err(|e| ClientError::Protocol(format!("api {} v{version}: {e}", R::KEY)))?;
    if buf.has_remaining() {
        tracing::debug!(
            api_key = R::KEY,
            version,
            extra = buf.remaining(),
            "bytes after a response"
        );
    }
    Ok(response)
}

impl Connection {
    /// Sends a request that gets no response (Produce with acks=0).
    pub async fn send_no_response<R: Request>(&self, request: &R, version: i16) -> Result<()> {
        let correlation = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.write(request, version, correlation).await
    }

    fn register(&self) -> Result<(i32, oneshot::Receiver<Bytes>)> {
        let correlation = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .as_mut()
            .ok_or(ClientError::Closed)?
            .insert(correlation, tx);
        Ok((correlation, rx))
    }

    async fn write<R: Request>(&self, request: &R, version: i16, correlation: i32) -> Result<()> {
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(&[0, 0, 0, 0]);
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())))
            .encode(&mut buf, R::header_version(version))
            .map_err(|e| ClientError::Protocol(format!("request header: {e}")))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| ClientError::Protocol(format!("api {} v{version}: {e}", R::KEY)))?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        let mut w = self.writer.lock().await;
        let io = |source| ClientError::Io {
            addr: self.addr.clone(),
            source,
        };
        w.write_all(&buf).await.map_err(io)?;
        // TLS buffers records until flushed; a plain socket's flush does nothing.
        w.flush().await.map_err(io)
    }
}
