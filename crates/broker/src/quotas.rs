//! Client quotas, enforced as Kafka's quota managers enforce them.
//!
//! A client's quota is the most specific one set for it, in Kafka's order: its user and
//! client id, its user and the default client id, its user, the default user and its client
//! id, the default user and client id, the default user, its client id, the default client
//! id. Clients that quota covers share one rate: a quota on `user=alice` is for all of
//! alice's clients together, a quota on the default user for each user apiece.
//!
//! - `producer_byte_rate`, `consumer_byte_rate`, `request_percentage`: a rate over
//!   `quota.window.num` samples of `quota.window.size.seconds`. A request that takes the
//!   rate over the quota is answered with the time it must wait (`throttle_time_ms` in
//!   Produce and Fetch) and its connection is not read for that long (KIP-219). A throttled
//!   fetch is answered empty and not counted, as in Kafka.
//! - `controller_mutation_rate` (KIP-599): a token bucket of partitions created or deleted.
//!   Once it is overdrawn, CreateTopics (v6+), CreatePartitions (v3+) and DeleteTopics (v5+)
//!   are refused with THROTTLING_QUOTA_EXCEEDED until it refills; older versions are let
//!   through and their connection is held back instead.
//!
//! With no quota in the metadata image, nothing is measured.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strom_metadata::MetadataImage;
use strom_types::quota::{
    EntityName, QuotaEntity, CONSUMER_BYTE_RATE, CONTROLLER_MUTATION_RATE, PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
};

/// The settings of the quota windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaWindows {
    /// `quota.window.num` (11): samples a rate is measured over.
    pub samples: u32,
    /// `quota.window.size.seconds` (1): each sample's span.
    pub sample: Duration,
    /// `controller.quota.window.num` (11).
    pub controller_samples: u32,
    /// `controller.quota.window.size.seconds` (1).
    pub controller_sample: Duration,
}

impl Default for QuotaWindows {
    fn default() -> Self {
        QuotaWindows {
            samples: 11,
            sample: Duration::from_secs(1),
            controller_samples: 11,
            controller_sample: Duration::from_secs(1),
        }
    }
}

/// Who a request is from, as quotas see it.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The principal's name (`alice` of `User:alice`).
    pub user: &'a str,
    /// The request header's client id.
    pub client_id: &'a str,
}

/// The clients one rate is shared by: the matched entity's user and client id parts, with
/// defaults replaced by the client's own names (empty: the entity has no such part).
type SensorKey = (String, String);

/// The quota for `client` under `key`, and the rate it is measured by.
fn resolve(image: &MetadataImage, client: Client<'_>, key: &str) -> Option<(SensorKey, f64)> {
    let named = |n: &str| Some(EntityName::Named(n.to_string()));
    let user = named(client.user);
    let id = named(client.client_id);
    let default = Some(EntityName::Default);
    let order = [
        (user.clone(), id.clone()),
        (user.clone(), default.clone()),
        (user, None),
        (default.clone(), id.clone()),
        (default.clone(), default.clone()),
        (default.clone(), None),
        (None, id),
        (None, default),
    ];
    order.into_iter().find_map(|(user, client_id)| {
        let sensor = (
            user.as_ref()
                .map_or(String::new(), |_| client.user.to_string()),
            client_id
                .as_ref()
                .map_or(String::new(), |_| client.client_id.to_string()),
        );
        let value = image
            .client_quotas
            .get(&QuotaEntity { user, client_id })?
            .get(key)?;
        Some((sensor, value.0))
    })
}

/// A rate over sampled windows (Kafka's `Rate` over a `SampledStat`).
#[derive(Debug, Default)]
struct Rate {
    /// (window start, total in it), oldest first.
    samples: VecDeque<(Instant, f64)>,
}

impl Rate {
    fn purge(&mut self, now: Instant, samples: u32, sample: Duration) {
        let span = sample * samples;
        while self
            .samples
            .front()
            .is_some_and(|(start, _)| now.duration_since(*start) >= span)
        {
            self.samples.pop_front();
        }
    }

    fn record(&mut self, now: Instant, value: f64, samples: u32, sample: Duration) {
        self.purge(now, samples, sample);
        match self.samples.back_mut() {
            Some((start, total)) if now.duration_since(*start) < sample => *total += value,
            _ => {
                self.samples.push_back((now, value));
                while self.samples.len() > samples as usize {
                    self.samples.pop_front();
                }
            }
        }
    }

    /// The time the rate is measured over: since the oldest sample, but at least all but
    /// one whole window, so a first burst is not measured over a few milliseconds.
    fn window(&self, now: Instant, samples: u32, sample: Duration) -> Duration {
        let elapsed = self
            .samples
            .front()
            .map_or(Duration::ZERO, |(start, _)| now.duration_since(*start));
        elapsed.max(sample * samples.saturating_sub(1)).max(sample)
    }

