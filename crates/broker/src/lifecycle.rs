//! The broker's life in the cluster (Kafka's BrokerLifecycleManager): register with the
//! active controller, heartbeat every `broker.heartbeat.interval.ms`, become ready once
//! unfenced, register again when the controller says the epoch is stale, and on a
//! controlled shutdown heartbeat `want_shut_down` until the controller has moved this
//! broker's leaderships away and lets it go.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use strom_metadata::records::Endpoint;
use strom_metadata::{ControllerError, ControllerReply, ControllerRequest};

use crate::broker::Broker;

/// Pause after a failed registration or heartbeat.
const RETRY: Duration = Duration::from_millis(500);

pub(crate) async fn run(broker: Weak<Broker>) {
    loop {
        let Some((epoch, registered_at)) = register(&broker).await else {
            return;
        };
        if !heartbeats(&broker, epoch, registered_at).await {
            return;
        }
    }
}

/// Registers until the controller accepts: (epoch, offset of the registration).
async fn register(broker: &Weak<Broker>) -> Option<(i64, i64)> {
    let mut refused_before = false;
    loop {
        let b = broker.upgrade()?;
        let request = ControllerRequest::RegisterBroker {
            broker_id: b.config.node_id,
            incarnation_id: b.incarnation_id,
            listeners: advertised(&b),
            rack: b.config.broker_rack.clone(),
            raft_addr: b.metadata.quorum().config().own_addr.clone(),
        };
        let timeout = Duration::from_millis(b.config.broker_session_timeout_ms);
        match b.metadata.submit(request, timeout).await {
            Ok(ControllerReply::Registered { epoch, offset }) => {
                b.epoch.store(epoch, Ordering::Release);
                b.replicas.set_broker_epoch(epoch);
                tracing::info!(
                    node_id = b.config.node_id,
                    epoch,
                    "registered with the controller"
                );
                return Some((epoch, offset));
            }
            Ok(other) => tracing::warn!(?other, "unexpected answer to BrokerRegistration"),
            Err(ControllerError::DuplicateBrokerRegistration(why)) => {
                // Said once; a restart within the session timeout retries until it expires.
                if !refused_before {
                    tracing::warn!(node_id = b.config.node_id, %why, "the controller refused this broker's registration; retrying");
                    refused_before = true;
                }
            }
            Err(e) => tracing::info!(error = %e, "broker registration did not complete yet"),
        }
        drop(b);
        tokio::time::sleep(RETRY).await;
    }
}

/// Heartbeats at `epoch` until the epoch goes stale (`true`: register again) or the broker
/// is gone or let go (`false`).
async fn heartbeats(broker: &Weak<Broker>, epoch: i64, registered_at: i64) -> bool {
    loop {
        let Some(b) = broker.upgrade() else {
            return false;
        };
        let want_shut_down = *b.shutdown_wanted.borrow();
        let interval = Duration::from_millis(b.config.broker_heartbeat_interval_ms);
        let request = ControllerRequest::Heartbeat {
            broker_id: b.config.node_id,
            epoch,
            metadata_offset: b.metadata.image().offset,
            want_shut_down,
        };
        let timeout = Duration::from_millis(b.config.broker_session_timeout_ms / 2).max(interval);
        let fenced = match b.metadata.submit(request, timeout).await {
            Ok(ControllerReply::Heartbeat {
                fenced,
                should_shut_down,
                ..
            }) => {
                if should_shut_down {
                    tracing::info!("the controller completed this broker's controlled shutdown");
                    b.shutdown_done.send_replace(true);
                    return false;
                }
                if !fenced && !*b.ready.borrow() {
                    tracing::info!(
                        node_id = b.config.node_id,
                        epoch,
                        "unfenced: serving clients"
                    );
                    b.joined.store(true, std::sync::atomic::Ordering::Release);
                    b.catch_up();
                    b.delete_stray_logs();
                    b.ready.send_replace(true);
                }
                fenced
            }
            Ok(other) => {
                tracing::warn!(?other, "unexpected answer to BrokerHeartbeat");
                true
            }
            Err(ControllerError::StaleBrokerEpoch(why)) => {
                tracing::warn!(%why, "broker epoch is stale: registering again");
                return true;
            }
            Err(e) => {
                tracing::info!(error = %e, "broker heartbeat failed");
                true
            }
        };
        // A fenced broker heartbeats as soon as it has replayed its registration; an
        // unfenced one every interval, or at once when a shutdown is asked for.
        let mut images = b.metadata.subscribe();
        let mut shutdown = b.shutdown_wanted.subscribe();
        drop(b);
        if fenced {
            let caught_up = images.wait_for(|i| i.offset >= registered_at);
            let _ = tokio::time::timeout(RETRY.max(interval / 4), caught_up).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        } else if !want_shut_down {
            let _ = tokio::time::timeout(interval, shutdown.wait_for(|s| *s)).await;
        } else {
            tokio::time::sleep(RETRY / 5).await;
        }
    }
}

fn advertised(b: &Broker) -> Vec<Endpoint> {
    b.advertised().to_vec()
}
