//! The records of `__consumer_offsets`, in Kafka's own key and value schemas, so that tools
//! reading the topic (kafka-console-consumer's offsets formatter, kcat with a decoder)
//! understand them:
//!
//! - key version 0/1: an offset commit, `(group, topic, partition)`; value: OffsetCommitValue
//!   (written at version 3: offset, leader epoch, metadata, commit timestamp).
//! - key version 2: a group's metadata, `(group)`; value: GroupMetadataValue (written at
//!   version 3: protocol type, generation, protocol, leader, state timestamp, members).
//! - a null value is a tombstone: the offset or the group is gone.
//!
//! kafka-protocol does not generate these (they are coordinator records, not API messages),
//! so they are encoded here; the layouts are fixed, non-flexible Kafka schemas.

use bytes::{Buf, BufMut, Bytes};

/// A record that does not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes than a field needs.
    #[error("record truncated")]
    Truncated,
    /// A key or value version this coordinator does not know.
    #[error("unknown {what} version {version}")]
    UnknownVersion {
        /// Key or value.
        what: &'static str,
        /// The version found.
        version: i16,
    },
    /// A string that is not UTF-8 or has a negative length where one is required.
    #[error("invalid string")]
    InvalidString,
}

type Result<T> = std::result::Result<T, RecordError>;

/// Which record a key names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordKey {
    /// A committed offset.
    Offset {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// A group's membership and generation.
    Group {
        /// Group id.
        group: String,
    },
    /// A KIP-848 group's epoch (key version 3, ConsumerGroupMetadata).
    ConsumerGroup {
        /// Group id.
        group: String,
    },
    /// A KIP-848 member's metadata (key version 5, ConsumerGroupMemberMetadata).
    ConsumerMember {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
    },
    /// A KIP-848 group's target assignment epoch (key version 6).
    TargetMetadata {
        /// Group id.
        group: String,
    },
    /// A KIP-848 member's target assignment (key version 7).
    TargetMember {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
    },
    /// A KIP-848 member's current assignment and epochs (key version 8).
    CurrentAssignment {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
    },
}

impl RecordKey {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. }
            | RecordKey::Group { group }
            | RecordKey::ConsumerGroup { group }
            | RecordKey::ConsumerMember { group, .. }
            | RecordKey::TargetMetadata { group }
            | RecordKey::TargetMember { group, .. }
            | RecordKey::CurrentAssignment { group, .. } => group,
        }
    }

    /// Kafka's encoding (offset keys at version 1, group keys at version 2).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        match self {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                b.put_i16(1);
                put_str(&mut b, group);
                put_str(&mut b, topic);
                b.put_i32(*partition);
            }
            RecordKey::Group { group } => {
                b.put_i16(2);
                put_str(&mut b, group);
            }
            RecordKey::ConsumerGroup { group } | RecordKey::TargetMetadata { group } => {
                b.put_i16(if matches!(self, RecordKey::ConsumerGroup { .. }) {
                    3
                } else {
                    6
                });
                put_str(&mut b, group);
            }
            RecordKey::ConsumerMember { group, member }
            | RecordKey::TargetMember { group, member }
            | RecordKey::CurrentAssignment { group, member } => {
                b.put_i16(match self {
                    RecordKey::ConsumerMember { .. } => 5,
                    RecordKey::TargetMember { .. } => 7,
                    _ => 8,
                });
                put_str(&mut b, group);
                put_str(&mut b, member);
            }
        }
        b
    }

    /// Parses a key of any version Kafka writes; `Ok(None)` for the record types of other
    /// coordinators (KIP-848 and share groups use versions 3 and up).
    pub fn decode(mut buf: &[u8]) -> Result<Option<RecordKey>> {
        let version = get_i16(&mut buf)?;
        Ok(Some(match version {
            0 | 1 => RecordKey::Offset {
                group: get_str(&mut buf)?,
                topic: get_str(&mut buf)?,
                partition: get_i32(&mut buf)?,
            },
            2 => RecordKey::Group {
                group: get_str(&mut buf)?,
            },
            3 => RecordKey::ConsumerGroup {
                group: get_str(&mut buf)?,
            },
            6 => RecordKey::TargetMetadata {
                group: get_str(&mut buf)?,
            },
            5 | 7 | 8 => {
                let group = get_str(&mut buf)?;
                let member = get_str(&mut buf)?;
                match version {
                    5 => RecordKey::ConsumerMember { group, member },
                    7 => RecordKey::TargetMember { group, member },
                    _ => RecordKey::CurrentAssignment { group, member },
                }
            }
            v if v > 2 => return Ok(None),
            v => {
                return Err(RecordError::UnknownVersion {
                    what: "key",
                    version: v,
                })
            }
        }))
    }
}

