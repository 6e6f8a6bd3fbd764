//! The broker's metrics, in Prometheus' text format: what happens (requests, bytes, ISR
//! changes, connections) is counted as it happens into a `metrics` recorder of this broker's
//! own (not the process-global one, so brokers sharing a process keep theirs apart), through
//! handles registered once and cached; what *is* (offsets, sizes, partition health, group
//! lag, the quorum) is read from the broker's state when `/metrics` is scraped
//! ([`state`]). With no HTTP listener there is nobody to scrape, and nothing is recorded.
//!
//! Names follow Prometheus' conventions (`strom_` prefix, `_total` counters, base units);
//! each one's help text names the Kafka metric it stands for.

mod errors;
pub mod state;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Counter, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use parking_lot::{Mutex, RwLock};

pub use errors::ErrorCodes;

/// API keys up to this one get cached handles (Kafka's highest today is in the 80s).
const MAX_API_KEY: usize = 127;
/// Versions of one API with a cached counter.
const MAX_VERSION: usize = 31;

/// Latency buckets, in seconds: 0.1 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// What the request being answered was, for its metrics: filled in while it is handled.
#[derive(Debug, Default)]
pub struct RequestFacts {
    /// Its API key and version, once the header parsed.
    pub api: Option<(i16, i16)>,
    /// The error codes its response carries (none for success).
    pub errors: Vec<i16>,
    /// Bytes of its frame.
    pub request_bytes: usize,
}

impl RequestFacts {
    /// Starts a request of `bytes`.
    pub fn begin(&mut self, bytes: usize) {
        self.api = None;
        self.errors.clear();
        self.request_bytes = bytes;
    }
}

/// Where one request's time went (Kafka's RequestMetrics, less the queue: each connection's
/// task runs its own requests, so there is no shared request queue to wait in).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestTimes {
    /// Polling the handler: the broker's own work.
    pub local: Duration,
    /// Waiting inside the handler: acks=all replication, a long-poll fetch, the controller.
    pub remote: Duration,
    /// Writing the response to the socket.
    pub send: Duration,
    /// How long the connection is then held back by a quota.
    pub throttle: Duration,
}

/// Per-topic counters (Kafka's BrokerTopicMetrics).
pub struct TopicMetrics {
    bytes_in: Counter,
    messages_in: Counter,
    bytes_out: Counter,
    failed_produce: Counter,
    failed_fetch: Counter,
}

impl TopicMetrics {
    /// A leader's append of `records` records in `bytes`.
    pub fn produced(&self, bytes: u64, records: i64) {
        self.bytes_in.increment(bytes);
        self.messages_in.increment(records.max(0) as u64);
    }

    /// A consumer fetch's `bytes` of this topic.
    pub fn fetched(&self, bytes: u64) {
        self.bytes_out.increment(bytes);
    }

    /// A produce to one of its partitions failed.
    pub fn produce_failed(&self) {
        self.failed_produce.increment(1);
    }

    /// A fetch from one of its partitions failed.
    pub fn fetch_failed(&self) {
        self.failed_fetch.increment(1);
    }
}

struct ApiMetrics {
    name: &'static str,
    versions: Vec<OnceLock<Counter>>,
    total: Histogram,
    local: Histogram,
    remote: Histogram,
    send: Histogram,
    throttle: Histogram,
    request_bytes: Counter,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    apis: Vec<OnceLock<ApiMetrics>>,
    errors: Mutex<HashMap<(i16, i16), Counter>>,
    topics: RwLock<HashMap<String, Arc<TopicMetrics>>>,
    connections: Mutex<HashMap<(Arc<str>, bool), Counter>>,
    open_connections: Mutex<HashMap<Arc<str>, metrics::Gauge>>,
    isr_shrinks: Counter,
    isr_expands: Counter,
    replication_bytes_out: Counter,
    authentications: Mutex<HashMap<(Arc<str>, bool), Counter>>,
}

/// This broker's event metrics; [`Metrics::off`] records nothing.
pub struct Metrics {
    inner: Option<Inner>,
    /// Shared by every topic when off.
    idle_topic: Arc<TopicMetrics>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("on", &self.inner.is_some())
            .finish()
    }
}

fn meta() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

impl Metrics {
    /// Metrics that record nothing.
    pub fn off() -> Metrics {
        Metrics {
            inner: None,
            idle_topic: Arc::new(TopicMetrics {
                bytes_in: Counter::noop(),
                messages_in: Counter::noop(),
                bytes_out: Counter::noop(),
                failed_produce: Counter::noop(),
                failed_fetch: Counter::noop(),
            }),
        }
    }

