//! The web console's JSON API (`/api/...`) and its assets (`/`). The console is a Kafka
//! client of the cluster: it reaches it through this node's inter-broker listener, with that
//! listener's security settings, and asks what any admin tool would (Metadata,
//! DescribeLogDirs, ListOffsets, ListGroups, OffsetFetch, Fetch, Produce), so what it shows
//! is what clients see. When that listener authenticates with SASL, people sign in with
//! their own cluster credentials (HTTP basic authentication) and the console speaks as them,
//! so their ACLs apply. Changes (topics, configs, offsets, test records) are refused unless
//! `console.actions.enable` is set.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Digest as _;
use strom_client::group_admin::OffsetSpec;
use strom_client::{
    Admin, Consumer, ConsumerConfig, ConsumerRecord, Producer, ProducerConfig, ProducerRecord,
    SecurityConfig, StartAt, TopicPartition,
};

/// The console: how it reaches the cluster, what it may do, and who is signed in.
pub struct Console {
    bootstrap: Vec<String>,
    base: SecurityConfig,
    actions: bool,
    /// The view of a console without sign-in (its node's inter-broker identity).
    open: Option<Arc<Access>>,
    /// Signed-in users' views, by user name, with a digest of the password they gave.
    sessions: parking_lot::Mutex<HashMap<String, Session>>,
}

/// A signed-in user's view, with the SHA-256 of the password that opened it.
type Session = ([u8; 32], Arc<Access>);

/// One user's view of the cluster: a Kafka client with their credentials, so the brokers
/// apply their ACLs.
pub struct Access {
    admin: Admin,
    bootstrap: Vec<String>,
    security: SecurityConfig,
    actions: bool,
    /// The producer of test records, made on first use and kept.
    producer: tokio::sync::OnceCell<Producer>,
    /// When this view was made: a signed-in user's is checked again after [`SESSION_TTL`].
    made: std::time::Instant,
}

/// How long a sign-in holds before the credentials are checked with the cluster again
/// (a changed password or a deleted user then stops working).
const SESSION_TTL: Duration = Duration::from_secs(300);

impl Access {
    fn new(bootstrap: &[String], security: SecurityConfig, actions: bool) -> Arc<Access> {
        Arc::new(Access {
            admin: Admin::secured(
                bootstrap.to_vec(),
                "strom-console",
                Duration::from_secs(30),
                &security,
            ),
            bootstrap: bootstrap.to_vec(),
            security,
            actions,
            producer: tokio::sync::OnceCell::new(),
            made: std::time::Instant::now(),
        })
    }
}

impl Console {
    /// A console that talks to `bootstrap` with `security`; `actions` allows changes.
    /// When `security` authenticates with SASL, people sign in (HTTP basic authentication)
    /// and the console speaks to the cluster as them, with the same mechanism.
    pub fn new(bootstrap: Vec<String>, security: SecurityConfig, actions: bool) -> Arc<Console> {
        let open = security
            .sasl_mechanism()
            .is_none()
            .then(|| Access::new(&bootstrap, security.clone(), actions));
        Arc::new(Console {
            bootstrap,
            base: security,
            actions,
            open,
            sessions: parking_lot::Mutex::new(HashMap::new()),
        })
    }

