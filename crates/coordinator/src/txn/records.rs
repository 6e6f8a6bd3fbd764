//! The records of `__transaction_state`, in Kafka's schemas, so Kafka's tools can read the
//! topic: the key is TransactionLogKey (version 0: the transactional id) and the value
//! TransactionLogValue, written at version 1 (flexible: compact strings and arrays, with
//! the previous and next producer ids and the client's transaction version as tagged
//! fields); version 0 values are read too. A null value is a tombstone: the id expired.

use bytes::BufMut;

use crate::records::{
    get_compact_str, get_count, get_i16, get_i32, get_i64, get_str, get_uvarint, need,
    put_compact_opt_str, put_str, put_uvarint, skip_tags, RecordError,
};

type Result<T> = std::result::Result<T, RecordError>;

/// A transaction's state, with Kafka's ids (TransactionState).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnStatus {
    /// No transaction yet, or the last one's partitions are forgotten.
    Empty,
    /// Partitions were added: records may be written.
    Ongoing,
    /// EndTxn(commit) was logged; markers are being written.
    PrepareCommit,
    /// EndTxn(abort) (or a timeout, or a fence) was logged; markers are being written.
    PrepareAbort,
    /// Every COMMIT marker is written.
    CompleteCommit,
    /// Every ABORT marker is written.
    CompleteAbort,
    /// The transactional id expired.
    Dead,
    /// A newer producer is fencing this one; an abort follows.
    PrepareEpochFence,
}

impl TxnStatus {
    /// Kafka's byte for the state.
    pub fn id(self) -> i8 {
        match self {
            TxnStatus::Empty => 0,
            TxnStatus::Ongoing => 1,
            TxnStatus::PrepareCommit => 2,
            TxnStatus::PrepareAbort => 3,
            TxnStatus::CompleteCommit => 4,
            TxnStatus::CompleteAbort => 5,
            TxnStatus::Dead => 6,
            TxnStatus::PrepareEpochFence => 7,
        }
    }

    /// The state with Kafka's byte `id`.
    pub fn from_id(id: i8) -> Option<TxnStatus> {
        Some(match id {
            0 => TxnStatus::Empty,
            1 => TxnStatus::Ongoing,
            2 => TxnStatus::PrepareCommit,
            3 => TxnStatus::PrepareAbort,
            4 => TxnStatus::CompleteCommit,
            5 => TxnStatus::CompleteAbort,
            6 => TxnStatus::Dead,
            7 => TxnStatus::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
            TxnStatus::Dead => "Dead",
            TxnStatus::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// The key of a `__transaction_state` record.
pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + transactional_id.len());
    b.put_i16(0);
    put_str(&mut b, transactional_id);
    b
}

/// The transactional id of a key; `None` for a key version this coordinator does not own.
pub fn decode_key(mut buf: &[u8]) -> Result<Option<String>> {
    let version = get_i16(&mut buf)?;
    if version != 0 {
        return Ok(None);
    }
    get_str(&mut buf).map(Some)
}

/// A transactional id's state as logged (TransactionLogValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    /// Producer id.
    pub producer_id: i64,
    /// Producer id of the last committed transaction (KIP-890), -1 if none.
    pub previous_producer_id: i64,
    /// Producer id handed out when the epoch ran out (KIP-890), -1 if none.
    pub next_producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// transaction.timeout.ms of the producer.
    pub timeout_ms: i32,
    /// The state.
    pub status: TxnStatus,
    /// Partitions in the transaction, by topic (sorted).
    pub partitions: Vec<(String, Vec<i32>)>,
    /// Last change.
    pub last_update_ms: i64,
    /// When the transaction began (-1: none).
    pub start_ms: i64,
    /// The client's transaction version (0 or 1: the classic protocol; 2: KIP-890 part 2).
    pub client_version: i16,
}

impl TxnValue {
    /// Version 1 (flexible).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.put_i16(1);
        b.put_i64(self.producer_id);
        b.put_i16(self.producer_epoch);
        b.put_i32(self.timeout_ms);
        b.put_i8(self.status.id());
        put_uvarint(&mut b, self.partitions.len() as u64 + 1);
        for (topic, parts) in &self.partitions {
            put_compact_opt_str(&mut b, Some(topic));
            put_uvarint(&mut b, parts.len() as u64 + 1);
            for p in parts {
                b.put_i32(*p);
            }
            b.put_u8(0);
        }
        b.put_i64(self.last_update_ms);
        b.put_i64(self.start_ms);
        let mut tags: Vec<(u64, Vec<u8>)> = Vec::new();
        if self.previous_producer_id != -1 {
            tags.push((0, self.previous_producer_id.to_be_bytes().to_vec()));
        }
        if self.next_producer_id != -1 {
            tags.push((1, self.next_producer_id.to_be_bytes().to_vec()));
        }
        if self.client_version != 0 {
            tags.push((2, self.client_version.to_be_bytes().to_vec()));
        }
        put_uvarint(&mut b, tags.len() as u64);
        for (tag, data) in tags {
            put_uvarint(&mut b, tag);
            put_uvarint(&mut b, data.len() as u64);
            b.put_slice(&data);
        }
        b
    }