    /// Metrics that record, for `/metrics`.
    pub fn on() -> Metrics {
        let builder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .expect("the latency buckets are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        describe(&recorder);
        let counter =
            |name: &'static str| recorder.register_counter(&Key::from_name(name), &meta());
        let inner = Inner {
            apis: (0..=MAX_API_KEY).map(|_| OnceLock::new()).collect(),
            errors: Mutex::new(HashMap::new()),
            topics: RwLock::new(HashMap::new()),
            connections: Mutex::new(HashMap::new()),
            open_connections: Mutex::new(HashMap::new()),
            isr_shrinks: counter("strom_isr_shrinks_total"),
            isr_expands: counter("strom_isr_expands_total"),
            replication_bytes_out: counter("strom_replication_bytes_out_total"),
            authentications: Mutex::new(HashMap::new()),
            recorder,
            handle,
        };
        Metrics {
            inner: Some(inner),
            idle_topic: Metrics::off().idle_topic,
        }
    }

    /// Whether anything is recorded.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Records one answered request.
    pub fn request(&self, facts: &RequestFacts, times: RequestTimes) {
        let Some(inner) = &self.inner else { return };
        let Some((key, version)) = facts.api else {
            return;
        };
        let Some(api) = inner.api(key) else { return };
        if let Some(slot) = api.versions.get(version.max(0) as usize) {
            slot.get_or_init(|| {
                let labels = vec![
                    Label::new("request", api.name),
                    Label::new("version", version.to_string()),
                ];
                inner
                    .recorder
                    .register_counter(&Key::from_parts("strom_requests_total", labels), &meta())
            })
            .increment(1);
        }
        let total = times.local + times.remote + times.send;
        api.total.record(total.as_secs_f64());
        api.local.record(times.local.as_secs_f64());
        api.remote.record(times.remote.as_secs_f64());
        api.send.record(times.send.as_secs_f64());
        api.throttle.record(times.throttle.as_secs_f64());
        api.request_bytes.increment(facts.request_bytes as u64);
        if !facts.errors.is_empty() {
            let mut errors = inner.errors.lock();
            for code in &facts.errors {
                errors
                    .entry((key, *code))
                    .or_insert_with(|| {
                        let labels = vec![
                            Label::new("request", api.name),
                            Label::new("error", error_name(*code)),
                        ];
                        inner.recorder.register_counter(
                            &Key::from_parts("strom_request_errors_total", labels),
                            &meta(),
                        )
                    })
                    .increment(1);
            }
        }
    }

    /// The counters of `topic`.
    pub fn topic(&self, topic: &str) -> Arc<TopicMetrics> {
        let Some(inner) = &self.inner else {
            return self.idle_topic.clone();
        };
        if let Some(t) = inner.topics.read().get(topic) {
            return t.clone();
        }
        let mut topics = inner.topics.write();
        topics
            .entry(topic.to_string())
            .or_insert_with(|| {
                let c = |name: &'static str| {
                    inner.recorder.register_counter(
                        &Key::from_parts(name, vec![Label::new("topic", topic.to_string())]),
                        &meta(),
                    )
                };
                Arc::new(TopicMetrics {
                    bytes_in: c("strom_topic_bytes_in_total"),
                    messages_in: c("strom_topic_messages_in_total"),
                    bytes_out: c("strom_topic_bytes_out_total"),
                    failed_produce: c("strom_topic_failed_produce_requests_total"),
                    failed_fetch: c("strom_topic_failed_fetch_requests_total"),
                })
            })
            .clone()
    }

    /// A follower fetch served `bytes` from this leader.
    pub fn replication_out(&self, bytes: u64) {
        if let Some(inner) = &self.inner {
            inner.replication_bytes_out.increment(bytes);
        }
    }

    /// An ISR change this leader had committed: fewer members (a shrink) or more.
    pub fn isr_changed(&self, before: usize, after: usize) {
        if let Some(inner) = &self.inner {
            if after < before {
                inner.isr_shrinks.increment(1);
            } else if after > before {
                inner.isr_expands.increment(1);
            }
        }
    }

    /// A connection accepted on `listener` (`opened`) or closed.
    pub fn connection(&self, listener: &Arc<str>, opened: bool) {
        let Some(inner) = &self.inner else { return };
        labelled(
            &inner.recorder,
            &inner.connections,
            listener,
            opened,
            if opened {
                "strom_connections_created_total"
            } else {
                "strom_connections_closed_total"
            },
            None,
        )
        .increment(1);
        let mut open = inner.open_connections.lock();
        let gauge = open.entry(listener.clone()).or_insert_with(|| {
            inner.recorder.register_gauge(
                &Key::from_parts(
                    "strom_connections",
                    vec![Label::new("listener", listener.to_string())],
                ),
                &meta(),
            )
        });
        if opened {
            gauge.increment(1.0);
        } else {
            gauge.decrement(1.0);
        }
    }

