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
}

impl RecordKey {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. } | RecordKey::Group { group } => group,
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

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.put_i16(s.len().min(i16::MAX as usize) as i16);
    b.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_opt_str(b: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn need(buf: &[u8], n: usize) -> Result<()> {
    if buf.len() < n {
        Err(RecordError::Truncated)
    } else {
        Ok(())
    }
}

fn get_i16(buf: &mut &[u8]) -> Result<i16> {
    need(buf, 2)?;
    Ok(buf.get_i16())
}

fn get_i32(buf: &mut &[u8]) -> Result<i32> {
    need(buf, 4)?;
    Ok(buf.get_i32())
}

fn get_i64(buf: &mut &[u8]) -> Result<i64> {
    need(buf, 8)?;
    Ok(buf.get_i64())
}

fn take_utf8(buf: &mut &[u8], len: usize) -> Result<String> {
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

fn get_str(buf: &mut &[u8]) -> Result<String> {
    get_opt_str(buf)?.ok_or(RecordError::InvalidString)
}

/// A compact (unsigned varint length + 1) string, as the flexible version 4 writes.
fn get_compact_str(buf: &mut &[u8]) -> Result<String> {
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
        assert_eq!(RecordKey::decode(&[0, 3, 0, 0]), Ok(None));
        assert_eq!(RecordKey::decode(&[0]), Err(RecordError::Truncated));
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
