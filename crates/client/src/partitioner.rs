//! Kafka's default partitioner, byte for byte: a record with a key goes to
//! `toPositive(murmur2(key)) % partitions` (so keyed records land where Java, librdkafka's
//! `murmur2_random` and kafka-python put them), and records without a key stick to one
//! partition until a batch for it is sent, then move to another (KIP-480).
//!
//! murmur2 is written out here because Kafka's variant (seed `0x9747b28c`, little-endian
//! blocks, its own tail handling) is what matters for placement and no crate states that it
//! matches it.

use std::collections::HashMap;

use parking_lot::Mutex;
use rand::Rng;

/// Kafka's murmur2 hash of `data` (Java's `Utils.murmur2`), as a signed 32-bit value.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition of a keyed record among `partitions` (Kafka's default partitioner).
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    to_positive(murmur2(key)) % partitions.max(1)
}

/// Sticky choice for records without a key: one partition per topic until
/// [`StickyPartitioner::next_batch`] says its batch went out.
#[derive(Debug, Default)]
pub struct StickyPartitioner {
    current: Mutex<HashMap<String, i32>>,
}

impl StickyPartitioner {
    /// The partition a keyless record for `topic` goes to now.
    pub fn partition(&self, topic: &str, partitions: i32) -> i32 {
        let mut current = self.current.lock();
        match current.get(topic) {
            Some(p) if *p < partitions => *p,
            _ => {
                let p = rand::thread_rng().gen_range(0..partitions.max(1));
                current.insert(topic.to_string(), p);
                p
            }
        }
    }

    /// A batch for `topic` on `sent` was closed: keyless records move to another partition.
    pub fn next_batch(&self, topic: &str, sent: i32, partitions: i32) {
        let mut current = self.current.lock();
        if current.get(topic) != Some(&sent) {
            return;
        }
        let next = if partitions <= 1 {
            0
        } else {
            let r = rand::thread_rng().gen_range(0..partitions - 1);
            if r >= sent {
                r + 1
            } else {
                r
            }
        };
        current.insert(topic.to_string(), next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_values() {
        // Values of Java's Utils.murmur2 (kafka-python returns the same bits unsigned).
        let cases: &[(&[u8], u32)] = &[
            (b"", 275_646_681),
            (b"21", 3_321_034_988),
            (b"foobar", 3_504_634_814),
            (b"a-little-bit-long-string", 3_308_985_760),
            (b"a-little-bit-longer-string", 2_808_662_467),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                4_236_069_325,
            ),
            (b"abc", 479_470_107),
            (&[0, 1, 2, 3, 4, 5, 6], 2_806_798_476),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key) as u32, *want, "{key:?}");
        }
        assert_eq!(partition_for_key(b"21", 10), to_positive(-973_932_308) % 10);
    }

    #[test]
    fn sticky_partitions_change_only_after_a_batch() {
        let s = StickyPartitioner::default();
        let first = s.partition("t", 8);
        for _ in 0..100 {
            assert_eq!(s.partition("t", 8), first);
        }
        s.next_batch("t", first, 8);
        assert_ne!(s.partition("t", 8), first);
        assert_eq!(s.partition("one", 1), 0);
        s.next_batch("one", 0, 1);
        assert_eq!(s.partition("one", 1), 0);
    }
}
