//! A member of a classic group of any protocol type (Kafka's `AbstractCoordinator`), for
//! programs that are not consumers but share work through the group coordinator: Kafka
//! Connect's workers join with protocol type `connect`, and the leader's assignment is
//! whatever bytes the program encodes. This module owns the JoinGroup and SyncGroup round,
//! the background heartbeats and what they learn (a rebalance began, the membership was
//! lost), and leaving.
//!
//! The consumer's membership (`group`) is specific to partitions and assignors; this one
//! carries opaque metadata and assignments, and leaves the assigning to its caller.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::admin::s;
use crate::cluster::Cluster;
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::group::{
    coordinator_moved, find_coordinator, ILLEGAL_GENERATION, MEMBER_ID_REQUIRED,
    REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
};

/// The settings of a membership.
#[derive(Debug, Clone)]
pub struct MemberSettings {
    /// group.id.
    pub group_id: String,
    /// The protocol type every member must share (`connect` for Connect workers).
    pub protocol_type: String,
    /// session.timeout.ms: silent this long, the member is removed.
    pub session_timeout: Duration,
    /// heartbeat.interval.ms.
    pub heartbeat_interval: Duration,
    /// rebalance.timeout.ms: how long the coordinator waits for members to rejoin.
    pub rebalance_timeout: Duration,
}

/// A JoinGroup's outcome.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The generation.
    pub generation: i32,
    /// This member's id.
    pub member_id: String,
    /// The leader's member id.
    pub leader: String,
    /// The protocol the group chose.
    pub protocol: String,
    /// Every member's id and metadata, given to the leader only (empty for the others).
    pub members: Vec<(String, Bytes)>,
}

impl Joined {
    /// Whether this member leads the generation (and must assign).
    pub fn is_leader(&self) -> bool {
        self.leader == self.member_id
    }
}

#[derive(Debug, Default)]
struct Shared {
    member_id: String,
    generation: i32,
    coordinator: Option<Arc<Connection>>,
    /// Synced: heartbeats flow.
    stable: bool,
    /// The coordinator began a rebalance, or the membership was lost: join again.
    rejoin: bool,
    leaving: bool,
}

/// One program's membership of a group.
pub struct GroupMember {
    settings: MemberSettings,
    cluster: Arc<Cluster>,
    shared: Arc<Mutex<Shared>>,
    /// Told when `rejoin` becomes true.
    rebalance: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One round's failure that is worth another round.
enum Round<T> {
    Done(T),
    Again,
}

impl GroupMember {
    /// A member that has not joined yet; heartbeats start with the first sync.
    pub fn new(settings: MemberSettings, cluster: Arc<Cluster>) -> GroupMember {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let rebalance = Arc::new(Notify::new());
        let task = tokio::spawn(heartbeats(
            settings.clone(),
            cluster.clone(),
            shared.clone(),
            rebalance.clone(),
        ));
        GroupMember {
            settings,
            cluster,
            shared,
            rebalance,
            task,
        }
    }

    /// The current generation and member id (0 and empty before the first join).
    pub fn generation(&self) -> (i32, String) {
        let sh = self.shared.lock();
        (sh.generation, sh.member_id.clone())
    }

    /// Whether a rebalance is pending (the coordinator said so, or the member was dropped).
    pub fn needs_rejoin(&self) -> bool {
        self.shared.lock().rejoin
    }

    /// Resolves once a rebalance is pending.
    pub async fn rebalance_pending(&self) {
        loop {
            let notified = self.rebalance.notified();
            if self.needs_rejoin() {
                return;
            }
            notified.await;
        }
    }

