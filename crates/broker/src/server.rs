//! Listening and connections. One task per connection; requests on a connection are read,
//! handled and answered strictly in order (clients may pipeline). A frame above
//! `socket.request.max.bytes`, a malformed header or an unsupported request closes that
//! connection only; an idle connection closes after `connections.max.idle.ms`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::BufMut;
use strom_protocol::frame::read_frame;
use strom_storage::FileRegion;
use tokio::io::AsyncWriteExt;
use tokio::io::Interest;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::fetch_codec::Chunk;
use crate::handlers::{self, Response};

/// Serves `listener` until `shutdown` completes, then stops accepting, lets every connection
/// finish the request it is handling, and returns.
pub async fn run(listener: TcpListener, broker: Arc<Broker>, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let broker = broker.clone();
                    let stop = stop_rx.clone();
                    connections.spawn(async move {
                        if let Err(e) = serve(stream, peer, broker, stop).await {
                            tracing::info!(%peer, error = %e, "connection closed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), drain)
        .await
        .is_err()
    {
        connections.abort_all();
    }
}

async fn serve(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (mut reader, mut writer) = stream.into_split();
    let max = broker.config.socket_request_max_bytes;
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => return Ok(()),
            read = tokio::time::timeout(idle, read_frame(&mut reader, max)) => match read {
                Err(_) => anyhow::bail!("idle for connections.max.idle.ms"),
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(e)) => return Err(e.into()),
            },
        };
        let Some(response) = handlers::handle(&broker, frame, peer).await? else {
            continue; // acks=0
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
                        Chunk::File(region) => send_file(&writer, &region).await?,
                    }
                }
            }
        }
    }
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