    /// A SASL authentication on `listener` that succeeded or failed.
    pub fn authentication(&self, listener: &Arc<str>, succeeded: bool) {
        let Some(inner) = &self.inner else { return };
        let result = if succeeded { "success" } else { "failure" };
        labelled(
            &inner.recorder,
            &inner.authentications,
            listener,
            succeeded,
            "strom_authentications_total",
            Some(result),
        )
        .increment(1);
    }

    /// The event metrics in Prometheus' text format (empty when off).
    pub fn render_events(&self) -> String {
        self.inner
            .as_ref()
            .map(|i| i.handle.render())
            .unwrap_or_default()
    }

    /// Drains the histograms' recent samples into their buckets: run every few seconds so
    /// nothing grows between scrapes.
    pub fn upkeep(&self) {
        if let Some(inner) = &self.inner {
            inner.handle.run_upkeep();
        }
    }
}

/// A counter per (listener, flag), with an optional `result` label.
fn labelled(
    recorder: &PrometheusRecorder,
    map: &Mutex<HashMap<(Arc<str>, bool), Counter>>,
    listener: &Arc<str>,
    flag: bool,
    name: &'static str,
    result: Option<&'static str>,
) -> Counter {
    map.lock()
        .entry((listener.clone(), flag))
        .or_insert_with(|| {
            let mut labels = vec![Label::new("listener", listener.to_string())];
            if let Some(r) = result {
                labels.push(Label::new("result", r));
            }
            recorder.register_counter(&Key::from_parts(name, labels), &meta())
        })
        .clone()
}

impl Inner {
    fn api(&self, key: i16) -> Option<&ApiMetrics> {
        let slot = self.apis.get(usize::try_from(key).ok()?)?;
        Some(slot.get_or_init(|| {
            let name = api_name(key);
            let h = |metric: &'static str| {
                self.recorder.register_histogram(
                    &Key::from_parts(metric, vec![Label::new("request", name)]),
                    &meta(),
                )
            };
            ApiMetrics {
                name,
                versions: (0..=MAX_VERSION).map(|_| OnceLock::new()).collect(),
                total: h("strom_request_total_time_seconds"),
                local: h("strom_request_local_time_seconds"),
                remote: h("strom_request_remote_time_seconds"),
                send: h("strom_request_response_send_time_seconds"),
                throttle: h("strom_request_throttle_time_seconds"),
                request_bytes: self.recorder.register_counter(
                    &Key::from_parts(
                        "strom_request_bytes_total",
                        vec![Label::new("request", name)],
                    ),
                    &meta(),
                ),
            }
        }))
    }
}

/// Kafka's name of an API (`Produce`, `FetchSnapshot`).
fn api_name(key: i16) -> &'static str {
    static NAMES: OnceLock<HashMap<i16, &'static str>> = OnceLock::new();
    NAMES
        .get_or_init(|| {
            (0..=MAX_API_KEY as i16)
                .filter_map(|k| {
                    let api = kafka_protocol::messages::ApiKey::try_from(k).ok()?;
                    Some((k, &*Box::leak(format!("{api:?}").into_boxed_str())))
                })
                .collect()
        })
        .get(&key)
        .copied()
        .unwrap_or("Unknown")
}

/// Kafka's name of an error code (`NOT_LEADER_OR_FOLLOWER`), or the number.
pub fn error_name(code: i16) -> String {
    strom_client::error::error_name(code).unwrap_or_else(|| code.to_string())
}

