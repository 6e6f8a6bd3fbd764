//! Listening and connections. Each listener (plaintext or TLS) has its accept loop; one task
//! per connection; requests on a connection are read, handled and answered strictly in
//! order (clients may pipeline). A frame above `socket.request.max.bytes`, a malformed
//! header, an unsupported request or a failed TLS handshake closes that connection only;
//! an idle connection closes after `connections.max.idle.ms`. Connection limits
//! ([`crate::limits`]) hold accepting back or refuse a connection. On a SASL listener a
//! connection has [`AUTHENTICATION_TIMEOUT`] to authenticate, and one whose exchange
//! failed closes once the failure is answered.
//!
//! Fetched record bytes go from the page cache to a plaintext socket by `sendfile(2)`; a TLS
//! connection must encrypt them, so they are read into memory and written through rustls.

use std::future::Future;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use bytes::BufMut;
use strom_protocol::frame::read_frame;
use strom_storage::FileRegion;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::auth::principal::{subject_dn, MappingRules};
use crate::auth::{Principal, Session, AUTHENTICATION_TIMEOUT};
use crate::broker::Broker;
use crate::config::SecurityProtocol;
use crate::fetch_codec::Chunk;
use crate::handlers::{self, Response};
use crate::limits::{ListenerLimits, Room};
use crate::metrics::RequestTimes;

/// How long a client has to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound listener with its name (what Metadata answers endpoints of) and, for an SSL
/// listener, its TLS configuration.
pub struct BoundListener {
    /// The socket.
    pub socket: TcpListener,
    /// The listener's name in `listeners`.
    pub name: Arc<str>,
    /// TLS, for an SSL or SASL_SSL listener, with the rules that turn a client
    /// certificate's subject into a principal.
    pub tls: Option<(Arc<rustls::ServerConfig>, Arc<MappingRules>)>,
}

/// Serves every listener until `shutdown` completes, then stops accepting, lets every
/// connection finish the request it is handling, and returns.
pub async fn run(
    listeners: Vec<BoundListener>,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut loops = JoinSet::new();
    for l in listeners {
        loops.spawn(accept_loop(l, broker.clone(), stop_rx.clone()));
    }
    broker
        .serving
        .store(true, std::sync::atomic::Ordering::Release);
    shutdown.await;
    broker
        .serving
        .store(false, std::sync::atomic::Ordering::Release);
    let _ = stop_tx.send(true);
    while loops.join_next().await.is_some() {}
}