/// A committed offset (OffsetCommitValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The next offset to consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: String,
    /// When it was committed (ms).
    pub commit_timestamp: i64,
    /// Explicit expiry (version 1 only), or -1.
    pub expire_timestamp: i64,
}

impl OffsetValue {
    /// Version 3 of OffsetCommitValue.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(32 + self.metadata.len());
        b.put_i16(3);
        b.put_i64(self.offset);
        b.put_i32(self.leader_epoch);
        put_str(&mut b, &self.metadata);
        b.put_i64(self.commit_timestamp);
        b
    }

    /// Versions 0 to 3 (version 4 adds only tagged fields after the same layout).
    pub fn decode(mut buf: &[u8]) -> Result<OffsetValue> {
        let version = get_i16(&mut buf)?;
        let offset = get_i64(&mut buf)?;
        let leader_epoch = if version >= 3 { get_i32(&mut buf)? } else { -1 };
        let metadata = if version >= 4 {
            get_compact_str(&mut buf)?
        } else {
            get_str(&mut buf)?
        };
        let commit_timestamp = get_i64(&mut buf)?;
        let expire_timestamp = if version == 1 { get_i64(&mut buf)? } else { -1 };
        if !(0..=4).contains(&version) {
            return Err(RecordError::UnknownVersion {
                what: "offset value",
                version,
            });
        }
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
            expire_timestamp,
        })
    }
}

/// One member as stored in GroupMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    /// Member id.
    pub member_id: String,
    /// Static membership id (KIP-345).
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout (ms).
    pub rebalance_timeout_ms: i32,
    /// Session timeout (ms).
    pub session_timeout_ms: i32,
    /// Subscription (the chosen protocol's metadata).
    pub subscription: Bytes,
    /// Assignment.
    pub assignment: Bytes,
}

/// A group's state (GroupMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    /// Protocol type (`consumer` for consumers).
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// Chosen protocol (assignor), if any.
    pub protocol: Option<String>,
    /// Leader member id, if any.
    pub leader: Option<String>,
    /// When the state last changed (ms), or -1.
    pub current_state_timestamp: i64,
    /// Members.
    pub members: Vec<MemberValue>,
}