fn describe(r: &PrometheusRecorder) {
    let counters: &[(&str, Unit, &str)] = &[
        ("strom_requests_total", Unit::Count, "Requests answered, by API and version (Kafka: kafka.network RequestMetrics RequestsPerSec)."),
        ("strom_request_errors_total", Unit::Count, "Error codes in responses, by API and error, one per occurrence (Kafka: RequestMetrics ErrorsPerSec; NONE is not counted)."),
        ("strom_request_bytes_total", Unit::Bytes, "Bytes of request frames, by API (Kafka: RequestMetrics RequestBytes)."),
        ("strom_topic_bytes_in_total", Unit::Bytes, "Bytes appended by producers to partitions this broker leads (Kafka: BrokerTopicMetrics BytesInPerSec)."),
        ("strom_topic_messages_in_total", Unit::Count, "Records appended by producers (Kafka: BrokerTopicMetrics MessagesInPerSec)."),
        ("strom_topic_bytes_out_total", Unit::Bytes, "Bytes of record batches sent to consumers (Kafka: BrokerTopicMetrics BytesOutPerSec)."),
        ("strom_topic_failed_produce_requests_total", Unit::Count, "Partition produces refused (Kafka: BrokerTopicMetrics FailedProduceRequestsPerSec)."),
        ("strom_topic_failed_fetch_requests_total", Unit::Count, "Partition fetches refused (Kafka: BrokerTopicMetrics FailedFetchRequestsPerSec)."),
        ("strom_replication_bytes_out_total", Unit::Bytes, "Bytes sent to follower replicas (Kafka: BrokerTopicMetrics ReplicationBytesOutPerSec)."),
        ("strom_isr_shrinks_total", Unit::Count, "ISR shrinks this broker committed as leader (Kafka: ReplicaManager IsrShrinksPerSec)."),
        ("strom_isr_expands_total", Unit::Count, "ISR expansions this broker committed as leader (Kafka: ReplicaManager IsrExpandsPerSec)."),
        ("strom_connections_created_total", Unit::Count, "Connections accepted, by listener (Kafka: socket-server-metrics connection-creation-total)."),
        ("strom_connections_closed_total", Unit::Count, "Connections closed, by listener (Kafka: socket-server-metrics connection-close-total)."),
        ("strom_authentications_total", Unit::Count, "SASL authentications, by listener and result (Kafka: successful/failed-authentication-total)."),
    ];
    for (name, unit, help) in counters {
        r.describe_counter(KeyName::from(*name), Some(*unit), SharedString::from(*help));
    }
    r.describe_gauge(
        KeyName::from("strom_connections"),
        Some(Unit::Count),
        SharedString::from(
            "Open client connections, by listener (Kafka: socket-server-metrics connection-count).",
        ),
    );
    let histograms: &[(&str, &str)] = &[
        ("strom_request_total_time_seconds", "Time from a request's arrival to its response sent, by API (Kafka: RequestMetrics TotalTimeMs)."),
        ("strom_request_local_time_seconds", "Time the broker spent working on a request, by API (Kafka: RequestMetrics LocalTimeMs)."),
        ("strom_request_remote_time_seconds", "Time a request waited on others: replicas for acks=all, new data for a fetch, the controller (Kafka: RequestMetrics RemoteTimeMs)."),
        ("strom_request_response_send_time_seconds", "Time writing a response to the socket, by API (Kafka: RequestMetrics ResponseSendTimeMs)."),
        ("strom_request_throttle_time_seconds", "Time a connection was held back by a quota after a request, by API (Kafka: RequestMetrics ThrottleTimeMs)."),
    ];
    for (name, help) in histograms {
        r.describe_histogram(
            KeyName::from(*name),
            Some(Unit::Seconds),
            SharedString::from(*help),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_and_api_names_are_kafkas() {
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(9999), "9999");
        assert_eq!(api_name(0), "Produce");
        assert_eq!(api_name(18), "ApiVersions");
    }

    #[test]
    fn a_recorded_request_is_rendered_with_its_labels_and_errors() {
        let m = Metrics::on();
        let mut facts = RequestFacts::default();
        facts.begin(120);
        facts.api = Some((0, 9));
        facts.errors = vec![6, 6];
        let times = RequestTimes {
            local: Duration::from_micros(300),
            remote: Duration::from_millis(2),
            ..RequestTimes::default()
        };
        m.request(&facts, times);
        m.request(&facts, times);
        m.topic("t").produced(100, 5);
        let text = m.render_events();
        assert!(
            text.contains(r#"strom_requests_total{request="Produce",version="9"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"strom_request_errors_total{request="Produce",error="NOT_LEADER_OR_FOLLOWER"} 4"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"strom_request_bytes_total{request="Produce"} 240"#),
            "{text}"
        );
        assert!(
            text.contains(r#"strom_topic_messages_in_total{topic="t"} 5"#),
            "{text}"
        );
        assert!(
            text.contains(r#"strom_request_remote_time_seconds_count{request="Produce"} 2"#),
            "{text}"
        );
        assert!(text.contains("# HELP strom_topic_bytes_in_total"), "{text}");
    }

    #[test]
    fn off_records_nothing() {
        let m = Metrics::off();
        let facts = RequestFacts {
            api: Some((0, 9)),
            ..RequestFacts::default()
        };
        m.request(&facts, RequestTimes::default());
        m.topic("t").produced(1, 1);
        assert_eq!(m.render_events(), "");
    }
}