    /// The view of whoever sent `parts`: the open one, or a signed-in user's (checked
    /// against the cluster the first time).
    async fn access(&self, parts: &axum::http::request::Parts) -> Result<Arc<Access>, Failure> {
        if let Some(open) = &self.open {
            return Ok(open.clone());
        }
        let (user, password) = basic_credentials(parts).ok_or_else(sign_in)?;
        let digest: [u8; 32] = sha2::Sha256::digest(password.as_bytes()).into();
        if let Some((d, access)) = self.sessions.lock().get(&user) {
            if *d == digest && access.made.elapsed() < SESSION_TTL {
                return Ok(access.clone());
            }
        }
        let mut security = self.base.clone();
        for (k, v) in [("sasl.username", &user), ("sasl.password", &password)] {
            security
                .set(k, v)
                .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        }
        let access = Access::new(&self.bootstrap, security, self.actions);
        // A wrong password fails here, before anything is shown (Metadata needs no ACL).
        if let Err(e) = access.admin.describe_topics(&[]).await {
            tracing::info!(%user, error = %e, "console sign-in refused");
            return Err(sign_in());
        }
        let replaced = self.sessions.lock().insert(user, (digest, access.clone()));
        if let Some((_, old)) = replaced {
            // The expired view's producer has a task of its own: end it.
            tokio::spawn(async move {
                if let Some(p) = old.producer.get() {
                    p.close().await;
                }
            });
        }
        Ok(access)
    }
}

/// 401 with a Basic challenge: the browser asks for a user name and password.
fn sign_in() -> Failure {
    Failure(
        StatusCode::UNAUTHORIZED,
        "sign in with a user of the cluster (SASL credentials)".into(),
    )
}

/// The user name and password of an `Authorization: Basic` header.
fn basic_credentials(parts: &axum::http::request::Parts) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The signed-in user's view, for a handler.
struct Signed(Arc<Access>);

impl axum::extract::FromRequestParts<Shared> for Signed {
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Shared,
    ) -> Result<Signed, Failure> {
        state.access(parts).await.map(Signed)
    }
}

type Shared = Arc<Console>;

/// An error the page shows: the Kafka error (or why the request is refused) and a status.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(
                    "Basic realm=\"Strom console\", charset=\"UTF-8\"",
                ),
            );
        }
        r
    }
}

impl From<strom_client::ClientError> for Failure {
    fn from(e: strom_client::ClientError) -> Failure {
        let status = match &e {
            strom_client::ClientError::Kafka { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::BAD_GATEWAY,
        };
        Failure(status, e.to_string())
    }
}

type Answer = Result<Json<Value>, Failure>;

fn bad(why: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, why.into())
}

fn require_actions(c: &Access) -> Result<(), Failure> {
    if c.actions {
        Ok(())
    } else {
        Err(Failure(
            StatusCode::FORBIDDEN,
            "the console is read-only: set console.actions.enable=true to allow changes".into(),
        ))
    }
}

/// The console's routes.
pub fn router(console: Shared) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(script))
        .route("/app.css", get(style))
        .route("/api/settings", get(settings))
        .route("/api/cluster", get(cluster))
        .route("/api/topics", get(topics).post(create_topic))
        .route("/api/topics/{name}", get(topic).delete(delete_topic))
        .route("/api/topics/{name}/partitions", post(add_partitions))
        .route("/api/topics/{name}/configs", post(alter_configs))
        .route("/api/topics/{name}/messages", get(messages).post(produce))
        .route("/api/topics/{name}/tail", get(tail))
        .route("/api/groups", get(groups))
        .route("/api/groups/{id}", get(group))
        .route("/api/groups/{id}/reset", post(reset_offsets))
        .with_state(console)
}

async fn index(_: Signed) -> Response {
    asset(
        "text/html; charset=utf-8",
        include_str!("../assets/index.html"),
    )
}

async fn script(_: Signed) -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    )
}

