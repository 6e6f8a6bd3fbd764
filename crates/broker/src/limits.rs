//! Connection limits, with Kafka's settings:
//!
//! - `max.connections` (broker-wide) and `listener.name.<l>.max.connections`: at the limit
//!   the listener stops accepting until a connection closes (the kernel's backlog holds new
//!   ones, as Kafka's acceptor does). The inter-broker listener is exempt from the
//!   broker-wide limit, so replication goes on when clients fill it.
//! - `max.connections.per.ip` and `max.connections.per.ip.overrides` (`ip:count,...`): a
//!   connection over its address's limit is closed at once, with a log line.
//! - `max.connection.creation.rate` and `listener.name.<l>.max.connection.creation.rate`:
//!   connections accepted per second, a token bucket holding one second's worth; past it
//!   accepting waits.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::ConfigError;

/// The limits' settings (also in their `listener.name.<l>.` forms where Kafka has them).
pub const SETTINGS: &[&str] = &[
    "max.connections",
    "max.connections.per.ip",
    "max.connections.per.ip.overrides",
    "max.connection.creation.rate",
];

/// A token bucket: `rate` tokens a second, holding at most one second's worth.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    /// `per_second` connections a second.
    pub fn new(per_second: u32) -> RateLimit {
        RateLimit {
            rate: f64::from(per_second.max(1)),
            tokens: f64::from(per_second.max(1)),
            at: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    /// Waits until a token is there and takes it.
    pub async fn acquire(limit: &Mutex<RateLimit>) {
        loop {
            let wait = match limit.lock().take() {
                Ok(()) => return,
                Err(wait) => wait,
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// The broker-wide limits, shared by every listener.
#[derive(Debug)]
pub struct ConnectionLimits {
    total: Option<Arc<Semaphore>>,
    rate: Option<Mutex<RateLimit>>,
    per_ip: Option<usize>,
    per_ip_overrides: BTreeMap<IpAddr, usize>,
    open_per_ip: Mutex<HashMap<IpAddr, usize>>,
    props: BTreeMap<String, String>,
    inter_broker: Option<String>,
}

/// One listener's limits.
#[derive(Debug)]
pub struct ListenerLimits {
    broker: Arc<ConnectionLimits>,
    total: Option<Arc<Semaphore>>,
    rate: Option<Mutex<RateLimit>>,
    /// The inter-broker listener does not count against `max.connections`.
    exempt: bool,
}

/// Room for one more connection: the listener's and the broker's permits.
pub type Room = (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>);

/// A connection's place in the limits, given back when it drops.
#[derive(Debug)]
pub struct Slot {
    _listener: Option<OwnedSemaphorePermit>,
    _broker: Option<OwnedSemaphorePermit>,
    ip: Option<(IpAddr, Arc<ConnectionLimits>)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((ip, limits)) = &self.ip {
            let mut open = limits.open_per_ip.lock();
            if let Some(n) = open.get_mut(ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(ip);
                }
            }
        }
    }
}

/// Kafka's "unlimited" is Int.MAX_VALUE; any value at or past it means no limit.
fn limit(props: &BTreeMap<String, String>, key: &str) -> Result<Option<usize>, ConfigError> {
    let Some(v) = props.get(key) else {
        return Ok(None);
    };
    let n: i64 = v.trim().parse().map_err(|_| ConfigError {
        key: key.into(),
        value: v.clone(),
        reason: "not a whole number".into(),
    })?;
    if n < 0 {
        return Err(ConfigError {
            key: key.into(),
            value: v.clone(),
            reason: "must not be negative".into(),
        });
    }
    Ok((n < i64::from(i32::MAX)).then_some(n as usize))
}

fn rate(
    props: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<Mutex<RateLimit>>, ConfigError> {
    Ok(limit(props, key)?.map(|n| Mutex::new(RateLimit::new(n.min(u32::MAX as usize) as u32))))
}

impl ConnectionLimits {
    /// Reads the broker-wide settings from the properties; `inter_broker` is the listener
    /// exempt from `max.connections`.
    pub fn resolve(
        props: &BTreeMap<String, String>,
        inter_broker: Option<&str>,
    ) -> Result<ConnectionLimits, ConfigError> {
        let mut per_ip_overrides = BTreeMap::new();
        if let Some(v) = props.get("max.connections.per.ip.overrides") {
            for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                let bad = |reason: &str| ConfigError {
                    key: "max.connections.per.ip.overrides".into(),
                    value: v.clone(),
                    reason: format!("'{item}': {reason}"),
                };
                let (host, count) = item.rsplit_once(':').ok_or_else(|| bad("not ip:count"))?;
                let ip: IpAddr = host
                    .trim_matches(['[', ']'])
                    .parse()
                    .map_err(|_| bad("not an IP address"))?;
                let count: usize = count.parse().map_err(|_| bad("not a count"))?;
                per_ip_overrides.insert(ip, count);
            }
        }
        Ok(ConnectionLimits {
            total: limit(props, "max.connections")?.map(|n| Arc::new(Semaphore::new(n))),
            rate: rate(props, "max.connection.creation.rate")?,
            per_ip: limit(props, "max.connections.per.ip")?,
            per_ip_overrides,
            open_per_ip: Mutex::new(HashMap::new()),
            props: props.clone(),
            inter_broker: inter_broker.map(str::to_string),
        })
    }

    /// The limits of listener `name`.
    pub fn listener(self: &Arc<Self>, name: &str) -> Result<ListenerLimits, ConfigError> {
        let prefix = format!("listener.name.{}.", name.to_ascii_lowercase());
        Ok(ListenerLimits {
            broker: self.clone(),
            total: limit(&self.props, &format!("{prefix}max.connections"))?
                .map(|n| Arc::new(Semaphore::new(n))),
            rate: rate(
                &self.props,
                &format!("{prefix}max.connection.creation.rate"),
            )?,
            exempt: self.inter_broker.as_deref() == Some(name),
        })
    }

    fn ip_limit(&self, ip: &IpAddr) -> Option<usize> {
        self.per_ip_overrides.get(ip).copied().or(self.per_ip)
    }
}

impl ListenerLimits {
    /// Waits until this listener may accept another connection: below its own and the
    /// broker's `max.connections`, within both creation rates.
    pub async fn room(&self) -> Room {
        let own = match &self.total {
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        };
        let broker = match (&self.broker.total, self.exempt) {
            (Some(s), false) => s.clone().acquire_owned().await.ok(),
            _ => None,
        };
        if let Some(r) = &self.rate {
            RateLimit::acquire(r).await;
        }
        if let Some(r) = &self.broker.rate {
            RateLimit::acquire(r).await;
        }
        (own, broker)
    }

    /// Admits a connection from `ip` holding `room`, or refuses it (`None`) when that
    /// address has its `max.connections.per.ip` open already.
    pub fn admit(&self, ip: IpAddr, room: Room) -> Option<Slot> {
        let limits = &self.broker;
        let tracked = match limits.ip_limit(&ip) {
            None => None,
            Some(max) => {
                let mut open = limits.open_per_ip.lock();
                let n = open.entry(ip).or_default();
                if *n >= max {
                    if *n == 0 {
                        open.remove(&ip);
                    }
                    return None;
                }
                *n += 1;
                Some((ip, limits.clone()))
            }
        };
        Some(Slot {
            _listener: room.0,
            _broker: room.1,
            ip: tracked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(text: &str) -> BTreeMap<String, String> {
        crate::BrokerConfig::parse_properties(text)
            .into_iter()
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn the_creation_rate_spaces_connections_out() {
        let limit = Mutex::new(RateLimit::new(10));
        let start = Instant::now();
        for _ in 0..30 {
            RateLimit::acquire(&limit).await;
        }
        // A second's worth at once, then ten a second: the thirtieth about 2 s in.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1900), "{took:?}");
        assert!(took <= Duration::from_millis(2100), "{took:?}");
    }

    #[tokio::test]
    async fn per_ip_limits_and_their_overrides_count_open_connections() {
        let limits = Arc::new(
            ConnectionLimits::resolve(
                &props("max.connections.per.ip=2\nmax.connections.per.ip.overrides=10.0.0.9:0,10.0.0.8:3"),
                None,
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let l = limits
            .listener("PLAINTEXT")
            .unwrap_or_else(|e| panic!("{e}"));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let a = l.admit(ip, l.room().await);
        let b = l.admit(ip, l.room().await);
        assert!(a.is_some() && b.is_some());
        assert!(
            l.admit(ip, l.room().await).is_none(),
            "a third from one address"
        );
        drop(a);
        assert!(
            l.admit(ip, l.room().await).is_some(),
            "room again once one closed"
        );
        assert!(l.admit([10, 0, 0, 9].into(), l.room().await).is_none());
        let three: Vec<_> = (0..4)
            .map(|_| l.admit([10, 0, 0, 8].into(), (None, None)))
            .collect();
        assert_eq!(three.iter().filter(|s| s.is_some()).count(), 3);
    }

    #[tokio::test]
    async fn max_connections_blocks_until_one_closes_and_spares_the_inter_broker_listener() {
        let limits = Arc::new(
            ConnectionLimits::resolve(&props("max.connections=1"), Some("INTERNAL"))
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let clients = limits.listener("CLIENTS").unwrap_or_else(|e| panic!("{e}"));
        let internal = limits
            .listener("INTERNAL")
            .unwrap_or_else(|e| panic!("{e}"));
        let first = clients.admit([10, 0, 0, 1].into(), clients.room().await);
        assert!(first.is_some());
        let blocked = tokio::time::timeout(Duration::from_millis(100), clients.room()).await;
        assert!(blocked.is_err(), "a second client connection waits");
        let replication = tokio::time::timeout(Duration::from_millis(100), internal.room()).await;
        assert!(replication.is_ok(), "the inter-broker listener is exempt");
        drop(first);
        let now = tokio::time::timeout(Duration::from_millis(100), clients.room()).await;
        assert!(now.is_ok(), "room once the first closed");
    }

    #[test]
    fn bad_settings_are_refused() {
        for bad in [
            "max.connections=-1",
            "max.connections.per.ip=lots",
            "max.connections.per.ip.overrides=somehost:3",
            "max.connections.per.ip.overrides=10.0.0.1",
        ] {
            assert!(
                ConnectionLimits::resolve(&props(bad), None).is_err(),
                "{bad}"
            );
        }
    }
}
