//! The metadata records: each is one change to the cluster, applied in log order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::image::PartitionImage;

/// One change to the cluster's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// A topic exists with this id (KRaft's TopicRecord).
    Topic {
        /// Topic name.
        name: String,
        /// Topic id (UUID, as Kafka clients see it).
        topic_id: uuid::Uuid,
    },
    /// A partition of a topic and its placement (KRaft's PartitionRecord).
    Partition {
        /// The owning topic.
        topic_id: uuid::Uuid,
        /// Partition index.
        partition: i32,
        /// Replica node ids.
        replicas: Vec<i32>,
        /// In-sync replicas.
        isr: Vec<i32>,
        /// Leader node id.
        leader: i32,
        /// Leader epoch: bumped each time the leader changes.
        leader_epoch: i32,
        /// Partition epoch: bumped on every change to this partition (leader or ISR).
        #[serde(default)]
        partition_epoch: i32,
        /// Replicas a reassignment in progress adds (KIP-455): in `replicas`, not yet in
        /// sync.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        adding_replicas: Vec<i32>,
        /// Replicas a reassignment in progress drops once the added ones are in sync.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removing_replicas: Vec<i32>,
    },
    /// A topic-level config set (`value: Some`) or removed (`None`) (KRaft's ConfigRecord).
    TopicConfig {
        /// Topic name.
        topic: String,
        /// Config name.
        name: String,
        /// New value, or `None` to fall back to the default.
        value: Option<String>,
    },
    /// A dynamic broker config (KRaft's ConfigRecord for a BROKER resource), for one broker
    /// or, with an empty `broker`, the cluster-wide default.
    BrokerConfig {
        /// The broker's id as a string, or empty for every broker.
        #[serde(default)]
        broker: String,
        /// Config name.
        name: String,
        /// New value, or `None` to remove.
        value: Option<String>,
    },
    /// A group config (KRaft's ConfigRecord for a GROUP resource, KIP-848).
    GroupConfig {
        /// Group id.
        group: String,
        /// Config name.
        name: String,
        /// New value, or `None` to fall back to the broker's default.
        value: Option<String>,
    },
    /// A topic was deleted, with its partitions and configs.
    RemoveTopic {
        /// The topic id.
        topic_id: uuid::Uuid,
    },
    /// A block of producer ids was handed out: ids below `next_producer_id` are never given
    /// again (KRaft's ProducerIdsRecord).
    ProducerIds {
        /// The node the block went to.
        broker_id: i32,
        /// First id of the next block.
        next_producer_id: i64,
    },
    /// A broker registered (KRaft's RegisterBrokerRecord): a new incarnation of `broker_id`,
    /// fenced until it has caught up with the metadata log.
    RegisterBroker {
        /// Node id.
        broker_id: i32,
        /// Random per process start: tells a restarted broker from a duplicate `node.id`.
        incarnation_id: uuid::Uuid,
        /// Broker epoch: greater than every epoch given before; requests carrying an older
        /// one come from a zombie.
        epoch: i64,
        /// Where clients reach it.
        listeners: Vec<Endpoint>,
        /// `broker.rack`.
        rack: Option<String>,
    },
    /// The broker may lead and serve partitions (it heartbeats and has caught up).
    UnfenceBroker {
        /// Node id.
        broker_id: i32,
        /// The registration this applies to.
        epoch: i64,
    },
    /// The broker's heartbeats stopped, or it shut down under control: it leads nothing and
    /// clients are not sent to it.
    FenceBroker {
        /// Node id.
        broker_id: i32,
        /// The registration this applies to.
        epoch: i64,
    },
    /// A user's SCRAM credential for one mechanism, set or replaced (KRaft's
    /// UserScramCredentialRecord). Only the salted keys are kept, never the password.
    UserScramCredential {
        /// The user name (the principal is `User:<name>`).
        name: String,
        /// Which SCRAM mechanism it serves.
        mechanism: ScramMechanism,
        /// The stored keys.
        credential: ScramCredential,
    },
    /// A user's SCRAM credential for one mechanism was deleted.
    RemoveUserScramCredential {
        /// The user name.
        name: String,
        /// The mechanism.
        mechanism: ScramMechanism,
    },
    /// An ACL was created (KRaft's AccessControlEntryRecord).
    AccessControlEntry {
        /// Its id: DeleteAcls removes it by id.
        id: uuid::Uuid,
        /// The ACL.
        acl: AclBinding,
    },
    /// An ACL was deleted (KRaft's RemoveAccessControlEntryRecord).
    RemoveAccessControlEntry {
        /// The id it was created with.
        id: uuid::Uuid,
    },
    /// A client quota was set or removed (KRaft's ClientQuotaRecord).
    ClientQuota {
        /// Who it applies to.
        entity: QuotaEntity,
        /// The quota key (`producer_byte_rate`).
        key: String,
        /// The value; `None` removes it.
        value: Option<QuotaValue>,
    },
    /// The cluster's id, written once when the metadata log is created.
    Cluster {
        /// Kafka's cluster id (22 characters, base64 of a UUID).
        cluster_id: String,
    },
}

impl MetadataRecord {
    /// The record that sets partition `partition` of `topic_id` to `p`.
    pub fn partition(topic_id: uuid::Uuid, partition: i32, p: &PartitionImage) -> Self {
        MetadataRecord::Partition {
            topic_id,
            partition,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            adding_replicas: p.adding_replicas.clone(),
            removing_replicas: p.removing_replicas.clone(),
        }
    }

    /// Serialized form stored in a record value.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a stored record value.
    pub fn from_bytes(bytes: &[u8]) -> Result<MetadataRecord, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// A listener a broker advertises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Listener name (`PLAINTEXT`).
    pub name: String,
    /// Host clients connect to.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// Configs by name.
pub type Configs = BTreeMap<String, String>;

pub use strom_types::acl::AclBinding;
pub use strom_types::quota::{QuotaEntity, QuotaValue};
pub use strom_types::ScramMechanism;

/// What a server keeps to verify a SCRAM client (RFC 5802): the salt and iteration count the
/// client derives its salted password with, `StoredKey = H(HMAC(SaltedPassword, "Client
/// Key"))` and `ServerKey = HMAC(SaltedPassword, "Server Key")`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// The salt.
    pub salt: Vec<u8>,
    /// StoredKey.
    pub stored_key: Vec<u8>,
    /// ServerKey.
    pub server_key: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: u32,
}