async fn style(_: Signed) -> Response {
    asset("text/css; charset=utf-8", include_str!("../assets/app.css"))
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

async fn settings(Signed(c): Signed) -> Json<Value> {
    Json(json!({ "actions_enabled": c.actions }))
}

/// Every partition's log end offset (its high watermark), asked of the leaders.
async fn end_offsets(
    admin: &Admin,
    partitions: &[TopicPartition],
) -> Result<HashMap<TopicPartition, i64>, Failure> {
    Ok(admin.offsets_of(partitions, OffsetSpec::Latest).await?)
}

/// Every partition's log start offset.
async fn start_offsets(
    admin: &Admin,
    partitions: &[TopicPartition],
) -> Result<HashMap<TopicPartition, i64>, Failure> {
    Ok(admin.offsets_of(partitions, OffsetSpec::Earliest).await?)
}

async fn cluster(Signed(c): Signed) -> Answer {
    let d = c.admin.describe_cluster().await?;
    let topics = c.admin.describe_topics(&[]).await?;
    let mut leaders: HashMap<i32, usize> = HashMap::new();
    let mut replicas: HashMap<i32, usize> = HashMap::new();
    let mut under = Vec::new();
    let mut offline = Vec::new();
    for t in &topics {
        for p in &t.partitions {
            *leaders.entry(p.leader).or_default() += 1;
            for r in &p.replicas {
                *replicas.entry(*r).or_default() += 1;
            }
            let name = json!({"topic": t.name, "partition": p.partition,
                              "leader": p.leader, "replicas": p.replicas, "isr": p.isr});
            if p.leader < 0 {
                offline.push(name);
            } else if p.under_replicated() {
                under.push(name);
            }
        }
    }
    let mut brokers = Vec::new();
    for b in &d.all_brokers {
        let disk = if b.fenced {
            None
        } else {
            c.admin
                .replica_sizes(&b.address)
                .await
                .ok()
                .map(|sizes| sizes.iter().map(|(_, _, bytes)| *bytes).sum::<i64>())
        };
        brokers.push(json!({
            "id": b.id, "address": b.address, "rack": b.rack,
            "state": if b.fenced { "fenced" } else { "active" },
            "leaders": leaders.get(&b.id).copied().unwrap_or(0),
            "replicas": replicas.get(&b.id).copied().unwrap_or(0),
            "disk_bytes": disk,
        }));
    }
    let quorum = match c.admin.describe_quorum().await {
        Ok(q) => {
            let now = now_ms();
            let replica = |r: &strom_client::QuorumReplica, role: &str| {
                json!({
                    "id": r.id, "role": if r.id == q.leader_id { "leader" } else { role },
                    "log_end_offset": r.log_end_offset,
                    "lag": if r.log_end_offset < 0 { -1 } else { (q.high_watermark - r.log_end_offset).max(0) },
                    "last_contact_ms": if r.last_fetch_timestamp < 0 { -1 } else { (now - r.last_fetch_timestamp).max(0) },
                })
            };
            json!({
                "leader": q.leader_id, "epoch": q.leader_epoch, "high_watermark": q.high_watermark,
                "replicas": q.voters.iter().map(|r| replica(r, "voter"))
                    .chain(q.observers.iter().map(|r| replica(r, "observer"))).collect::<Vec<_>>(),
            })
        }
        Err(e) => json!({ "error": e.to_string() }),
    };
    Ok(Json(json!({
        "cluster_id": d.cluster_id,
        "controller": d.controller,
        "brokers": brokers,
        "quorum": quorum,
        "under_replicated": under,
        "offline": offline,
    })))
}

async fn topics(Signed(c): Signed) -> Answer {
    let topics = c.admin.describe_topics(&[]).await?;
    let all: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| tp(t.name.as_str(), p.partition))
        })
        .collect();
    let ends = end_offsets(&c.admin, &all).await?;
    // Sizes of the leaders' replicas, from every broker's DescribeLogDirs (both need
    // DESCRIBE on the cluster: without it the sizes are left out).
    let mut sizes: HashMap<(String, i32, i32), i64> = HashMap::new();
    let brokers = c.admin.describe_cluster().await.map(|d| d.brokers);
    for (id, address) in brokers.iter().flatten() {
        if let Ok(replicas) = c.admin.replica_sizes(address).await {
            for (t, p, bytes) in replicas {
                sizes.insert((t, p, *id), bytes);
            }
        }
    }
    let sized = brokers.is_ok();
    let rows: Vec<Value> = topics
        .iter()
        .map(|t| {
            let size: i64 = t
                .partitions
                .iter()
                .filter_map(|p| sizes.get(&(t.name.clone(), p.partition, p.leader)))
                .sum();
            let records: i64 = t
                .partitions
                .iter()
                .filter_map(|p| ends.get(&tp(t.name.as_str(), p.partition)))
                .sum();
            json!({
                "name": t.name,
                "internal": t.internal,
                "partitions": t.partitions.len(),
                "replication_factor": t.partitions.first().map_or(0, |p| p.replicas.len()),
                "size_bytes": sized.then_some(size),
                "end_offsets": records,
                "under_replicated": t.partitions.iter().filter(|p| p.under_replicated()).count(),
            })
        })
        .collect();
    Ok(Json(json!(rows)))
}

