//! [`MetadataImage`]: the cluster state at one offset of the metadata log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::records::{
    AclBinding, Configs, Endpoint, MetadataRecord, QuotaEntity, QuotaValue, ScramCredential,
    ScramMechanism,
};

/// One partition's placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Leader node id, -1 while no replica can lead.
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Bumped on every change to the partition.
    pub partition_epoch: i32,
    /// Replicas a reassignment in progress adds; they are in `replicas` already.
    #[serde(default)]
    pub adding_replicas: Vec<i32>,
    /// Replicas a reassignment in progress removes once every added one is in sync.
    #[serde(default)]
    pub removing_replicas: Vec<i32>,
}

impl PartitionImage {
    /// Whether a reassignment is in progress.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas a reassignment in progress ends with (all of them when none is).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }
}

/// One registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerImage {
    /// Node id.
    pub id: i32,
    /// The process incarnation that registered.
    pub incarnation_id: uuid::Uuid,
    /// The registration's epoch.
    pub epoch: i64,
    /// Advertised listeners.
    pub listeners: Vec<Endpoint>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are not shown to clients.
    pub fenced: bool,
    /// The metadata log offset of the registration: the broker is unfenced once it has
    /// replayed that far.
    pub registered_offset: i64,
}

impl BrokerImage {
    /// Whether clients may be sent to it and it may lead partitions.
    pub fn is_active(&self) -> bool {
        !self.fenced
    }
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    /// Name.
    pub name: String,
    /// Id.
    pub topic_id: uuid::Uuid,
    /// Partitions by index.
    pub partitions: BTreeMap<i32, PartitionImage>,
    /// Topic-level config overrides.
    pub configs: Configs,
}

/// The whole metadata state, built by replaying records in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// The cluster id.
    pub cluster_id: String,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicImage>,
    /// Dynamic broker configs by broker id (as a string; empty: the cluster-wide default).
    pub broker_configs: BTreeMap<String, Configs>,
    /// Group config overrides by group id (KIP-848).
    pub group_configs: BTreeMap<String, Configs>,
    /// Registered brokers by node id.
    #[serde(default)]
    pub brokers: BTreeMap<i32, BrokerImage>,
    /// Topic names by id: partition records name their topic by id.
    #[serde(default)]
    pub topic_names: BTreeMap<uuid::Uuid, String>,
    /// First producer id not yet handed out in a block.
    pub next_producer_id: i64,
    /// SCRAM credentials by user name and mechanism.
    #[serde(default)]
    pub scram_credentials: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// Client quotas by entity and key.
    #[serde(default, with = "as_pairs")]
    pub client_quotas: BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>,
    /// ACLs by id.
    #[serde(default)]
    pub acls: BTreeMap<uuid::Uuid, AclBinding>,
    /// One past the offset of the last ACL change (0: none yet): an authorizer rebuilds its
    /// index only when this moves.
    #[serde(default)]
    pub acls_offset: i64,
    /// Raft log index of the last entry applied (-1 before any).
    pub offset: i64,
}

/// A map with structured keys as a JSON list of `[key, value]` pairs (JSON object keys are
/// strings only).
mod as_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// Sets or removes one config of a resource, dropping the resource once it has none.
fn set_config(
    entry: std::collections::btree_map::Entry<'_, String, Configs>,
    name: &str,
    value: &Option<String>,
) {
    use std::collections::btree_map::Entry;
    match (entry, value) {
        (Entry::Occupied(mut e), None) => {
            e.get_mut().remove(name);
            if e.get().is_empty() {
                e.remove();
            }
        }
        (Entry::Vacant(_), None) => {}
        (e, Some(v)) => {
            e.or_default().insert(name.to_string(), v.clone());
        }
    }
}

impl MetadataImage {
    /// The dynamic value of a broker config for `broker`: its own, else the cluster-wide
    /// default.
    pub fn dynamic_broker_config(&self, broker: i32, name: &str) -> Option<&String> {
        self.broker_configs
            .get(&broker.to_string())
            .and_then(|c| c.get(name))
            .or_else(|| self.broker_configs.get("").and_then(|c| c.get(name)))
    }