async fn accept_loop(l: BoundListener, broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    let limits = match broker.config.connection_limits.listener(&l.name) {
        Ok(limits) => limits,
        Err(e) => {
            // Checked when the configuration was read; cannot happen.
            tracing::error!(listener = %l.name, error = %e, "connection limits");
            return;
        }
    };
    // At a connection limit this waits, and the kernel's backlog holds new connections.
    let mut next = Box::pin(accept_next(&limits, &l.socket));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            (room, accepted) = &mut next => {
                next = Box::pin(accept_next(&limits, &l.socket));
                match accepted {
                Ok((stream, peer)) => {
                    let Some(slot) = limits.admit(peer.ip(), room) else {
                        tracing::warn!(%peer, listener = %l.name, "refused a connection: max.connections.per.ip reached for this address");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let broker = broker.clone();
                    let stop = stop.clone();
                    let name = l.name.clone();
                    let tls = l.tls.clone().map(|(c, rules)| (TlsAcceptor::from(c), rules));
                    connections.spawn(async move {
                        let _slot = slot;
                        let _counted = Counted::open(&broker, &name);
                        if let Err(e) = serve(stream, peer, name.clone(), tls, broker, stop).await {
                            tracing::info!(%peer, listener = %name, error = %e, "connection closed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(listener = %l.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }},
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), drain)
        .await
        .is_err()
    {
        connections.abort_all();
    }
}

/// A connection as the metrics count it: opened when made, closed when dropped, however
/// its task ends (aborted at shutdown too).
struct Counted {
    broker: Arc<Broker>,
    listener: Arc<str>,
}

impl Counted {
    fn open(broker: &Arc<Broker>, listener: &Arc<str>) -> Counted {
        broker.metrics.connection(listener, true);
        Counted {
            broker: broker.clone(),
            listener: listener.clone(),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.broker.metrics.connection(&self.listener, false);
    }
}

/// Room under the connection limits, then the next connection.
async fn accept_next(
    limits: &ListenerLimits,
    socket: &TcpListener,
) -> (Room, std::io::Result<(TcpStream, std::net::SocketAddr)>) {
    let room = limits.room().await;
    (room, socket.accept().await)
}

async fn serve(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    listener: Arc<str>,
    tls: Option<(TlsAcceptor, Arc<MappingRules>)>,
    broker: Arc<Broker>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    match tls {
        None => {
            let (reader, writer) = stream.into_split();
            let out: Out<OwnedWriteHalf> = Out::Plain(writer);
            let session = new_session(&broker, peer, &listener, Principal::anonymous());
            serve_on(reader, out, session, broker, stop).await
        }
        Some((acceptor, rules)) => {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Err(_) => anyhow::bail!("TLS handshake not completed in {HANDSHAKE_TIMEOUT:?}"),
                    Ok(Err(e)) => anyhow::bail!("TLS handshake failed: {e}"),
                    Ok(Ok(s)) => s,
                };
            // A client certificate names the principal (until SASL, if any, names another).
            let certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.as_ref().to_vec());
            let principal = match certificate {
                None => Principal::anonymous(),
                Some(der) => {
                    let dn = subject_dn(&der)
                        .ok_or_else(|| anyhow::anyhow!("client certificate subject unreadable"))?;
                    let name = rules.apply(&dn).ok_or_else(|| {
                        anyhow::anyhow!("no ssl.principal.mapping.rules rule applies to {dn}")
                    })?;
                    Principal::user(name)
                }
            };
            tracing::debug!(%peer, %principal, "TLS client");
            let (reader, writer) = tokio::io::split(stream);
            let session = new_session(&broker, peer, &listener, principal);
            serve_on(reader, Out::Tls(writer), session, broker, stop).await
        }
    }
}

/// Where responses go: a plaintext socket (fetched bytes by `sendfile`) or a TLS stream.
enum Out<W> {
    Plain(OwnedWriteHalf),
    Tls(W),
}

impl<W: AsyncWrite + Unpin> Out<W> {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Out::Plain(w) => w.write_all(bytes).await,
            Out::Tls(w) => w.write_all(bytes).await,
        }
    }

    async fn write_region(&mut self, region: &FileRegion) -> anyhow::Result<()> {
        match self {
            Out::Plain(w) => send_file(w, region).await,
            Out::Tls(w) => copy_region(w, region).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Out::Plain(_) => Ok(()),
            Out::Tls(w) => w.flush().await,
        }
    }
}

fn new_session(
    broker: &Broker,
    peer: std::net::SocketAddr,
    listener: &Arc<str>,
    principal: Principal,
) -> Session {
    let sasl = matches!(
        broker.config.security_protocol(listener),
        SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
    );
    let mut session = Session::new(peer, listener.clone(), sasl);
    session.principal = principal;
    session
}

async fn serve_on<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut reader: R,
    mut writer: Out<W>,
    mut session: Session,
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let max = broker.config.socket_request_max_bytes;
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    loop {
        // Until it has authenticated, a client has AUTHENTICATION_TIMEOUT, not the idle time.
        let (wait, unauthenticated) = match session.authentication_deadline() {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                (left.min(idle), left < idle)
            }
            None => (idle, false),
        };
        // Before authentication a frame is a SASL exchange, never large: a client that has
        // not proven who it is cannot make the broker allocate `socket.request.max.bytes`.
        let limit = if unauthenticated || session.authentication_deadline().is_some() {
            max.min(broker.config.sasl_server_max_receive_size)
        } else {
            max
        };
        let frame = tokio::select! {
            _ = stop.changed() => return Ok(()),
            read = tokio::time::timeout(wait, read_frame(&mut reader, limit)) => match read {
                Err(_) if unauthenticated => anyhow::bail!("not authenticated within {AUTHENTICATION_TIMEOUT:?}"),
                Err(_) => anyhow::bail!("idle for connections.max.idle.ms"),
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(e)) => return Err(e.into()),
            },
        };
        let arrived = std::time::Instant::now();
        session.facts.begin(frame.len() + 4);
        let (handled, busy) =
            crate::quotas::timed(handlers::handle(&broker, frame, &mut session)).await;
        let held = broker
            .quotas
            .record_request(&broker.image(), session.quota_client(), busy);
        session.throttle(held);
        let handled_at = std::time::Instant::now();
        let record = |session: &Session| {
            let sent = std::time::Instant::now();
            broker.metrics.request(
                &session.facts,
                RequestTimes {
                    local: busy,
                    remote: handled_at
                        .saturating_duration_since(arrived)
                        .saturating_sub(busy),
                    send: sent.saturating_duration_since(handled_at),
                    throttle: session.throttle,
                },
            );
        };
        let Some(response) = handled? else {
            record(&session);
            // acks=0: no response, but a throttled producer is held back all the same.
            if hold_back(&mut session, &mut stop).await {
                return Ok(());
            }
            continue;
        };
        match response {
            Response::Bytes(body) => {
                let mut out = bytes::BytesMut::with_capacity(4 + body.len());
                out.put_i32(body.len() as i32);
                out.extend_from_slice(&body);
                writer.write_all(&out).await?;
            }
            Response::Chunks(chunks) => {
                let total: usize = chunks.iter().map(Chunk::len).sum();
                writer.write_all(&(total as i32).to_be_bytes()).await?;
                for chunk in chunks {
                    match chunk {
                        Chunk::Bytes(b) => writer.write_all(&b).await?,
                        Chunk::File(region) => writer.write_region(&region).await?,
                    }
                }
            }
        }
        writer.flush().await?;
        record(&session);
        if session.must_close() {
            return Ok(());
        }
        if hold_back(&mut session, &mut stop).await {
            return Ok(());
        }
    }
}