async fn topic(Signed(c): Signed, Path(name): Path<String>) -> Answer {
    let topics = c.admin.describe_topics(std::slice::from_ref(&name)).await?;
    let t = topics
        .into_iter()
        .next()
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("no topic {name}")))?;
    let tps: Vec<TopicPartition> = t
        .partitions
        .iter()
        .map(|p| tp(name.as_str(), p.partition))
        .collect();
    let ends = end_offsets(&c.admin, &tps).await?;
    let starts = start_offsets(&c.admin, &tps).await?;
    let configs = c.admin.describe_topic_configs(&name).await?;
    Ok(Json(json!({
        "name": t.name,
        "internal": t.internal,
        "partitions": t.partitions.iter().map(|p| {
            let tp = tp(name.as_str(), p.partition);
            json!({
                "partition": p.partition, "leader": p.leader, "leader_epoch": p.leader_epoch,
                "replicas": p.replicas, "isr": p.isr,
                "start_offset": starts.get(&tp), "end_offset": ends.get(&tp),
            })
        }).collect::<Vec<_>>(),
        "configs": configs.iter().map(|e| json!({
            "name": e.name, "value": e.value, "source": e.source, "read_only": e.read_only,
        })).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
struct NewTopic {
    name: String,
    partitions: i32,
    replication_factor: i16,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

async fn create_topic(Signed(c): Signed, Json(t): Json<NewTopic>) -> Answer {
    require_actions(&c)?;
    let configs: Vec<(String, String)> = t.configs.into_iter().collect();
    c.admin
        .create_topic(&t.name, t.partitions, t.replication_factor, &configs)
        .await?;
    Ok(Json(json!({ "created": t.name })))
}

async fn delete_topic(Signed(c): Signed, Path(name): Path<String>) -> Answer {
    require_actions(&c)?;
    c.admin.delete_topic(&name).await?;
    Ok(Json(json!({ "deleted": name })))
}

#[derive(Deserialize)]
struct PartitionCount {
    count: i32,
}

async fn add_partitions(
    Signed(c): Signed,
    Path(name): Path<String>,
    Json(p): Json<PartitionCount>,
) -> Answer {
    require_actions(&c)?;
    c.admin.add_partitions(&name, p.count).await?;
    Ok(Json(json!({ "partitions": p.count })))
}

#[derive(Deserialize)]
struct ConfigChanges {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    delete: Vec<String>,
}

async fn alter_configs(
    Signed(c): Signed,
    Path(name): Path<String>,
    Json(ch): Json<ConfigChanges>,
) -> Answer {
    require_actions(&c)?;
    let changes: Vec<(String, Option<String>)> = ch
        .set
        .into_iter()
        .map(|(k, v)| (k, Some(v)))
        .chain(ch.delete.into_iter().map(|k| (k, None)))
        .collect();
    c.admin.alter_topic_configs(&name, &changes).await?;
    Ok(Json(json!({ "altered": changes.len() })))
}

#[derive(Deserialize)]
struct Browse {
    partition: Option<i32>,
    /// `beginning`, `end`, an offset, or `time:MILLIS`.
    from: Option<String>,
    limit: Option<usize>,
    key: Option<String>,
    contains: Option<String>,
}

/// A record as the page shows it: key and value as text (lossy) and hex, JSON when they
/// parse as JSON.
fn record_json(r: &ConsumerRecord) -> Value {
    let bytes = |b: &Option<bytes::Bytes>| match b {
        None => Value::Null,
        Some(b) => {
            let text = String::from_utf8_lossy(b).into_owned();
            let parsed: Option<Value> = serde_json::from_slice(b).ok();
            json!({
                "text": text,
                "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>(),
                "json": parsed.filter(|v| v.is_object() || v.is_array()),
                "size": b.len(),
            })
        }
    };
    json!({
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": bytes(&r.key),
        "value": bytes(&r.value),
        "headers": r.headers.iter().map(|(k, v)| json!({
            "key": k, "value": v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
        })).collect::<Vec<_>>(),
    })
}

fn consumer(c: &Access) -> Consumer {
    let mut config = ConsumerConfig {
        bootstrap_servers: c.bootstrap.clone(),
        client_id: "strom-console".into(),
        security: c.security.clone(),
        ..ConsumerConfig::default()
    };
    config.fetch_max_wait = Duration::from_millis(500);
    // A start below the log start (retention moved it) reads from the start.
    config.auto_offset_reset = StartAt::Earliest;
    Consumer::new(config)
}

fn matches(r: &ConsumerRecord, key: &Option<String>, contains: &Option<String>) -> bool {
    let has = |b: &Option<bytes::Bytes>, needle: &str| {
        b.as_ref()
            .is_some_and(|b| String::from_utf8_lossy(b).contains(needle))
    };
    key.as_deref()
        .filter(|k| !k.is_empty())
        .is_none_or(|k| has(&r.key, k))
        && contains
            .as_deref()
            .filter(|s| !s.is_empty())
            .is_none_or(|s| has(&r.value, s))
}

async fn messages(Signed(c): Signed, Path(name): Path<String>, Query(q): Query<Browse>) -> Answer {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let partition = q.partition.unwrap_or(0);
    let tp = tp(name.as_str(), partition);
    let end = *end_offsets(&c.admin, std::slice::from_ref(&tp))
        .await?
        .get(&tp)
        .ok_or_else(|| bad(format!("{name}-{partition} has no leader")))?;
    let start = match q.from.as_deref().unwrap_or("beginning") {
        "beginning" => StartAt::Earliest,
        // The last `limit` records.
        "end" => StartAt::Offset((end - limit as i64).max(0)),
        s if s.starts_with("time:") => StartAt::Timestamp(
            s[5..]
                .parse()
                .map_err(|_| bad(format!("'{s}' is not time:MILLIS")))?,
        ),
        s => StartAt::Offset(
            s.parse()
                .map_err(|_| bad(format!("'{s}' is not an offset")))?,
        ),
    };
    let mut consumer = consumer(&c);
    consumer.assign(&[(name.clone(), partition, start)]).await?;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    // Reads until `limit` matches, the end as it was, or the deadline (a filter that
    // matches little may scan far).
    while out.len() < limit && tokio::time::Instant::now() < deadline {
        if consumer.position(&name, partition).unwrap_or(0) >= end {
            break;
        }
        // poll long-polls for at most fetch_max_wait; cutting it short could drop a
        // batch it had already taken.
        let batch = consumer.poll().await?;
        for r in batch {
            if r.offset < end && matches(&r, &q.key, &q.contains) && out.len() < limit {
                out.push(record_json(&r));
            }
        }
    }
    let next = consumer.position(&name, partition);
    let _ = consumer.close().await;
    Ok(Json(json!({
        "partition": partition, "end_offset": end, "next_offset": next, "records": out,
    })))
}

/// A live tail of one partition as Server-Sent Events, one `record` event per new record,
/// for as long as the page keeps the stream open.
async fn tail(
    Signed(c): Signed,
    Path(name): Path<String>,
    Query(q): Query<Browse>,
) -> Result<Response, Failure> {
    let partition = q.partition.unwrap_or(0);
    let mut consumer = consumer(&c);
    consumer
        .assign(&[(name.clone(), partition, StartAt::Latest)])
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, std::convert::Infallible>>(64);
    tokio::spawn(async move {
        // Ends when the page goes (the send fails) or the topic does.
        let _ = tx
            .send(Ok(Event::default().event("ready").data("{}")))
            .await;
        loop {
            let batch = match consumer.poll().await {
                Ok(batch) => batch,
                Err(_) => break,
            };
            for r in batch {
                if !matches(&r, &q.key, &q.contains) {
                    continue;
                }
                let event = Event::default()
                    .event("record")
                    .data(record_json(&r).to_string());
                if tx.send(Ok(event)).await.is_err() {
                    let _ = consumer.close().await;
                    return;
                }
            }
            if tx.is_closed() {
                break;
            }
        }
        let _ = consumer.close().await;
    });
    Ok(Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[derive(Deserialize)]
struct TestRecord {
    partition: Option<i32>,
    key: Option<String>,
    value: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

async fn produce(Signed(c): Signed, Path(name): Path<String>, Json(r): Json<TestRecord>) -> Answer {
    require_actions(&c)?;
    let producer = c
        .producer
        .get_or_init(|| async {
            Producer::new(ProducerConfig {
                bootstrap_servers: c.bootstrap.clone(),
                client_id: "strom-console".into(),
                security: c.security.clone(),
                ..ProducerConfig::default()
            })
        })
        .await;
    let sent = producer
        .send(ProducerRecord {
            topic: name.clone(),
            partition: r.partition,
            key: r.key.map(bytes::Bytes::from),
            value: r.value.map(bytes::Bytes::from),
            timestamp: None,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k, Some(bytes::Bytes::from(v))))
                .collect(),
        })
        .await?;
    let meta = tokio::time::timeout(Duration::from_secs(30), sent)
        .await
        .map_err(|_| {
            Failure(
                StatusCode::GATEWAY_TIMEOUT,
                "the record was not acknowledged in 30 s".into(),
            )
        })??;
    Ok(Json(
        json!({ "partition": meta.partition, "offset": meta.offset }),
    ))
}

async fn groups(Signed(c): Signed) -> Answer {
    let listed = c.admin.list_groups().await?;
    let ids: Vec<String> = listed.iter().map(|g| g.group_id.clone()).collect();
    let described = if ids.is_empty() {
        Vec::new()
    } else {
        c.admin.describe_groups(&ids).await?
    };
    let mut rows = Vec::new();
    for g in &listed {
        let lag = total_lag(&group_offsets(&c, &g.group_id).await.unwrap_or_default());
        let members = described
            .iter()
            .find(|d| d.group_id == g.group_id)
            .map_or(0, |d| d.members.len());
        rows.push(json!({
            "group_id": g.group_id, "state": g.state, "type": g.group_type,
            "members": members, "lag": lag,
        }));
    }
    Ok(Json(json!(rows)))
}

/// The group's committed offsets with each partition's end: (partition, committed, end).
async fn group_offsets(c: &Access, id: &str) -> Result<Vec<(TopicPartition, i64, i64)>, Failure> {
    Ok(c.admin.group_lag(id).await?)
}

/// The lag those add up to (partitions whose end is unknown left out).
fn total_lag(offsets: &[(TopicPartition, i64, i64)]) -> i64 {
    offsets
        .iter()
        .filter(|(_, _, end)| *end >= 0)
        .map(|(_, committed, end)| (end - committed).max(0))
        .sum()
}

async fn group(Signed(c): Signed, Path(id): Path<String>) -> Answer {
    let d = c
        .admin
        .describe_groups(std::slice::from_ref(&id))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("no group {id}")))?;
    let offsets = group_offsets(&c, &id).await?;
    Ok(Json(json!({
        "group_id": d.group_id, "state": d.state, "type": d.group_type,
        "protocol_type": d.protocol_type, "assignor": d.assignor,
        "members": d.members.iter().map(|m| json!({
            "member_id": m.member_id, "instance_id": m.instance_id, "client_id": m.client_id,
            "host": m.host,
            "assignment": m.assignment.iter().map(|tp| format!("{}-{}", tp.0, tp.1)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "offsets": offsets.iter().map(|(tp, committed, end)| json!({
            "topic": tp.0, "partition": tp.1, "committed": committed,
            "end_offset": end, "lag": if *end < 0 { -1 } else { (end - committed).max(0) },
        })).collect::<Vec<_>>(),
        "lag": total_lag(&offsets),
    })))
}

#[derive(Deserialize)]
struct Reset {
    /// Only this topic's partitions (all the group's when absent).
    topic: Option<String>,
    /// `earliest`, `latest`, an offset, or `time:MILLIS`.
    to: String,
    #[serde(default)]
    dry_run: bool,
}

async fn reset_offsets(Signed(c): Signed, Path(id): Path<String>, Json(r): Json<Reset>) -> Answer {
    if !r.dry_run {
        require_actions(&c)?;
    }
    let current: Vec<(TopicPartition, i64, i64)> = group_offsets(&c, &id)
        .await?
        .into_iter()
        .filter(|(tp, _, _)| r.topic.as_deref().is_none_or(|t| tp.0 == t))
        .collect();
    if current.is_empty() {
        return Err(bad(format!("group {id} has no committed offsets to reset")));
    }
    let tps: Vec<TopicPartition> = current.iter().map(|(tp, _, _)| tp.clone()).collect();
    let targets: HashMap<TopicPartition, i64> = match r.to.as_str() {
        "earliest" => start_offsets(&c.admin, &tps).await?,
        "latest" => end_offsets(&c.admin, &tps).await?,
        s if s.starts_with("time:") => {
            let ms: i64 = s[5..]
                .parse()
                .map_err(|_| bad(format!("'{s}' is not time:MILLIS")))?;
            let ends = end_offsets(&c.admin, &tps).await?;
            c.admin
                .list_offsets(&tps, OffsetSpec::Timestamp(ms))
                .await?
                .into_iter()
                .map(|(tp, o)| {
                    let at = if o.offset < 0 {
                        ends.get(&tp).copied().unwrap_or(0)
                    } else {
                        o.offset
                    };
                    (tp, at)
                })
                .collect()
        }
        s => {
            let n: i64 = s.parse().map_err(|_| {
                bad(format!(
                    "'{s}' is not earliest, latest, an offset or time:MILLIS"
                ))
            })?;
            if n < 0 {
                return Err(bad("an offset is 0 or more"));
            }
            // As kafka-consumer-groups does: kept within each partition's earliest..end.
            let earliest = start_offsets(&c.admin, &tps).await?;
            let ends = end_offsets(&c.admin, &tps).await?;
            tps.iter()
                .map(|tp| {
                    let lo = earliest.get(tp).copied().unwrap_or(0);
                    let hi = ends.get(tp).copied().unwrap_or(i64::MAX).max(lo);
                    (tp.clone(), n.clamp(lo, hi))
                })
                .collect()
        }
    };
    let plan: Vec<(TopicPartition, i64, i64)> = current
        .iter()
        .map(|(tp, committed, _)| {
            (
                tp.clone(),
                *committed,
                targets.get(tp).copied().unwrap_or(*committed),
            )
        })
        .collect();
    if !r.dry_run {
        let offsets: Vec<(TopicPartition, i64)> =
            plan.iter().map(|(tp, _, to)| (tp.clone(), *to)).collect();
        c.admin.alter_group_offsets(&id, &offsets).await?;
    }
    Ok(Json(json!({
        "dry_run": r.dry_run,
        "partitions": plan.iter().map(|(tp, from, to)| json!({
            "topic": tp.0, "partition": tp.1, "current": from, "new": to,
        })).collect::<Vec<_>>(),
    })))
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    (topic.to_string(), partition)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