    /// Joins (or rejoins) with these protocols (name, metadata), retrying what the
    /// coordinator asks to retry.
    pub async fn join(&self, protocols: &[(String, Bytes)]) -> Result<Joined> {
        self.shared.lock().stable = false;
        let mut backoff = Duration::from_millis(50);
        for _ in 0..200 {
            match self.coordinator().await {
                Ok(conn) => {
                    if let Round::Done(joined) = self.join_once(&conn, protocols).await? {
                        return Ok(joined);
                    }
                }
                Err(e) if e.is_retriable() => {}
                Err(e) => return Err(e),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        Err(ClientError::Protocol("could not join the group".into()))
    }

    async fn join_once(
        &self,
        conn: &Connection,
        protocols: &[(String, Bytes)],
    ) -> Result<Round<Joined>> {
        let st = &self.settings;
        let member_id = self.shared.lock().member_id.clone();
        let version = conn.version::<JoinGroupRequest>()?;
        let mut request = JoinGroupRequest::default()
            .with_group_id(GroupId(s(&st.group_id)))
            .with_session_timeout_ms(st.session_timeout.as_millis() as i32)
            .with_member_id(s(&member_id))
            .with_protocol_type(s(&st.protocol_type))
            .with_protocols(
                protocols
                    .iter()
                    .map(|(name, metadata)| {
                        JoinGroupRequestProtocol::default()
                            .with_name(s(name))
                            .with_metadata(metadata.clone())
                    })
                    .collect(),
            );
        if version >= 1 {
            request.rebalance_timeout_ms = st.rebalance_timeout.as_millis() as i32;
        }
        // The coordinator holds a JoinGroup until every member has rejoined.
        let wait = st.rebalance_timeout + Duration::from_secs(5);
        let r = conn.send_within(&request, version, wait).await?;
        match r.error_code {
            0 => {}
            MEMBER_ID_REQUIRED => {
                self.shared.lock().member_id = r.member_id.to_string();
                return Ok(Round::Again);
            }
            UNKNOWN_MEMBER_ID => {
                self.shared.lock().member_id.clear();
                return Ok(Round::Again);
            }
            REBALANCE_IN_PROGRESS => return Ok(Round::Again),
            code if coordinator_moved(code) => {
                self.shared.lock().coordinator = None;
                return Ok(Round::Again);
            }
            code => return Err(ClientError::kafka(code)),
        }
        let joined = Joined {
            generation: r.generation_id,
            member_id: r.member_id.to_string(),
            leader: r.leader.to_string(),
            protocol: r
                .protocol_name
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            members: r
                .members
                .iter()
                .map(|m| (m.member_id.to_string(), m.metadata.clone()))
                .collect(),
        };
        let mut sh = self.shared.lock();
        sh.member_id = joined.member_id.clone();
        sh.generation = joined.generation;
        sh.rejoin = false;
        Ok(Round::Done(joined))
    }

    /// Sends the leader's assignments (empty from the others) and returns this member's,
    /// or `None` when the generation ended meanwhile (join again).
    pub async fn sync(
        &self,
        joined: &Joined,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<Option<Bytes>> {
        let st = &self.settings;
        let conn = self.coordinator().await?;
        let version = conn.version::<SyncGroupRequest>()?;
        let mut sync = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&st.group_id)))
            .with_generation_id(joined.generation)
            .with_member_id(s(&joined.member_id))
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(member, bytes)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(s(&member))
                            .with_assignment(bytes)
                    })
                    .collect(),
            );
        if version >= 5 {
            sync.protocol_type = Some(s(&st.protocol_type));
            sync.protocol_name = Some(s(&joined.protocol));
        }
        let wait = st.rebalance_timeout + Duration::from_secs(5);
        let r = conn.send_within(&sync, version, wait).await?;
        let mut sh = self.shared.lock();
        match r.error_code {
            0 => {
                sh.stable = true;
                drop(sh);
                // Heartbeats begin now.
                self.rebalance.notify_waiters();
                Ok(Some(r.assignment))
            }
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => Ok(None),
            UNKNOWN_MEMBER_ID => {
                sh.member_id.clear();
                Ok(None)
            }
            code if coordinator_moved(code) => {
                sh.coordinator = None;
                Ok(None)
            }
            code => Err(ClientError::kafka(code)),
        }
    }

    /// Leaves the group, so the others rebalance at once instead of after the session
    /// timeout.
    pub async fn leave(&self, reason: &str) -> Result<()> {
        let member_id = {
            let mut sh = self.shared.lock();
            sh.leaving = true;
            sh.stable = false;
            sh.member_id.clone()
        };
        self.task.abort();
        if member_id.is_empty() {
            return Ok(());
        }
        let conn = self.coordinator().await?;
        let version = conn.version::<LeaveGroupRequest>()?;
        let mut request =
            LeaveGroupRequest::default().with_group_id(GroupId(s(&self.settings.group_id)));
        if version >= 3 {
            let mut m = MemberIdentity::default().with_member_id(s(&member_id));
            if version >= 5 {
                m.reason = Some(s(reason));
            }
            request.members = vec![m];
        } else {
            request.member_id = s(&member_id);
        }
        let r = conn.send_at(&request, version).await?;
        let code = r
            .members
            .iter()
            .map(|m| m.error_code)
            .find(|c| *c != 0)
            .unwrap_or(r.error_code);
        if code != 0 && code != UNKNOWN_MEMBER_ID {
            return Err(ClientError::kafka(code));
        }
        Ok(())
    }

    async fn coordinator(&self) -> Result<Arc<Connection>> {
        coordinator(&self.cluster, &self.shared, &self.settings.group_id).await
    }
}

