//! Kafka Connect's REST API, on axum: the same paths, verbs, JSON shapes and status codes
//! as Kafka's (`GET /connectors`, `POST /connectors`, `.../status`, `.../pause`,
//! `.../offsets`, `/connector-plugins/{plugin}/config/validate` ...), so curl scripts and
//! Connect tooling work unchanged. Errors are `{"error_code": <HTTP status>, "message":
//! "..."}` as Kafka's; the herder's typed errors are mapped to statuses here only.

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::api::Props;
use crate::herder::{HerderError, Herding, Route};
use crate::worker::Target;

struct Rest {
    herder: Arc<dyn Herding>,
    cluster_id: Option<String>,
}

type Shared = Extract<Arc<Rest>>;

/// An error answer, in Kafka's shape.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.0.as_u16(), "message": self.1});
        (self.0, Json(body)).into_response()
    }
}

impl From<HerderError> for Failure {
    fn from(e: HerderError) -> Failure {
        let status = match &e {
            HerderError::NotFound(_) => StatusCode::NOT_FOUND,
            HerderError::AlreadyExists(_) => StatusCode::CONFLICT,
            HerderError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HerderError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure(status, e.to_string())
    }
}

type Answer = Result<Response, Failure>;

fn bad(message: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, message.into())
}

/// The request body as JSON.
fn body_json(body: &Bytes) -> Result<Value, Failure> {
    serde_json::from_slice(body).map_err(|e| bad(format!("Request body is not valid JSON: {e}")))
}

/// A JSON object of settings as properties; numbers and booleans are taken as their text,
/// as Kafka's Jackson mapping does.
fn props_of(v: &Value) -> Result<Props, Failure> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad("Connector configuration must be a JSON object of strings"))?;
    obj.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => v.to_string(),
                _ => return Err(bad(format!("The value of {k} must be a string"))),
            };
            Ok((k.clone(), text))
        })
        .collect()
}

/// The `key=value` pairs of a query string (repeated keys kept).
fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

fn flag(q: &Option<String>, name: &str) -> Result<bool, Failure> {
    match query_pairs(q).into_iter().find(|(k, _)| k == name) {
        None => Ok(false),
        Some((_, v)) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some((_, v)) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some((_, v)) => Err(bad(format!(
            "Invalid value {v} for {name}: must be true or false"
        ))),
    }
}

fn ok(status: StatusCode, body: Value) -> Answer {
    Ok((status, Json(body)).into_response())
}

async fn root(Extract(rest): Shared) -> Answer {
    ok(
        StatusCode::OK,
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "commit": "strom",
            "kafka_cluster_id": rest.cluster_id,
        }),
    )
}

async fn list(Extract(rest): Shared, RawQuery(q): RawQuery) -> Answer {
    let names = rest.herder.connectors().await;
    let expand: Vec<String> = query_pairs(&q)
        .into_iter()
        .filter(|(k, _)| k == "expand")
        .map(|(_, v)| v)
        .collect();
    if expand.is_empty() {
        return ok(StatusCode::OK, json!(names));
    }
    let mut out = serde_json::Map::new();
    for name in names {
        let mut one = serde_json::Map::new();
        if expand.iter().any(|e| e == "status") {
            if let Ok(s) = rest.herder.status(&name).await {
                one.insert("status".into(), s.to_json());
            }
        }
        if expand.iter().any(|e| e == "info") {
            if let Ok(i) = rest.herder.info(&name).await {
                one.insert("info".into(), i.to_json());
            }
        }
        out.insert(name, Value::Object(one));
    }
    ok(StatusCode::OK, Value::Object(out))
}

async fn create(Extract(rest): Shared, body: Bytes) -> Answer {
    let body = body_json(&body)?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| bad("Connector name cannot be empty"))?
        .to_string();
    let config = props_of(body.get("config").unwrap_or(&Value::Null))?;
    let (_, info) = rest.herder.put(&name, config, false).await?;
    ok(StatusCode::CREATED, info.to_json())
}

async fn info(Extract(rest): Shared, Path(name): Path<String>) -> Answer {
    ok(StatusCode::OK, rest.herder.info(&name).await?.to_json())
}