/// KIP-219: a throttled client's connection is not read until its throttle time has passed
/// (the response already told it how long). True if the broker is stopping meanwhile.
async fn hold_back(session: &mut Session, stop: &mut watch::Receiver<bool>) -> bool {
    let wait = session.take_throttle();
    if wait.is_zero() {
        return false;
    }
    tokio::select! {
        _ = stop.changed() => true,
        _ = tokio::time::sleep(wait) => false,
    }
}

/// Writes a file region through a TLS stream: read from the segment file (the page cache,
/// normally) in slices and encrypted by rustls.
async fn copy_region<W: AsyncWrite + Unpin>(
    writer: &mut W,
    region: &FileRegion,
) -> anyhow::Result<()> {
    const SLICE: u64 = 256 << 10;
    let mut offset = region.position();
    let end = region.position() + region.len();
    let mut buf = vec![0u8; SLICE.min(region.len()) as usize];
    while offset < end {
        let want = (end - offset).min(SLICE) as usize;
        let n = region.file().read_at(&mut buf[..want], offset)?;
        if n == 0 {
            anyhow::bail!("segment file ended inside a fetch region (truncated)");
        }
        writer.write_all(&buf[..n]).await?;
        offset += n as u64;
    }
    Ok(())
}

/// Sends a file region to the socket with `sendfile(2)`: the record bytes go from the page
/// cache to the socket without passing through user space.
async fn send_file(writer: &OwnedWriteHalf, region: &FileRegion) -> anyhow::Result<()> {
    let stream: &TcpStream = writer.as_ref();
    let mut offset = region.position();
    let end = region.position() + region.len();
    while offset < end {
        stream.writable().await?;
        let want = (end - offset).min(1 << 30) as usize;
        match stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, region.file().as_ref(), Some(&mut offset), want)
                .map_err(std::io::Error::from)
        }) {
            Ok(0) => anyhow::bail!("segment file ended inside a fetch region (truncated)"),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