async fn coordinator(
    cluster: &Cluster,
    shared: &Mutex<Shared>,
    group: &str,
) -> Result<Arc<Connection>> {
    let known = shared.lock().coordinator.clone();
    if let Some(c) = known.filter(|c| !c.is_closed()) {
        return Ok(c);
    }
    let c = find_coordinator(cluster, group).await?;
    shared.lock().coordinator = Some(c.clone());
    Ok(c)
}

/// Heartbeats while synced, every `heartbeat_interval`; a rebalance or a lost membership
/// sets `rejoin` and tells the owner.
async fn heartbeats(
    st: MemberSettings,
    cluster: Arc<Cluster>,
    shared: Arc<Mutex<Shared>>,
    rebalance: Arc<Notify>,
) {
    loop {
        // Made before the check, so a sync in between still wakes it.
        let synced = rebalance.notified();
        let (stable, generation, member_id) = {
            let sh = shared.lock();
            if sh.leaving {
                return;
            }
            (sh.stable, sh.generation, sh.member_id.clone())
        };
        if !stable {
            // Woken by the next successful sync.
            synced.await;
            continue;
        }
        tokio::time::sleep(st.heartbeat_interval).await;
        let outcome = async {
            let conn = coordinator(&cluster, &shared, &st.group_id).await?;
            let request = HeartbeatRequest::default()
                .with_group_id(GroupId(s(&st.group_id)))
                .with_generation_id(generation)
                .with_member_id(s(&member_id));
            conn.send(&request).await
        }
        .await;
        let code = match outcome {
            Ok(r) => r.error_code,
            Err(e) => {
                tracing::debug!(group = %st.group_id, error = %e, "heartbeat failed");
                shared.lock().coordinator = None;
                continue;
            }
        };
        let mut sh = shared.lock();
        if sh.generation != generation || !sh.stable {
            continue; // a join happened meanwhile
        }
        match code {
            0 => {}
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID => {
                if code == UNKNOWN_MEMBER_ID {
                    sh.member_id.clear();
                }
                sh.stable = false;
                sh.rejoin = true;
                drop(sh);
                rebalance.notify_waiters();
            }
            code if coordinator_moved(code) => sh.coordinator = None,
            code => {
                tracing::warn!(group = %st.group_id, code, "heartbeat refused");
                sh.stable = false;
                sh.rejoin = true;
                drop(sh);
                rebalance.notify_waiters();
            }
        }
    }
}