impl GroupValue {
    /// Version 3 of GroupMetadataValue.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(128);
        b.put_i16(3);
        put_str(&mut b, &self.protocol_type);
        b.put_i32(self.generation);
        put_opt_str(&mut b, self.protocol.as_deref());
        put_opt_str(&mut b, self.leader.as_deref());
        b.put_i64(self.current_state_timestamp);
        b.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_str(&mut b, &m.member_id);
            put_opt_str(&mut b, m.group_instance_id.as_deref());
            put_str(&mut b, &m.client_id);
            put_str(&mut b, &m.client_host);
            b.put_i32(m.rebalance_timeout_ms);
            b.put_i32(m.session_timeout_ms);
            b.put_i32(m.subscription.len() as i32);
            b.put_slice(&m.subscription);
            b.put_i32(m.assignment.len() as i32);
            b.put_slice(&m.assignment);
        }
        b
    }

    /// Versions 0 to 3 (4, flexible, is not written by any Kafka release that reads
    /// Strom's topic).
    pub fn decode(mut buf: &[u8]) -> Result<GroupValue> {
        let version = get_i16(&mut buf)?;
        if !(0..=3).contains(&version) {
            return Err(RecordError::UnknownVersion {
                what: "group value",
                version,
            });
        }
        let protocol_type = get_str(&mut buf)?;
        let generation = get_i32(&mut buf)?;
        let protocol = get_opt_str(&mut buf)?;
        let leader = get_opt_str(&mut buf)?;
        let current_state_timestamp = if version >= 2 { get_i64(&mut buf)? } else { -1 };
        let count = get_i32(&mut buf)?;
        // Each member needs at least 26 bytes: a count beyond that is damage.
        if count < 0 || count as usize > buf.len() / 26 + 1 {
            return Err(RecordError::Truncated);
        }
        let mut members = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let member_id = get_str(&mut buf)?;
            let group_instance_id = if version >= 3 {
                get_opt_str(&mut buf)?
            } else {
                None
            };
            let client_id = get_str(&mut buf)?;
            let client_host = get_str(&mut buf)?;
            let rebalance_timeout_ms = if version >= 1 { get_i32(&mut buf)? } else { -1 };
            let session_timeout_ms = get_i32(&mut buf)?;
            let subscription = get_bytes(&mut buf)?;
            let assignment = get_bytes(&mut buf)?;
            members.push(MemberValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                    session_timeout_ms
                } else {
                    rebalance_timeout_ms
                },
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        })
    }
}

/// Partitions by topic id, as the KIP-848 records store them.
pub type TopicPartitions = std::collections::BTreeMap<uuid::Uuid, std::collections::BTreeSet<i32>>;

/// A KIP-848 member's metadata (ConsumerGroupMemberMetadataValue, version 0, flexible).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerMemberValue {
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topics.
    pub subscribed_topic_names: Vec<String>,
    /// Subscribed regular expression.
    pub subscribed_topic_regex: Option<String>,
    /// Rebalance timeout (ms).
    pub rebalance_timeout_ms: i32,
    /// Preferred server assignor.
    pub server_assignor: Option<String>,
}

impl ConsumerMemberValue {
    /// Encodes version 0.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.put_i16(0);
        put_compact_opt_str(&mut b, self.instance_id.as_deref());
        put_compact_opt_str(&mut b, self.rack_id.as_deref());
        put_compact_opt_str(&mut b, Some(&self.client_id));
        put_compact_opt_str(&mut b, Some(&self.client_host));
        put_uvarint(&mut b, self.subscribed_topic_names.len() as u64 + 1);
        for t in &self.subscribed_topic_names {
            put_compact_opt_str(&mut b, Some(t));
        }
        put_compact_opt_str(&mut b, self.subscribed_topic_regex.as_deref());
        b.put_i32(self.rebalance_timeout_ms);
        put_compact_opt_str(&mut b, self.server_assignor.as_deref());
        b.put_u8(0); // no tagged fields
        b
    }

    /// Decodes version 0 (tagged fields, such as a classic member's protocols, skipped).
    pub fn decode(mut buf: &[u8]) -> Result<Self> {
        flexible_version(&mut buf, "consumer member value")?;
        let instance_id = get_compact_opt_str(&mut buf)?;
        let rack_id = get_compact_opt_str(&mut buf)?;
        let client_id = get_compact_opt_str(&mut buf)?.unwrap_or_default();
        let client_host = get_compact_opt_str(&mut buf)?.unwrap_or_default();
        let n = get_count(&mut buf)?;
        let mut subscribed_topic_names = Vec::with_capacity(n);
        for _ in 0..n {
            subscribed_topic_names.push(get_compact_opt_str(&mut buf)?.unwrap_or_default());
        }
        let subscribed_topic_regex = get_compact_opt_str(&mut buf)?;
        let rebalance_timeout_ms = get_i32(&mut buf)?;
        let server_assignor = get_compact_opt_str(&mut buf)?;
        skip_tags(&mut buf)?;
        Ok(ConsumerMemberValue {
            instance_id,
            rack_id,
            client_id,
            client_host,
            subscribed_topic_names,
            subscribed_topic_regex,
            rebalance_timeout_ms,
            server_assignor,
        })
    }
}