    /// Per second.
    fn measure(&mut self, now: Instant, samples: u32, sample: Duration) -> f64 {
        self.purge(now, samples, sample);
        let total: f64 = self.samples.iter().map(|(_, v)| v).sum();
        total / self.window(now, samples, sample).as_secs_f64()
    }
}

/// One quota type's rates, by the clients sharing each.
#[derive(Debug, Default)]
struct Rates(Mutex<HashMap<SensorKey, Rate>>);

/// Past this many rates, idle ones are dropped (client ids are the client's to choose).
const MAX_SENSORS: usize = 10_000;

/// A token bucket of partition mutations.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The broker's quota state.
#[derive(Debug, Default)]
pub struct Quotas {
    windows: QuotaWindows,
    produce: Rates,
    fetch: Rates,
    request: Rates,
    mutations: Mutex<HashMap<SensorKey, Bucket>>,
}

impl Quotas {
    /// Quotas measured over `windows`.
    pub fn new(windows: QuotaWindows) -> Quotas {
        Quotas {
            windows,
            ..Default::default()
        }
    }

    /// Adds `value` to the client's `key` rate; how long it must now wait. `keep`: whether a
    /// throttled value stays counted (a throttled fetch sends nothing, so it does not).
    fn record(
        &self,
        rates: &Rates,
        image: &MetadataImage,
        client: Client<'_>,
        key: &str,
        value: f64,
        keep: bool,
    ) -> Duration {
        if image.client_quotas.is_empty() {
            return Duration::ZERO;
        }
        let Some((sensor, quota)) = resolve(image, client, key) else {
            return Duration::ZERO;
        };
        let (samples, sample) = (self.windows.samples, self.windows.sample);
        let now = Instant::now();
        let mut rates = rates.0.lock();
        if rates.len() > MAX_SENSORS {
            rates.retain(|_, r| {
                r.purge(now, samples, sample);
                !r.samples.is_empty()
            });
        }
        let rate = rates.entry(sensor).or_default();
        rate.record(now, value, samples, sample);
        let observed = rate.measure(now, samples, sample);
        if observed <= quota {
            return Duration::ZERO;
        }
        // Kafka's throttle time: how long until the rate over the window is back at the
        // quota, at most a whole window.
        let window = rate.window(now, samples, sample);
        let throttle = window.mul_f64((observed - quota) / quota);
        if !keep {
            rate.record(now, -value, samples, sample);
        }
        throttle.min(sample * samples)
    }

    /// Counts a produce request of `bytes`.
    pub fn record_produce(
        &self,
        image: &MetadataImage,
        client: Client<'_>,
        bytes: usize,
    ) -> Duration {
        self.record(
            &self.produce,
            image,
            client,
            PRODUCER_BYTE_RATE,
            bytes as f64,
            true,
        )
    }

    /// Counts a fetch response of `bytes`; if it must wait, the response is not sent (and
    /// not counted).
    pub fn record_fetch(
        &self,
        image: &MetadataImage,
        client: Client<'_>,
        bytes: usize,
    ) -> Duration {
        self.record(
            &self.fetch,
            image,
            client,
            CONSUMER_BYTE_RATE,
            bytes as f64,
            false,
        )
    }

    /// Counts `busy` of request handling (`request_percentage`: 100 is one thread's whole
    /// time).
    pub fn record_request(
        &self,
        image: &MetadataImage,
        client: Client<'_>,
        busy: Duration,
    ) -> Duration {
        self.record(
            &self.request,
            image,
            client,
            REQUEST_PERCENTAGE,
            busy.as_secs_f64() * 100.0,
            true,
        )
    }

    /// The client's `controller_mutation_rate` bucket, refilled to now: its quota and
    /// tokens, or `None` without a quota.
    fn bucket<T>(
        &self,
        image: &MetadataImage,
        client: Client<'_>,
        f: impl FnOnce(&mut Bucket, f64) -> T,
    ) -> Option<T> {
        if image.client_quotas.is_empty() {
            return None;
        }
        let (sensor, quota) = resolve(image, client, CONTROLLER_MUTATION_RATE)?;
        let burst = quota
            * self.windows.controller_sample.as_secs_f64()
            * f64::from(self.windows.controller_samples);
        let now = Instant::now();
        let mut buckets = self.mutations.lock();
        if buckets.len() > MAX_SENSORS {
            buckets.retain(|_, b| b.tokens < burst);
        }
        let b = buckets.entry(sensor).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + quota * now.duration_since(b.at).as_secs_f64()).min(burst);
        b.at = now;
        Some(f(b, quota))
    }

    /// How long until the client may mutate partitions again, if its bucket is overdrawn.
    pub fn mutation_throttle(&self, image: &MetadataImage, client: Client<'_>) -> Option<Duration> {
        self.bucket(image, client, |b, quota| {
            (b.tokens < 0.0).then(|| Duration::from_secs_f64(-b.tokens / quota))
        })
        .flatten()
    }

    /// Takes `partitions` mutations from the client's bucket (it may go below zero: KIP-599
    /// lets the request that overdraws it through).
    pub fn record_mutations(&self, image: &MetadataImage, client: Client<'_>, partitions: u32) {
        if partitions > 0 {
            self.bucket(image, client, |b, _| b.tokens -= f64::from(partitions));
        }
    }
}