async fn delete(Extract(rest): Shared, Path(name): Path<String>) -> Answer {
    rest.herder.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn config(Extract(rest): Shared, Path(name): Path<String>) -> Answer {
    ok(StatusCode::OK, json!(rest.herder.info(&name).await?.config))
}

async fn put_config(Extract(rest): Shared, Path(name): Path<String>, body: Bytes) -> Answer {
    let config = props_of(&body_json(&body)?)?;
    let (created, info) = rest.herder.put(&name, config, true).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    ok(status, info.to_json())
}

async fn status(Extract(rest): Shared, Path(name): Path<String>) -> Answer {
    ok(StatusCode::OK, rest.herder.status(&name).await?.to_json())
}

async fn tasks(Extract(rest): Shared, Path(name): Path<String>) -> Answer {
    let configs = rest.herder.task_configs(&name).await?;
    let list: Vec<Value> = configs
        .into_iter()
        .enumerate()
        .map(|(i, c)| json!({"id": {"connector": name, "task": i}, "config": c}))
        .collect();
    ok(StatusCode::OK, json!(list))
}

async fn task_status(Extract(rest): Shared, Path((name, task)): Path<(String, i32)>) -> Answer {
    let status = rest.herder.status(&name).await?;
    let one = status.task_json(task).ok_or_else(|| {
        Failure(
            StatusCode::NOT_FOUND,
            format!("No status found for task {name}-{task}"),
        )
    })?;
    ok(StatusCode::OK, one)
}

async fn task_restart(Extract(rest): Shared, Path((name, task)): Path<(String, i32)>) -> Answer {
    rest.herder.restart_task(&name, task).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn pause(Extract(rest): Shared, Path(name): Path<String>) -> Answer {
    rest.herder.set_target(&name, Target::Paused).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn resume(Extract(rest): Shared, Path(name): Path<String>) -> Answer {
    rest.herder.set_target(&name, Target::Started).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn stop(Extract(rest): Shared, Path(name): Path<String>) -> Answer {
    rest.herder.set_target(&name, Target::Stopped).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn restart(Extract(rest): Shared, Path(name): Path<String>, RawQuery(q): RawQuery) -> Answer {
    let include_tasks = flag(&q, "includeTasks")?;
    let only_failed = flag(&q, "onlyFailed")?;
    rest.herder
        .restart(&name, include_tasks, only_failed)
        .await?;
    if include_tasks || only_failed {
        // KIP-745: the extended form answers with the status.
        ok(
            StatusCode::ACCEPTED,
            rest.herder.status(&name).await?.to_json(),
        )
    } else {
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}

async fn offsets(Extract(rest): Shared, Path(name): Path<String>) -> Answer {
    ok(StatusCode::OK, rest.herder.offsets(&name).await?)
}

async fn alter_offsets(Extract(rest): Shared, Path(name): Path<String>, body: Bytes) -> Answer {
    let body = body_json(&body)?;
    let list = body
        .get("offsets")
        .ok_or_else(|| bad("Offsets must be specified under 'offsets'"))?;
    let message = rest.herder.change_offsets(&name, Some(list)).await?;
    ok(StatusCode::OK, json!({ "message": message }))
}

async fn reset_offsets(Extract(rest): Shared, Path(name): Path<String>) -> Answer {
    let message = rest.herder.change_offsets(&name, None).await?;
    ok(StatusCode::OK, json!({ "message": message }))
}

async fn plugins(Extract(rest): Shared, RawQuery(q): RawQuery) -> Answer {
    let connectors_only = query_pairs(&q)
        .into_iter()
        .find(|(k, _)| k == "connectorsOnly")
        .is_none_or(|(_, v)| !v.eq_ignore_ascii_case("false"));
    let mut list: Vec<Value> = rest
        .herder
        .worker()
        .plugins
        .all()
        .iter()
        .map(|p| json!({"class": p.class, "type": p.kind().name(), "version": p.version}))
        .collect();
    if !connectors_only {
        for (class, kind) in crate::transforms::plugins() {
            list.push(json!({"class": class, "type": kind, "version": env!("CARGO_PKG_VERSION")}));
        }
        for class in [
            "org.apache.kafka.connect.json.JsonConverter",
            "org.apache.kafka.connect.storage.StringConverter",
            "org.apache.kafka.connect.converters.ByteArrayConverter",
        ] {
            list.push(
                json!({"class": class, "type": "converter", "version": env!("CARGO_PKG_VERSION")}),
            );
        }
    }
    ok(StatusCode::OK, json!(list))
}

async fn validate(Extract(rest): Shared, Path(plugin): Path<String>, body: Bytes) -> Answer {
    let props = props_of(&body_json(&body)?)?;
    if let Some(class) = props.get("connector.class") {
        let named = rest.herder.worker().plugins.find(class);
        let asked = rest.herder.worker().plugins.find(&plugin);
        if named.map(|p| p.class) != asked.map(|p| p.class) {
            return Err(bad(format!(
                "Included connector type {class} does not match request type {plugin}"
            )));
        }
    }
    let validation = rest.herder.validate(&plugin, &props)?;
    ok(StatusCode::OK, validation.to_json())
}

/// Marks a request one worker forwarded to the leader, so it is never forwarded twice.
const FORWARDED: &str = "x-strom-forwarded";

/// Kafka's answer while the group rebalances.
const REBALANCING: &str =
    "Cannot complete request because of a conflicting operation (e.g. worker rebalance)";

/// Serves a change here, forwards it to the group's leader, or answers 409 while the
/// group rebalances. Reads and validation are served by every worker.
async fn route_changes(
    Extract(rest): Shared,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let read = request.method() == axum::http::Method::GET
        || request.uri().path().starts_with("/connector-plugins");
    if read {
        return next.run(request).await;
    }
    match rest.herder.route() {
        Route::Here => next.run(request).await,
        Route::Rebalancing => Failure(StatusCode::CONFLICT, REBALANCING.into()).into_response(),
        Route::Leader(_) if request.headers().contains_key(FORWARDED) => {
            // The leadership moved while the request was on its way.
            Failure(StatusCode::CONFLICT, REBALANCING.into()).into_response()
        }
        Route::Leader(url) => match forward(&url, request).await {
            Ok(answer) => answer,
            Err(e) => Failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Error trying to forward REST request to the leader at {url}: {e}"),
            )
            .into_response(),
        },
    }
}

/// Sends `request` as it came to the worker at `url` and answers with its answer.
async fn forward(url: &str, request: axum::extract::Request) -> Result<Response, String> {
    use http_body_util::{BodyExt, Full};
    let authority = url
        .trim_end_matches('/')
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url} is not an http:// URL"))?
        .to_string();
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .map_err(|e| e.to_string())?;
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut out = hyper::Request::builder()
        .method(parts.method)
        .uri(path)
        .header(hyper::header::HOST, &authority)
        .header(FORWARDED, "1");
    if let Some(t) = parts.headers.get(hyper::header::CONTENT_TYPE) {
        out = out.header(hyper::header::CONTENT_TYPE, t);
    }
    let out = out.body(Full::new(body)).map_err(|e| e.to_string())?;
    let answer = sender.send_request(out).await.map_err(|e| e.to_string())?;
    let status = answer.status();
    let kind = answer.headers().get(hyper::header::CONTENT_TYPE).cloned();
    let bytes = answer
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let mut response = (status, bytes).into_response();
    if let Some(kind) = kind {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, kind);
    }
    Ok(response)
}

/// The routes, over this herder.
pub fn router(herder: Arc<dyn Herding>, cluster_id: Option<String>) -> Router {
    let rest = Arc::new(Rest { herder, cluster_id });
    Router::new()
        .route("/", get(root))
        .route("/connectors", get(list).post(create))
        .route("/connectors/{name}", get(info).delete(delete))
        .route("/connectors/{name}/config", get(config).put(put_config))
        .route("/connectors/{name}/status", get(status))
        .route("/connectors/{name}/tasks", get(tasks))
        .route("/connectors/{name}/tasks/{task}/status", get(task_status))
        .route(
            "/connectors/{name}/tasks/{task}/restart",
            post(task_restart),
        )
        .route("/connectors/{name}/pause", put(pause))
        .route("/connectors/{name}/resume", put(resume))
        .route("/connectors/{name}/stop", put(stop))
        .route("/connectors/{name}/restart", post(restart))
        .route(
            "/connectors/{name}/offsets",
            get(offsets).patch(alter_offsets).delete(reset_offsets),
        )
        .route("/connector-plugins", get(plugins))
        .route("/connector-plugins/{plugin}/config/validate", put(validate))
        .fallback(|| async { Failure(StatusCode::NOT_FOUND, "HTTP 404 Not Found".into()) })
        .layer(axum::middleware::from_fn_with_state(
            rest.clone(),
            route_changes,
        ))
        .with_state(rest)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    herder: Arc<dyn Herding>,
    cluster_id: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(herder, cluster_id))
        .with_graceful_shutdown(shutdown)
        .await
}