/// A KIP-848 member's current assignment (ConsumerGroupCurrentMemberAssignmentValue).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAssignmentValue {
    /// Member epoch.
    pub member_epoch: i32,
    /// Previous member epoch.
    pub previous_member_epoch: i32,
    /// Kafka's MemberState: 0 stable, 1 unrevoked partitions, 2 unreleased partitions.
    pub state: i8,
    /// Partitions the member holds.
    pub assigned: TopicPartitions,
    /// Partitions it must still revoke.
    pub pending_revocation: TopicPartitions,
}

impl CurrentAssignmentValue {
    /// Encodes version 0.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.put_i16(0);
        b.put_i32(self.member_epoch);
        b.put_i32(self.previous_member_epoch);
        b.put_i8(self.state);
        put_topic_partitions(&mut b, &self.assigned);
        put_topic_partitions(&mut b, &self.pending_revocation);
        b.put_u8(0);
        b
    }

    /// Decodes version 0.
    pub fn decode(mut buf: &[u8]) -> Result<Self> {
        flexible_version(&mut buf, "current assignment value")?;
        let member_epoch = get_i32(&mut buf)?;
        let previous_member_epoch = get_i32(&mut buf)?;
        need(buf, 1)?;
        let state = buf.get_i8();
        let assigned = get_topic_partitions(&mut buf)?;
        let pending_revocation = get_topic_partitions(&mut buf)?;
        skip_tags(&mut buf)?;
        Ok(CurrentAssignmentValue {
            member_epoch,
            previous_member_epoch,
            state,
            assigned,
            pending_revocation,
        })
    }
}

/// An epoch value (ConsumerGroupMetadataValue and ConsumerGroupTargetAssignmentMetadataValue
/// both start with one int32).
pub fn encode_epoch(epoch: i32) -> Vec<u8> {
    let mut b = Vec::with_capacity(7);
    b.put_i16(0);
    b.put_i32(epoch);
    b.put_u8(0);
    b
}

/// Reads [`encode_epoch`]'s layout.
pub fn decode_epoch(mut buf: &[u8]) -> Result<i32> {
    flexible_version(&mut buf, "epoch value")?;
    let epoch = get_i32(&mut buf)?;
    skip_tags(&mut buf)?;
    Ok(epoch)
}

/// ConsumerGroupTargetAssignmentMemberValue, version 0.
pub fn encode_target(partitions: &TopicPartitions) -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    b.put_i16(0);
    put_topic_partitions(&mut b, partitions);
    b.put_u8(0);
    b
}

/// Reads [`encode_target`]'s layout.
pub fn decode_target(mut buf: &[u8]) -> Result<TopicPartitions> {
    flexible_version(&mut buf, "target assignment value")?;
    let out = get_topic_partitions(&mut buf)?;
    skip_tags(&mut buf)?;
    Ok(out)
}

fn flexible_version(buf: &mut &[u8], what: &'static str) -> Result<()> {
    let version = get_i16(buf)?;
    if version != 0 {
        return Err(RecordError::UnknownVersion { what, version });
    }
    Ok(())
}

pub(crate) fn put_uvarint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

pub(crate) fn get_uvarint(buf: &mut &[u8]) -> Result<u64> {
    let mut v: u64 = 0;
    for shift in (0..35).step_by(7) {
        need(buf, 1)?;
        let byte = buf.get_u8();
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(RecordError::Truncated)
}

/// A compact array's length; bounded by the bytes left (each element needs one at least).
pub(crate) fn get_count(buf: &mut &[u8]) -> Result<usize> {
    let n = get_uvarint(buf)?;
    if n == 0 {
        return Ok(0);
    }
    let n = (n - 1) as usize;
    if n > buf.len() {
        return Err(RecordError::Truncated);
    }
    Ok(n)
}

pub(crate) fn put_compact_opt_str(b: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_uvarint(b, 0),
        Some(s) => {
            put_uvarint(b, s.len() as u64 + 1);
            b.put_slice(s.as_bytes());
        }
    }
}

