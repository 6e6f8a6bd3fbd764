//! FetchResponse framing around file regions, for zero-copy fetches.
//!
//! `kafka-protocol`'s encoder copies every partition's records into one buffer; Strom encodes
//! the FetchResponse itself (versions 4-16, the ones it serves) as a list of [`Chunk`]s: small
//! encoded byte runs between the records of each partition, which stay [`FileRegion`]s until
//! the connection `sendfile`s them to the socket. A test checks the bytes against
//! `kafka-protocol`'s own encoding for every version.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::FetchResponse;
use strom_storage::FileRegion;

/// A piece of a response: encoded bytes, or records still in a segment file.
#[derive(Debug, Clone)]
pub enum Chunk {
    /// Encoded protocol bytes.
    Bytes(Bytes),
    /// Record batches to send straight from the file.
    File(FileRegion),
}

impl Chunk {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.len(),
            Chunk::File(r) => r.len() as usize,
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Writer {
    chunks: Vec<Chunk>,
    buf: BytesMut,
    flexible: bool,
}

impl Writer {
    fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    fn len(&mut self, n: usize) {
        if self.flexible {
            self.uvarint(n as u32 + 1);
        } else {
            self.buf.put_i32(n as i32);
        }
    }

    fn string(&mut self, s: &str) {
        if self.flexible {
            self.uvarint(s.len() as u32 + 1);
        } else {
            self.buf.put_i16(s.len() as i16);
        }
        self.buf.put_slice(s.as_bytes());
    }

    fn tags(&mut self) {
        if self.flexible {
            self.uvarint(0);
        }
    }