/// Runs `f`, and measures the time spent polling it: the request's handling, without the
/// waits (for replication, for data to fetch) that hold no thread.
pub async fn timed<F: std::future::Future>(f: F) -> (F::Output, Duration) {
    let mut f = std::pin::pin!(f);
    let mut busy = Duration::ZERO;
    let out = std::future::poll_fn(|cx| {
        let start = Instant::now();
        let poll = f.as_mut().poll(cx);
        busy += start.elapsed();
        poll
    })
    .await;
    (out, busy)
}

/// Milliseconds for a `throttle_time_ms` field.
pub fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_metadata::records::MetadataRecord;
    use strom_types::quota::QuotaValue;

    fn image(quotas: &[(Option<EntityName>, Option<EntityName>, &str, f64)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (i, (user, client_id, key, value)) in quotas.iter().enumerate() {
            image.apply(
                i as i64,
                &MetadataRecord::ClientQuota {
                    entity: QuotaEntity {
                        user: user.clone(),
                        client_id: client_id.clone(),
                    },
                    key: key.to_string(),
                    value: Some(QuotaValue(*value)),
                },
            );
        }
        image
    }

    fn named(n: &str) -> Option<EntityName> {
        Some(EntityName::Named(n.into()))
    }

    const ALICE: Client<'static> = Client {
        user: "alice",
        client_id: "app",
    };

    #[test]
    fn the_most_specific_quota_wins_and_defaults_are_per_client() {
        let d = Some(EntityName::Default);
        let image = image(&[
            (None, d.clone(), PRODUCER_BYTE_RATE, 1.0),
            (d.clone(), None, PRODUCER_BYTE_RATE, 2.0),
            (named("alice"), None, PRODUCER_BYTE_RATE, 3.0),
            (named("alice"), named("app"), PRODUCER_BYTE_RATE, 4.0),
        ]);
        let r = |c| resolve(&image, c, PRODUCER_BYTE_RATE);
        assert_eq!(r(ALICE), Some((("alice".into(), "app".into()), 4.0)));
        let other_app = Client {
            user: "alice",
            client_id: "batch",
        };
        assert_eq!(r(other_app), Some((("alice".into(), String::new()), 3.0)));
        let bob = Client {
            user: "bob",
            client_id: "app",
        };
        assert_eq!(
            r(bob),
            Some((("bob".into(), String::new()), 2.0)),
            "the default user's quota is bob's own"
        );
        assert_eq!(resolve(&image, ALICE, CONSUMER_BYTE_RATE), None);
    }

    #[test]
    fn a_rate_over_the_quota_is_throttled_by_how_far_over_it_is() {
        let quotas = Quotas::new(QuotaWindows {
            samples: 2,
            ..Default::default()
        });
        let image = image(&[(named("alice"), None, PRODUCER_BYTE_RATE, 1000.0)]);
        // Measured over at least one window (one second): 1000 bytes is at the quota.
        assert_eq!(quotas.record_produce(&image, ALICE, 1000), Duration::ZERO);
        // 3000 bytes in a second is 3x the quota: wait twice the window.
        let wait = quotas.record_produce(&image, ALICE, 2000);
        assert!(
            (1900..=2000).contains(&wait.as_millis()),
            "throttled {wait:?}"
        );
        // Others are not touched.
        let bob = Client {
            user: "bob",
            client_id: "app",
        };
        assert_eq!(quotas.record_produce(&image, bob, 1 << 20), Duration::ZERO);
        // A throttled fetch is not counted: the next one is judged as if it never was.
        let image = self::image(&[(named("alice"), None, CONSUMER_BYTE_RATE, 1000.0)]);
        assert!(quotas.record_fetch(&image, ALICE, 5000) > Duration::ZERO);
        assert_eq!(quotas.record_fetch(&image, ALICE, 900), Duration::ZERO);
    }

    #[test]
    fn the_mutation_bucket_lets_one_request_overdraw_it_then_refuses() {
        let quotas = Quotas::new(QuotaWindows {
            controller_samples: 1,
            ..Default::default()
        });
        let image = image(&[(named("alice"), None, CONTROLLER_MUTATION_RATE, 10.0)]);
        assert_eq!(quotas.mutation_throttle(&image, ALICE), None);
        quotas.record_mutations(&image, ALICE, 30);
        let wait = quotas.mutation_throttle(&image, ALICE).unwrap_or_default();
        assert!(
            (1900..=2000).contains(&wait.as_millis()),
            "20 partitions over at 10/s: about two seconds, got {wait:?}"
        );
        assert_eq!(
            quotas.mutation_throttle(&MetadataImage::default(), ALICE),
            None
        );
    }
}