    /// The SCRAM credential of `user` for `mechanism`.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<&ScramCredential> {
        self.scram_credentials.get(user)?.get(&mechanism)
    }

    /// The broker registration with this epoch (records about an older one are stale).
    fn broker_at(&mut self, id: i32, epoch: i64) -> Option<&mut BrokerImage> {
        self.brokers.get_mut(&id).filter(|b| b.epoch == epoch)
    }

    /// Brokers that are registered and unfenced.
    pub fn active_brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values().filter(|b| b.is_active())
    }

    /// The topic with this id.
    pub fn topic_by_id(&self, id: &uuid::Uuid) -> Option<&TopicImage> {
        self.topic_names.get(id).and_then(|n| self.topics.get(n))
    }

    /// Rebuilds the id index from the topics (an image read from elsewhere).
    pub fn reindex(&mut self) {
        self.topic_names = self
            .topics
            .values()
            .map(|t| (t.topic_id, t.name.clone()))
            .collect();
    }

    /// Applies one record (replay). Records about unknown topics are ignored.
    pub fn apply(&mut self, offset: i64, record: &MetadataRecord) {
        self.offset = offset;
        match record {
            MetadataRecord::Cluster { cluster_id } => self.cluster_id = cluster_id.clone(),
            MetadataRecord::Topic { name, topic_id } => {
                if let Some(old) = self.topics.get(name) {
                    self.topic_names.remove(&old.topic_id);
                }
                self.topic_names.insert(*topic_id, name.clone());
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        topic_id: *topic_id,
                        partitions: BTreeMap::new(),
                        configs: Configs::new(),
                    },
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
                adding_replicas,
                removing_replicas,
            } => {
                let name = self.topic_names.get(topic_id);
                if let Some(t) = name.and_then(|n| self.topics.get_mut(n)) {
                    t.partitions.insert(
                        *partition,
                        PartitionImage {
                            replicas: replicas.clone(),
                            isr: isr.clone(),
                            leader: *leader,
                            leader_epoch: *leader_epoch,
                            partition_epoch: *partition_epoch,
                            adding_replicas: adding_replicas.clone(),
                            removing_replicas: removing_replicas.clone(),
                        },
                    );
                }
            }
            MetadataRecord::TopicConfig { topic, name, value } => {
                if let Some(t) = self.topics.get_mut(topic) {
                    match value {
                        Some(v) => t.configs.insert(name.clone(), v.clone()),
                        None => t.configs.remove(name),
                    };
                }
            }
            MetadataRecord::BrokerConfig {
                broker,
                name,
                value,
            } => set_config(self.broker_configs.entry(broker.clone()), name, value),
            MetadataRecord::GroupConfig { group, name, value } => {
                set_config(self.group_configs.entry(group.clone()), name, value)
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
            MetadataRecord::RegisterBroker {
                broker_id,
                incarnation_id,
                epoch,
                listeners,
                rack,
            } => {
                self.brokers.insert(
                    *broker_id,
                    BrokerImage {
                        id: *broker_id,
                        incarnation_id: *incarnation_id,
                        epoch: *epoch,
                        listeners: listeners.clone(),
                        rack: rack.clone(),
                        fenced: true,
                        registered_offset: offset,
                    },
                );
            }
            MetadataRecord::UnfenceBroker { broker_id, epoch } => {
                if let Some(b) = self.broker_at(*broker_id, *epoch) {
                    b.fenced = false;
                }
            }
            MetadataRecord::FenceBroker { broker_id, epoch } => {
                if let Some(b) = self.broker_at(*broker_id, *epoch) {
                    b.fenced = true;
                }
            }
            MetadataRecord::UserScramCredential {
                name,
                mechanism,
                credential,
            } => {
                self.scram_credentials
                    .entry(name.clone())
                    .or_default()
                    .insert(*mechanism, credential.clone());
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                if let Some(user) = self.scram_credentials.get_mut(name) {
                    user.remove(mechanism);
                    if user.is_empty() {
                        self.scram_credentials.remove(name);
                    }
                }
            }
            MetadataRecord::ClientQuota { entity, key, value } => match value {
                Some(v) => {
                    self.client_quotas
                        .entry(entity.clone())
                        .or_default()
                        .insert(key.clone(), *v);
                }
                None => {
                    if let Some(quotas) = self.client_quotas.get_mut(entity) {
                        quotas.remove(key);
                        if quotas.is_empty() {
                            self.client_quotas.remove(entity);
                        }
                    }
                }
            },
            MetadataRecord::AccessControlEntry { id, acl } => {
                self.acls.insert(*id, acl.clone());
                self.acls_offset = offset + 1;
            }
            MetadataRecord::RemoveAccessControlEntry { id } => {
                self.acls.remove(id);
                self.acls_offset = offset + 1;
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(name) = self.topic_names.remove(topic_id) {
                    self.topics.remove(&name);
                }
            }
        }
    }
}