    fn region(&mut self, region: FileRegion) {
        let done = self.buf.split().freeze();
        if !done.is_empty() {
            self.chunks.push(Chunk::Bytes(done));
        }
        self.chunks.push(Chunk::File(region));
    }
}

/// Encodes header and body of a FetchResponse at `version` (4..=16), taking each
/// partition's records from `regions` (in response order) when present, else from the
/// partition's in-memory `records`. Of the tagged fields, a partition's `DivergingEpoch`
/// and `CurrentLeader` are emitted when set (as `kafka-protocol` does: only non-default
/// values); the others are never set by Strom.
pub fn encode(
    correlation_id: i32,
    version: i16,
    response: &FetchResponse,
    mut regions: Vec<Option<FileRegion>>,
) -> Vec<Chunk> {
    let flexible = version >= 12;
    let mut w = Writer {
        chunks: Vec::new(),
        buf: BytesMut::with_capacity(256),
        flexible,
    };
    w.buf.put_i32(correlation_id);
    w.tags(); // response header v1 for flexible versions
    w.buf.put_i32(response.throttle_time_ms);
    if version >= 7 {
        w.buf.put_i16(response.error_code);
        w.buf.put_i32(response.session_id);
    }
    w.len(response.responses.len());
    let mut index = 0;
    regions.reverse();
    for topic in &response.responses {
        if version >= 13 {
            w.buf.put_slice(topic.topic_id.as_bytes());
        } else {
            w.string(&topic.topic.0);
        }
        w.len(topic.partitions.len());
        for p in &topic.partitions {
            w.buf.put_i32(p.partition_index);
            w.buf.put_i16(p.error_code);
            w.buf.put_i64(p.high_watermark);
            w.buf.put_i64(p.last_stable_offset);
            if version >= 5 {
                w.buf.put_i64(p.log_start_offset);
            }
            match &p.aborted_transactions {
                None => {
                    if flexible {
                        w.uvarint(0);
                    } else {
                        w.buf.put_i32(-1);
                    }
                }
                Some(list) => {
                    w.len(list.len());
                    for a in list {
                        w.buf.put_i64(a.producer_id.0);
                        w.buf.put_i64(a.first_offset);
                        w.tags();
                    }
                }
            }
            if version >= 11 {
                w.buf.put_i32(p.preferred_read_replica.0);
            }
            let region = regions.pop().flatten();
            index += 1;
            match (region, &p.records) {
                (Some(r), _) => {
                    w.len(r.len() as usize);
                    w.region(r);
                }
                (None, Some(bytes)) => {
                    w.len(bytes.len());
                    w.buf.put_slice(bytes);
                }
                (None, None) => {
                    if flexible {
                        w.uvarint(0);
                    } else {
                        w.buf.put_i32(-1);
                    }
                }
            }
            if flexible {
                partition_tags(&mut w, p);
            }
        }
        w.tags();
    }
    w.tags();
    let _ = index;
    let rest = w.buf.split().freeze();
    if !rest.is_empty() {
        w.chunks.push(Chunk::Bytes(rest));
    }
    w.chunks
}

/// A partition's tagged fields (flexible versions): 0 = DivergingEpoch, 1 = CurrentLeader,
/// each written only when it differs from its default.
fn partition_tags(w: &mut Writer, p: &kafka_protocol::messages::fetch_response::PartitionData) {
    let diverging = p.diverging_epoch.epoch != -1 || p.diverging_epoch.end_offset != -1;
    let leader = p.current_leader.leader_id.0 != -1 || p.current_leader.leader_epoch != -1;
    w.uvarint(u32::from(diverging) + u32::from(leader));
    if diverging {
        w.uvarint(0);
        w.uvarint(4 + 8 + 1);
        w.buf.put_i32(p.diverging_epoch.epoch);
        w.buf.put_i64(p.diverging_epoch.end_offset);
        w.uvarint(0);
    }
    if leader {
        w.uvarint(1);
        w.uvarint(4 + 4 + 1);
        w.buf.put_i32(p.current_leader.leader_id.0);
        w.buf.put_i32(p.current_leader.leader_epoch);
        w.uvarint(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
    };
    use kafka_protocol::messages::{ApiKey, BrokerId, ProducerId, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn sample() -> FetchResponse {
        let part = |i: i32, records: Option<&'static [u8]>| {
            PartitionData::default()
                .with_partition_index(i)
                .with_error_code(if i == 2 { 1 } else { 0 })
                .with_high_watermark(100 + i64::from(i))
                .with_last_stable_offset(99)
                .with_log_start_offset(5)
                .with_aborted_transactions(if i == 1 {
                    Some(vec![AbortedTransaction::default()
                        .with_producer_id(ProducerId(7))
                        .with_first_offset(3)])
                } else if i == 2 {
                    None
                } else {
                    Some(vec![])
                })
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(records.map(Bytes::from_static))
                .with_diverging_epoch(if i == 1 {
                    EpochEndOffset::default()
                        .with_epoch(4)
                        .with_end_offset(1234)
                } else {
                    EpochEndOffset::default()
                })
                .with_current_leader(if i >= 2 {
                    LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(3))
                        .with_leader_epoch(7)
                } else {
                    LeaderIdAndEpoch::default()
                })
        };
        FetchResponse::default()
            .with_throttle_time_ms(3)
            .with_session_id(0)
            .with_responses(vec![
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("orders")))
                    .with_topic_id(uuid::Uuid::from_u128(0x1234_5678))
                    .with_partitions(vec![
                        part(0, Some(b"abcdef")),
                        part(1, Some(b"")),
                        part(2, None),
                    ]),
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t2")))
                    .with_topic_id(uuid::Uuid::from_u128(99))
                    .with_partitions(vec![part(3, Some(b"xyz"))]),
            ])
    }

    #[test]
    fn matches_kafka_protocol_encoding_for_every_served_version() {
        for version in 4..=16 {
            let response = sample();
            let mut expected = BytesMut::new();
            ResponseHeader::default()
                .with_correlation_id(42)
                .encode(
                    &mut expected,
                    ApiKey::Fetch.response_header_version(version),
                )
                .unwrap();
            response.encode(&mut expected, version).unwrap();
            let chunks = encode(42, version, &response, vec![None, None, None, None]);
            let got: Vec<u8> = chunks
                .iter()
                .flat_map(|c| match c {
                    Chunk::Bytes(b) => b.to_vec(),
                    Chunk::File(_) => unreachable!(),
                })
                .collect();
            assert_eq!(got, expected.to_vec(), "FetchResponse v{version}");
        }
    }
}