    /// Versions 0 and 1.
    pub fn decode(mut buf: &[u8]) -> Result<TxnValue> {
        let version = get_i16(&mut buf)?;
        if !(0..=1).contains(&version) {
            return Err(RecordError::UnknownVersion {
                what: "transaction log value",
                version,
            });
        }
        let flexible = version >= 1;
        let producer_id = get_i64(&mut buf)?;
        let producer_epoch = get_i16(&mut buf)?;
        let timeout_ms = get_i32(&mut buf)?;
        need(buf, 1)?;
        let status_id = buf[0] as i8;
        buf = &buf[1..];
        let status = TxnStatus::from_id(status_id).ok_or(RecordError::UnknownVersion {
            what: "transaction state",
            version: i16::from(status_id),
        })?;
        let topics = if flexible {
            get_count(&mut buf)?
        } else {
            let n = get_i32(&mut buf)?;
            (n.max(0) as usize).min(buf.len())
        };
        let mut partitions = Vec::with_capacity(topics);
        for _ in 0..topics {
            let topic = if flexible {
                get_compact_str(&mut buf)?
            } else {
                get_str(&mut buf)?
            };
            let count = if flexible {
                get_count(&mut buf)?
            } else {
                let n = get_i32(&mut buf)?;
                (n.max(0) as usize).min(buf.len())
            };
            let mut parts = Vec::with_capacity(count);
            for _ in 0..count {
                parts.push(get_i32(&mut buf)?);
            }
            if flexible {
                skip_tags(&mut buf)?;
            }
            partitions.push((topic, parts));
        }
        let last_update_ms = get_i64(&mut buf)?;
        let start_ms = get_i64(&mut buf)?;
        let mut value = TxnValue {
            producer_id,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch,
            timeout_ms,
            status,
            partitions,
            last_update_ms,
            start_ms,
            client_version: 0,
        };
        if flexible {
            let n = get_uvarint(&mut buf)?;
            for _ in 0..n {
                let tag = get_uvarint(&mut buf)?;
                let size = get_uvarint(&mut buf)? as usize;
                need(buf, size)?;
                let (data, rest) = buf.split_at(size);
                let mut d = data;
                match tag {
                    0 => value.previous_producer_id = get_i64(&mut d)?,
                    1 => value.next_producer_id = get_i64(&mut d)?,
                    2 => value.client_version = get_i16(&mut d)?,
                    _ => {}
                }
                buf = rest;
            }
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value() -> TxnValue {
        TxnValue {
            producer_id: 4000,
            previous_producer_id: -1,
            next_producer_id: 4001,
            producer_epoch: 7,
            timeout_ms: 60_000,
            status: TxnStatus::PrepareCommit,
            partitions: vec![("a".into(), vec![0, 2]), ("b".into(), vec![1])],
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
            client_version: 0,
        }
    }

    #[test]
    fn keys_and_values_round_trip() {
        let key = encode_key("txn-1");
        assert_eq!(key, b"\0\0\0\x05txn-1");
        assert_eq!(decode_key(&key).unwrap().as_deref(), Some("txn-1"));
        assert_eq!(decode_key(b"\0\x01\0\0").unwrap(), None);
        let v = value();
        assert_eq!(TxnValue::decode(&v.encode()).unwrap(), v);
        for s in 0..8 {
            let st = TxnStatus::from_id(s).unwrap();
            assert_eq!(st.id(), s);
        }
    }

    #[test]
    fn version_0_values_read_and_damage_is_refused() {
        // Kafka's version 0: non-flexible strings and arrays.
        let mut b = Vec::new();
        b.put_i16(0);
        b.put_i64(12);
        b.put_i16(3);
        b.put_i32(10_000);
        b.put_i8(1);
        b.put_i32(1);
        put_str(&mut b, "t");
        b.put_i32(2);
        b.put_i32(0);
        b.put_i32(5);
        b.put_i64(99);
        b.put_i64(98);
        let v = TxnValue::decode(&b).unwrap();
        assert_eq!(v.status, TxnStatus::Ongoing);
        assert_eq!(v.partitions, vec![("t".to_string(), vec![0, 5])]);
        assert_eq!((v.producer_id, v.producer_epoch, v.start_ms), (12, 3, 98));
        let good = value().encode();
        for cut in 0..good.len() - 1 {
            assert!(TxnValue::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
    }
}