pub(crate) fn get_compact_opt_str(buf: &mut &[u8]) -> Result<Option<String>> {
    let n = get_uvarint(buf)?;
    if n == 0 {
        return Ok(None);
    }
    take_utf8(buf, (n - 1) as usize).map(Some)
}

pub(crate) fn skip_tags(buf: &mut &[u8]) -> Result<()> {
    let n = get_uvarint(buf)?;
    for _ in 0..n {
        let _tag = get_uvarint(buf)?;
        let size = get_uvarint(buf)? as usize;
        need(buf, size)?;
        buf.advance(size);
    }
    Ok(())
}

fn put_topic_partitions(b: &mut Vec<u8>, tps: &TopicPartitions) {
    put_uvarint(b, tps.len() as u64 + 1);
    for (topic, parts) in tps {
        b.put_slice(topic.as_bytes());
        put_uvarint(b, parts.len() as u64 + 1);
        for p in parts {
            b.put_i32(*p);
        }
        b.put_u8(0);
    }
}

fn get_topic_partitions(buf: &mut &[u8]) -> Result<TopicPartitions> {
    let n = get_count(buf)?;
    let mut out = TopicPartitions::new();
    for _ in 0..n {
        need(buf, 16)?;
        let mut id = [0u8; 16];
        id.copy_from_slice(&buf[..16]);
        buf.advance(16);
        let count = get_count(buf)?;
        let set = out.entry(uuid::Uuid::from_bytes(id)).or_default();
        for _ in 0..count {
            set.insert(get_i32(buf)?);
        }
        skip_tags(buf)?;
    }
    Ok(out)
}

