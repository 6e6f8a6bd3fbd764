//! The v2 batch layer: header parsing, CRC, in-place rewrites, record iteration and
//! validation, the builder, and robustness against arbitrary bytes.

use proptest::prelude::*;
use strom_types::batch::{self, BatchError, BatchHeader, RecordBatch, TimestampType};
use strom_types::compression::Compression;
use strom_types::record::{validate_producer_batch, BatchBuilder, RecordError};

fn sample(c: Compression) -> Vec<u8> {
    let mut b = BatchBuilder::new(c).producer(7, 1, 100);
    b.append(
        1000,
        Some(b"k1"),
        Some(b"v1"),
        &[(b"h", Some(b"x")), (b"h", None)],
    );
    b.append(1005, None, None, &[]);
    b.append(990, Some(b"k3"), Some(&[0u8; 300]), &[]);
    b.build(42).unwrap()
}

#[test]
fn header_fields_decode_from_kafka_layout() {
    let bytes = sample(Compression::None);
    let h = BatchHeader::parse(&bytes).unwrap();
    assert_eq!(h.base_offset, 42);
    assert_eq!(h.size(), bytes.len());
    assert_eq!(h.magic, 2);
    assert_eq!((h.last_offset_delta, h.records_count), (2, 3));
    assert_eq!((h.base_timestamp, h.max_timestamp), (1000, 1005));
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (7, 1, 100)
    );
    assert_eq!(h.last_offset(), 44);
    assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
    assert!(!h.is_control() && !h.is_transactional() && !h.has_delete_horizon());
    // The CRC is Kafka's: CRC-32C over attributes..end, stored at byte 17.
    let stored = u32::from_be_bytes(bytes[17..21].try_into().unwrap());
    assert_eq!(stored, crc32c::crc32c(&bytes[21..]));
    RecordBatch::parse_prefix(&bytes)
        .unwrap()
        .validate_crc()
        .unwrap();
}

#[test]
fn records_iterate_with_keys_values_and_duplicate_headers() {
    for c in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let bytes = sample(c);
        let b = RecordBatch::parse_prefix(&bytes).unwrap();
        b.validate_crc().unwrap();
        let records = b.records(1 << 20).unwrap();
        let all: Vec<_> = records.iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 3, "{c}");
        assert_eq!(all[0].key, Some(&b"k1"[..]));
        let headers: Vec<_> = all[0].headers().collect();
        assert_eq!(
            headers,
            vec![(&b"h"[..], Some(&b"x"[..])), (&b"h"[..], None)]
        );
        assert_eq!((all[1].key, all[1].value), (None, None));
        assert_eq!(all[2].timestamp_delta, -10);
        assert_eq!(all[2].value.map(<[u8]>::len), Some(300));
        let s = validate_producer_batch(&b, 1 << 20).unwrap();
        assert_eq!((s.count, s.min_timestamp, s.max_timestamp), (3, 990, 1005));
        assert_eq!(s.max_timestamp_offset_delta, 1);
        assert!(s.has_null_key);
    }
}

#[test]
fn in_place_rewrites_keep_the_crc_valid() {
    let mut bytes = sample(Compression::None);
    batch::set_base_offset(&mut bytes, 1 << 40);
    batch::set_partition_leader_epoch(&mut bytes, 9);
    RecordBatch::parse_prefix(&bytes)
        .unwrap()
        .validate_crc()
        .unwrap();
    batch::set_max_timestamp(&mut bytes, TimestampType::LogAppendTime, 77);
    let b = RecordBatch::parse_prefix(&bytes).unwrap();
    b.validate_crc().unwrap();
    let h = b.header();
    assert_eq!(
        (h.base_offset, h.partition_leader_epoch, h.max_timestamp),
        (1 << 40, 9, 77)
    );
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
}

