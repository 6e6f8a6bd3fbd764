//! Replication throttles: Kafka's `leader.replication.throttled.rate` and
//! `follower.replication.throttled.rate` (bytes per second), applied to the replicas a
//! topic's `leader.replication.throttled.replicas` / `follower.replication.throttled.replicas`
//! name, and only while such a replica is out of the ISR (a reassignment's new replica
//! catching up), exactly as Kafka limits them: an in-sync follower is never slowed.
//!
//! The leader side serves a throttled follower nothing while its rate is spent; the
//! follower side leaves throttled partitions out of its fetches. Both record what they
//! move. The rate is a token bucket holding at most one second of bytes: a read may
//! overdraw it (one batch is never split), and the debt is paid before the next.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// One direction's rate limit, shared by every throttled replica of a broker.
#[derive(Debug)]
pub struct Throttle {
    /// Bytes per second; `u64::MAX`: unlimited (Kafka's default, Long.MAX_VALUE).
    rate: AtomicU64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Bytes that may move now (negative: owed).
    tokens: f64,
    at: Instant,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            rate: AtomicU64::new(u64::MAX),
            bucket: Mutex::new(Bucket {
                tokens: 0.0,
                at: Instant::now(),
            }),
        }
    }
}

impl Throttle {
    /// Sets the rate in bytes per second (`None`: unlimited). A new rate starts with a
    /// full second's allowance.
    pub fn set_rate(&self, bytes_per_second: Option<u64>) {
        let rate = bytes_per_second.unwrap_or(u64::MAX).max(1);
        if self.rate.swap(rate, Ordering::AcqRel) != rate {
            let mut b = self.bucket.lock();
            b.tokens = rate as f64;
            b.at = Instant::now();
        }
    }

    /// The rate, `None` when unlimited.
    pub fn rate(&self) -> Option<u64> {
        let rate = self.rate.load(Ordering::Acquire);
        (rate != u64::MAX).then_some(rate)
    }

    fn refill(&self, b: &mut Bucket, rate: u64) {
        let now = Instant::now();
        let earned = now.duration_since(b.at).as_secs_f64() * rate as f64;
        b.tokens = (b.tokens + earned).min(rate as f64);
        b.at = now;
    }

    /// Whether the rate is spent: throttled replicas must wait.
    pub fn exceeded(&self) -> bool {
        let Some(rate) = self.rate() else {
            return false;
        };
        let mut b = self.bucket.lock();
        self.refill(&mut b, rate);
        b.tokens <= 0.0
    }

    /// How long until the rate allows bytes again (zero when it does).
    pub fn wait_hint(&self) -> Duration {
        let Some(rate) = self.rate() else {
            return Duration::ZERO;
        };
        let mut b = self.bucket.lock();
        self.refill(&mut b, rate);
        if b.tokens > 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((-b.tokens + 1.0) / rate as f64)
        }
    }

    /// Counts `bytes` moved by a throttled replica.
    pub fn record(&self, bytes: usize) {
        let Some(rate) = self.rate() else {
            return;
        };
        let mut b = self.bucket.lock();
        self.refill(&mut b, rate);
        b.tokens -= bytes as f64;
    }
}

/// Whether a topic's `*.replication.throttled.replicas` value names partition `partition`'s
/// replica on broker `broker`: `*`, or a `partition:broker` entry of its list.
pub fn names_replica(value: &str, partition: i32, broker: i32) -> bool {
    let value = value.trim();
    if value == "*" {
        return true;
    }
    value.split(',').any(|entry| {
        let mut parts = entry.trim().splitn(2, ':');
        let p = parts.next().and_then(|p| p.trim().parse::<i32>().ok());
        let b = parts.next().and_then(|b| b.trim().parse::<i32>().ok());
        p == Some(partition) && b == Some(broker)
    })
}

/// Checks a `*.replication.throttled.replicas` value: empty, `*`, or a comma-separated list
/// of `partition:broker`.
pub fn valid_replica_list(value: &str) -> bool {
    let value = value.trim();
    value.is_empty()
        || value == "*"
        || value.split(',').all(|entry| {
            let mut parts = entry.trim().splitn(2, ':');
            matches!(
                (
                    parts.next().map(|p| p.trim().parse::<u32>()),
                    parts.next().map(|b| b.trim().parse::<u32>())
                ),
                (Some(Ok(_)), Some(Ok(_)))
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_rate_is_exceeded_until_it_has_been_paid_back() {
        let t = Throttle::default();
        assert!(!t.exceeded(), "unlimited by default");
        t.record(1 << 30);
        assert!(!t.exceeded());
        t.set_rate(Some(1000));
        assert!(!t.exceeded(), "a new rate starts with a second's allowance");
        t.record(1500);
        assert!(t.exceeded());
        let wait = t.wait_hint();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(600));
        std::thread::sleep(wait + Duration::from_millis(20));
        assert!(!t.exceeded());
        t.set_rate(None);
        t.record(1 << 30);
        assert!(!t.exceeded());
    }

    #[test]
    fn replica_lists_are_read_as_kafka_writes_them() {
        assert!(names_replica("*", 3, 9));
        assert!(names_replica("0:1, 3:9", 3, 9));
        assert!(!names_replica("0:1,3:8", 3, 9));
        assert!(!names_replica("", 0, 1));
        assert!(valid_replica_list("0:1,1:2"));
        assert!(valid_replica_list(""));
        assert!(valid_replica_list("*"));
        assert!(!valid_replica_list("0:1,x"));
        assert!(!valid_replica_list("0-1"));
    }
}