pub(crate) fn put_str(b: &mut Vec<u8>, s: &str) {
    b.put_i16(s.len().min(i16::MAX as usize) as i16);
    b.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_opt_str(b: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

pub(crate) fn need(buf: &[u8], n: usize) -> Result<()> {
    if buf.len() < n {
        Err(RecordError::Truncated)
    } else {
        Ok(())
    }
}

pub(crate) fn get_i16(buf: &mut &[u8]) -> Result<i16> {
    need(buf, 2)?;
    Ok(buf.get_i16())
}

pub(crate) fn get_i32(buf: &mut &[u8]) -> Result<i32> {
    need(buf, 4)?;
    Ok(buf.get_i32())
}

pub(crate) fn get_i64(buf: &mut &[u8]) -> Result<i64> {
    need(buf, 8)?;
    Ok(buf.get_i64())
}

pub(crate) fn take_utf8(buf: &mut &[u8], len: usize) -> Result<String> {
    need(buf, len)?;
    let s = std::str::from_utf8(&buf[..len])
        .map_err(|_| RecordError::InvalidString)?
        .to_string();
    buf.advance(len);
    Ok(s)
}

fn get_opt_str(buf: &mut &[u8]) -> Result<Option<String>> {
    let len = get_i16(buf)?;
    if len < 0 {
        return Ok(None);
    }
    take_utf8(buf, len as usize).map(Some)
}

pub(crate) fn get_str(buf: &mut &[u8]) -> Result<String> {
    get_opt_str(buf)?.ok_or(RecordError::InvalidString)
}

/// A compact (unsigned varint length + 1) string, as the flexible version 4 writes.
pub(crate) fn get_compact_str(buf: &mut &[u8]) -> Result<String> {
    let mut len: u64 = 0;
    for shift in (0..35).step_by(7) {
        need(buf, 1)?;
        let byte = buf.get_u8();
        len |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    if len == 0 {
        return Err(RecordError::InvalidString);
    }
    take_utf8(buf, (len - 1) as usize)
}

fn get_bytes(buf: &mut &[u8]) -> Result<Bytes> {
    let len = get_i32(buf)?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    let len = len as usize;
    need(buf, len)?;
    let out = Bytes::copy_from_slice(&buf[..len]);
    buf.advance(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_match_kafkas_bytes() {
        let k = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        // version 1, "g", "t", partition 3: Kafka's OffsetCommitKey layout.
        assert_eq!(k.encode(), [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        assert_eq!(RecordKey::decode(&k.encode()), Ok(Some(k)));
        let g = RecordKey::Group {
            group: "grp".into(),
        };
        assert_eq!(g.encode(), [0, 2, 0, 3, b'g', b'r', b'p']);
        assert_eq!(RecordKey::decode(&g.encode()), Ok(Some(g)));
        assert_eq!(
            RecordKey::decode(&[0, 4, 0, 0]),
            Ok(None),
            "partition metadata: not kept"
        );
        assert_eq!(RecordKey::decode(&[0]), Err(RecordError::Truncated));
    }

    #[test]
    fn kip848_records_round_trip() {
        for k in [
            RecordKey::ConsumerGroup { group: "g".into() },
            RecordKey::TargetMetadata { group: "g".into() },
            RecordKey::ConsumerMember {
                group: "g".into(),
                member: "m".into(),
            },
            RecordKey::TargetMember {
                group: "g".into(),
                member: "m".into(),
            },
            RecordKey::CurrentAssignment {
                group: "g".into(),
                member: "m".into(),
            },
        ] {
            assert_eq!(RecordKey::decode(&k.encode()), Ok(Some(k)));
        }
        // Key version 5 is the member metadata: version, then the two strings.
        assert_eq!(
            RecordKey::ConsumerMember {
                group: "g".into(),
                member: "m".into()
            }
            .encode(),
            [0, 5, 0, 1, b'g', 0, 1, b'm']
        );
        let m = ConsumerMemberValue {
            instance_id: None,
            rack_id: Some("r1".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: vec!["a".into(), "b".into()],
            subscribed_topic_regex: None,
            rebalance_timeout_ms: 300_000,
            server_assignor: Some("uniform".into()),
        };
        assert_eq!(ConsumerMemberValue::decode(&m.encode()), Ok(m.clone()));
        let mut tps = TopicPartitions::new();
        tps.entry(uuid::Uuid::from_u128(7))
            .or_default()
            .extend([0, 3]);
        let c = CurrentAssignmentValue {
            member_epoch: 4,
            previous_member_epoch: 3,
            state: 1,
            assigned: tps.clone(),
            pending_revocation: TopicPartitions::new(),
        };
        assert_eq!(CurrentAssignmentValue::decode(&c.encode()), Ok(c.clone()));
        assert_eq!(decode_target(&encode_target(&tps)), Ok(tps));
        assert_eq!(decode_epoch(&encode_epoch(9)), Ok(9));
        // Damage is an error, never a panic or a huge allocation.
        let bytes = c.encode();
        for cut in 0..bytes.len() {
            assert!(CurrentAssignmentValue::decode(&bytes[..cut]).is_err());
        }
        let bytes = m.encode();
        for cut in 0..bytes.len() {
            assert!(ConsumerMemberValue::decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn values_round_trip_and_reject_damage() {
        let o = OffsetValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_timestamp: 1000,
            expire_timestamp: -1,
        };
        assert_eq!(OffsetValue::decode(&o.encode()), Ok(o.clone()));
        let bytes = o.encode();
        for cut in 0..bytes.len() {
            assert!(OffsetValue::decode(&bytes[..cut]).is_err());
        }
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 99,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(GroupValue::decode(&g.encode()), Ok(g.clone()));
        let bytes = g.encode();
        for cut in 0..bytes.len() {
            assert!(GroupValue::decode(&bytes[..cut]).is_err());
        }
        let mut huge = bytes.clone();
        // The member count claims billions.
        let at = 2 + 10 + 4 + 7 + 4 + 8;
        huge[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(GroupValue::decode(&huge).is_err());
    }
}