#[test]
fn malformed_batches_name_their_fault() {
    let good = sample(Compression::None);
    let err = |bytes: &[u8]| -> BatchError {
        let b = match RecordBatch::parse_prefix(bytes) {
            Ok(b) => b,
            Err(e) => return e,
        };
        if let Err(e) = b.validate_crc() {
            return e;
        }
        validate_producer_batch(&b, 1 << 20).unwrap_err()
    };
    assert!(matches!(
        err(&good[..60]),
        BatchError::Truncated { needed: 61, .. }
    ));
    assert!(matches!(
        err(&good[..good.len() - 1]),
        BatchError::Truncated { .. }
    ));
    let mut m = good.clone();
    m[16] = 1;
    assert!(matches!(err(&m), BatchError::UnsupportedMagic(1)));
    let mut m = good.clone();
    m[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert!(matches!(err(&m), BatchError::InvalidLength(10)));
    let mut m = good.clone();
    m[70] ^= 1;
    assert!(matches!(err(&m), BatchError::CrcMismatch { .. }));

    // Record-level faults, with the CRC recomputed so only the records are wrong.
    let fix = |mut m: Vec<u8>| {
        let crc = batch::compute_crc(&m);
        m[17..21].copy_from_slice(&crc.to_be_bytes());
        m
    };
    let mut m = good.clone();
    m[57..61].copy_from_slice(&2i32.to_be_bytes());
    assert!(matches!(
        err(&fix(m)),
        BatchError::Record(RecordError::OffsetRangeMismatch { .. })
    ));
    let mut m = good.clone();
    m[57..61].copy_from_slice(&4i32.to_be_bytes());
    m[23..27].copy_from_slice(&3i32.to_be_bytes());
    assert!(matches!(
        err(&fix(m)),
        BatchError::Record(RecordError::CountMismatch {
            declared: 4,
            actual: 3
        })
    ));
    let mut m = good.clone();
    m[61] = 0x7f; // first record claims a huge length
    assert!(matches!(
        err(&fix(m)),
        BatchError::Record(RecordError::Malformed { index: 0, .. })
    ));
    let mut m = good;
    m[57..61].copy_from_slice(&2i32.to_be_bytes());
    m[23..27].copy_from_slice(&1i32.to_be_bytes());
    assert!(matches!(
        err(&fix(m)),
        BatchError::Record(RecordError::TrailingBytes(_))
    ));

    let mut m = sample(Compression::Gzip);
    let n = m.len();
    m[n - 12] ^= 0xff;
    assert!(matches!(
        err(&fix(m)),
        BatchError::Compression(_) | BatchError::Record(_)
    ));
    let mut m = sample(Compression::None);
    m[21..23].copy_from_slice(&7i16.to_be_bytes());
    assert!(matches!(err(&fix(m)), BatchError::Compression(_)));
}

#[test]
fn several_batches_in_one_buffer_iterate_and_stop_at_garbage() {
    let mut buf = sample(Compression::None);
    buf.extend(sample(Compression::Lz4));
    assert_eq!(batch::batches(&buf).filter(|b| b.is_ok()).count(), 2);
    buf.extend_from_slice(&[1, 2, 3]);
    let results: Vec<_> = batch::batches(&buf).collect();
    assert_eq!(results.len(), 3);
    assert!(results[2].is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes never panic the parser, the CRC check or record validation.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        for b in batch::batches(&bytes).flatten() {
            let _ = b.validate_crc();
            let _ = validate_producer_batch(&b, 1 << 16);
            if let Ok(records) = b.records(1 << 16) {
                for r in records.iter().flatten() {
                    let _ = r.headers().count();
                }
            }
        }
    }

    /// Mutating a valid batch's records (CRC fixed up) never panics validation.
    #[test]
    fn mutated_records_never_panic(pos in 61usize..400, byte: u8, codec in 0usize..5) {
        let c = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd][codec];
        let mut m = sample(c);
        let pos = pos % m.len();
        m[pos] = byte;
        let crc = batch::compute_crc(&m);
        m[17..21].copy_from_slice(&crc.to_be_bytes());
        if let Ok(b) = RecordBatch::parse_prefix(&m) {
            let _ = validate_producer_batch(&b, 1 << 16);
        }
    }

    /// Builder output always validates and reads back what went in.
    #[test]
    fn built_batches_round_trip(
        recs in proptest::collection::vec((proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
                                           proptest::option::of(proptest::collection::vec(any::<u8>(), 0..50)),
                                           -1000i64..1000), 1..20),
        codec in 0usize..5,
    ) {
        let c = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd][codec];
        let mut b = BatchBuilder::new(c);
        for (k, v, ts) in &recs {
            b.append(1_000_000 + ts, k.as_deref(), v.as_deref(), &[]);
        }
        let bytes = b.build(5).unwrap();
        let parsed = RecordBatch::parse_prefix(&bytes).unwrap();
        parsed.validate_crc().unwrap();
        let s = validate_producer_batch(&parsed, 1 << 20).unwrap();
        prop_assert_eq!(s.count as usize, recs.len());
        let records = parsed.records(1 << 20).unwrap();
        for (r, (k, v, ts)) in records.iter().zip(&recs) {
            let r = r.unwrap();
            prop_assert_eq!(r.key, k.as_deref());
            prop_assert_eq!(r.value, v.as_deref());
            prop_assert_eq!(parsed.header().base_timestamp + r.timestamp_delta, 1_000_000 + ts);
        }
    }
}
