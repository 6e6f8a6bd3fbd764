//! The PostgreSQL source connector in query mode, with the settings of Confluent's JDBC
//! source: each table of `table.whitelist` (or every table) is read by a query every
//! `poll.interval.ms` and each row becomes a record of topic `topic.prefix` + table, its
//! value a Struct of the table's columns. `mode` says which rows a query takes: all of
//! them (`bulk`), those past the stored `incrementing` column value, those past the stored
//! `timestamp`, or past the stored (timestamp, incrementing) pair. This module owns the
//! settings, the queries, the source offsets (Confluent's `incrementing`, `timestamp`,
//! `timestamp_nanos`), and the PostgreSQL column types as Connect schemas, with the text
//! values the server sends parsed into Connect values (shared with [`super::cdc`]).
//!
//! Incrementing and timestamp+incrementing queries are ordered by their offset columns
//! and limited to `batch.max.rows`, so a restart from the stored offset neither loses nor
//! repeats rows. A timestamp query is not limited (a timestamp is not unique): it reads
//! everything up to now minus `timestamp.delay.interval.ms`, and a row whose timestamp a
//! later row shares carries the offset before that timestamp, so a crash between the two
//! repeats them rather than loses one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;

use super::sql::{ident, table_ident};
use super::{connect, connection_config, db_error};
use crate::api::{Connector, Plugin, Props, SourceTask, SourceTaskContext, TaskFactory};
use crate::config::{ConfigDef, ConfigValue, Importance, Kind, Setting, Validator};
use crate::data::{logical, Schema, Struct, Type, Value};
use crate::record::{Record, SourceMap, SourceRecord};
use crate::ConnectError;

/// `strom.connect.postgres.PostgresSourceConnector`; Confluent's JDBC source class name is
/// accepted too, so its configs run as they are.
pub const SOURCE: Plugin = Plugin {
    class: "strom.connect.postgres.PostgresSourceConnector",
    aliases: &[
        "PostgresSource",
        "io.confluent.connect.jdbc.JdbcSourceConnector",
        "JdbcSourceConnector",
    ],
    version: env!("CARGO_PKG_VERSION"),
    connector: || Box::new(PostgresSourceConnector::default()),
    tasks: TaskFactory::Source(|| Box::new(PostgresSourceTask::default())),
};

/// The task setting naming a task's tables (as Confluent's `tables`).
pub const TABLES: &str = "tables";

/// The longest a poll waits with nothing to do, so pause and stop take effect.
const IDLE_WAIT: Duration = Duration::from_secs(1);

const MODES: [&str; 4] = [
    "bulk",
    "incrementing",
    "timestamp",
    "timestamp+incrementing",
];

fn def() -> ConfigDef {
    super::connection_def()
        .define(
            "mode",
            Kind::String,
            None,
            Importance::High,
            "The mode for updating a table each time it is polled: bulk, incrementing, timestamp or timestamp+incrementing.",
        )
        .validated(Validator::OneOf(MODES.iter().map(|m| m.to_string()).collect()))
        .define(
            "incrementing.column.name",
            Kind::String,
            Some(""),
            Importance::Medium,
            "The name of the strictly incrementing column to use to detect new rows.",
        )
        .define(
            "timestamp.column.name",
            Kind::List,
            Some(""),
            Importance::Medium,
            "Comma separated list of one or more timestamp columns to detect new or modified rows using the COALESCE SQL function.",
        )
        .define(
            "table.whitelist",
            Kind::List,
            Some(""),
            Importance::Medium,
            "List of tables to include in copying (schema.table or table); empty: every table.",
        )
        .define(
            "topic.prefix",
            Kind::String,
            None,
            Importance::High,
            "Prefix to prepend to table names to generate the name of the Kafka topic to publish data to.",
        )
        .define(
            "poll.interval.ms",
            Kind::Int,
            Some("5000"),
            Importance::High,
            "Frequency in ms to poll for new data in each table.",
        )
        .validated(Validator::AtLeast(1.0))
        .define(
            "batch.max.rows",
            Kind::Int,
            Some("100"),
            Importance::Low,
            "Maximum number of rows to include in a single batch when polling for new data.",
        )
        .validated(Validator::AtLeast(1.0))
        .define(
            "timestamp.delay.interval.ms",
            Kind::Long,
            Some("0"),
            Importance::High,
            "How long to wait after a row with certain timestamp appears before we include it in the result.",
        )
        .validated(Validator::AtLeast(0.0))
}

/// Which rows a query takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bulk,
    Incrementing,
    Timestamp,
    TimestampIncrementing,
}

impl Mode {
    fn incrementing(self) -> bool {
        matches!(self, Mode::Incrementing | Mode::TimestampIncrementing)
    }

    fn timestamp(self) -> bool {
        matches!(self, Mode::Timestamp | Mode::TimestampIncrementing)
    }
}

/// The parsed settings.
#[derive(Debug, Clone)]
struct Settings {
    connection: tokio_postgres::Config,
    mode: Mode,
    incrementing: String,
    timestamps: Vec<String>,
    tables: Vec<String>,
    prefix: String,
    poll: Duration,
    batch: usize,
    delay_ms: i64,
}

fn string(parsed: &std::collections::BTreeMap<String, Setting>, name: &str) -> String {
    match parsed.get(name) {
        Some(Setting::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn list(parsed: &std::collections::BTreeMap<String, Setting>, name: &str) -> Vec<String> {
    match parsed.get(name) {
        Some(Setting::List(l)) => l.clone(),
        _ => Vec::new(),
    }
}

fn long(parsed: &std::collections::BTreeMap<String, Setting>, name: &str, default: i64) -> i64 {
    match parsed.get(name) {
        Some(Setting::Long(n)) => *n,
        _ => default,
    }
}

impl Settings {
    /// The settings, without checking the ones that depend on each other.
    fn read(props: &Props) -> Result<Settings, ConnectError> {
        let parsed = def().parse(props)?;
        let connection = connection_config(
            &string(&parsed, "connection.url"),
            props.get("connection.user").map(String::as_str),
            props.get("connection.password").map(String::as_str),
        )?;
        let mode = match string(&parsed, "mode").as_str() {
            "bulk" => Mode::Bulk,
            "incrementing" => Mode::Incrementing,
            "timestamp" => Mode::Timestamp,
            _ => Mode::TimestampIncrementing,
        };
        Ok(Settings {
            connection,
            mode,
            incrementing: string(&parsed, "incrementing.column.name"),
            timestamps: list(&parsed, "timestamp.column.name"),
            tables: list(&parsed, "table.whitelist"),
            prefix: string(&parsed, "topic.prefix"),
            poll: Duration::from_millis(long(&parsed, "poll.interval.ms", 5000).max(1) as u64),
            batch: long(&parsed, "batch.max.rows", 100).max(1) as usize,
            delay_ms: long(&parsed, "timestamp.delay.interval.ms", 0).max(0),
        })
    }

    /// The settings that do not go together, each with the setting at fault.
    fn conflicts(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let name = MODES[self.mode as usize];
        if self.mode.incrementing() && self.incrementing.is_empty() {
            out.push((
                "incrementing.column.name",
                format!(
                    "Invalid value  for configuration incrementing.column.name: \
                     mode {name} requires an incrementing column (incrementing.column.name)"
                ),
            ));
        }
        if self.mode.timestamp() && self.timestamps.is_empty() {
            out.push((
                "timestamp.column.name",
                format!(
                    "Invalid value  for configuration timestamp.column.name: \
                     mode {name} requires at least one timestamp column (timestamp.column.name)"
                ),
            ));
        }
        out
    }

    /// The settings, or the first problem.
    fn parse(props: &Props) -> Result<Settings, ConnectError> {
        let s = Settings::read(props)?;
        match s.conflicts().into_iter().next() {
            Some((_, why)) => Err(ConnectError::Config(why)),
            None => Ok(s),
        }
    }
}

/// The query source connector: the tables, split over the tasks.
#[derive(Debug, Default)]
pub struct PostgresSourceConnector {
    props: Props,
    tables: Vec<String>,
}

#[async_trait]
impl Connector for PostgresSourceConnector {
    fn config_def(&self) -> ConfigDef {
        def()
    }

    fn validate(&self, props: &Props) -> Vec<ConfigValue> {
        super::validate_with(def(), props, || match Settings::read(props) {
            Ok(s) => s.conflicts(),
            Err(e) => vec![("connection.url", e.to_string())],
        })
    }

    async fn start(&mut self, props: Props) -> Result<(), ConnectError> {
        let settings = Settings::parse(&props)?;
        self.tables = if settings.tables.is_empty() {
            let client = connect(&settings.connection).await?;
            let rows = client
                .query(
                    "SELECT n.nspname::text || '.' || c.relname::text FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
                     AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                     AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1",
                    &[],
                )
                .await
                .map_err(|e| db_error("listing the tables", e))?;
            rows.iter()
                .filter_map(|r| r.try_get::<_, String>(0).ok())
                .collect()
        } else {
            settings.tables.clone()
        };
        tracing::info!(tables = ?self.tables, "PostgreSQL source tables");
        self.props = props;
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<Props> {
        // Contiguous groups whose sizes differ by one at most, as Kafka's groupPartitions.
        let n = max_tasks.max(1).min(self.tables.len());
        let mut out = Vec::with_capacity(n);
        let mut start = 0;
        for i in 0..n {
            let size = self.tables.len() / n + usize::from(i < self.tables.len() % n);
            let mut props = self.props.clone();
            props.insert(TABLES.into(), self.tables[start..start + size].join(","));
            out.push(props);
            start += size;
        }
        out
    }
}

/// How a column's text value becomes a Connect value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conv {
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Bool,
    Text,
    Bytes,
    Date,
    Time,
    Timestamp,
    /// numeric(p, s) with p <= 38: a Decimal of scale s.
    Decimal(i32),
}

/// The conversion of a column of type `oid` (with its `typmod`); types Connect has no
/// type for (json, uuid, interval, arrays, unconstrained numeric) are strings.
pub(crate) fn conv_of(oid: u32, typmod: i32) -> Conv {
    match oid {
        21 => Conv::Int16,
        23 => Conv::Int32,
        20 => Conv::Int64,
        700 => Conv::Float32,
        701 => Conv::Float64,
        16 => Conv::Bool,
        17 => Conv::Bytes,
        1082 => Conv::Date,
        1083 => Conv::Time,
        1114 | 1184 => Conv::Timestamp,
        1700 if typmod >= 4 => {
            let precision = (typmod - 4) >> 16;
            let scale = (typmod - 4) & 0xffff;
            if precision <= 38 && scale <= precision {
                Conv::Decimal(scale)
            } else {
                Conv::Text
            }
        }
        _ => Conv::Text,
    }
}

/// The Connect schema of a column.
pub(crate) fn schema_of(conv: Conv, optional: bool) -> Schema {
    let s = match conv {
        Conv::Int16 => Schema::of(Type::Int16),
        Conv::Int32 => Schema::of(Type::Int32),
        Conv::Int64 => Schema::of(Type::Int64),
        Conv::Float32 => Schema::of(Type::Float32),
        Conv::Float64 => Schema::of(Type::Float64),
        Conv::Bool => Schema::of(Type::Boolean),
        Conv::Text => Schema::of(Type::String),
        Conv::Bytes => Schema::of(Type::Bytes),
        Conv::Date => Schema::of(Type::Int32).named(logical::DATE),
        Conv::Time => Schema::of(Type::Int32).named(logical::TIME),
        Conv::Timestamp => Schema::of(Type::Int64).named(logical::TIMESTAMP),
        Conv::Decimal(scale) => Schema::decimal(scale),
    };
    if optional {
        s.optional()
    } else {
        s
    }
}

/// A column's value as PostgreSQL's text output writes it (ISO dates, UTC, hex bytea),
/// as a Connect value; why not when it does not parse.
pub(crate) fn text_value(conv: Conv, text: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("{text:?} is not a valid {what}");
    Ok(match conv {
        Conv::Int16 => Value::Int16(text.parse().map_err(|_| bad("int2"))?),
        Conv::Int32 => Value::Int32(text.parse().map_err(|_| bad("int4"))?),
        Conv::Int64 => Value::Int64(text.parse().map_err(|_| bad("int8"))?),
        Conv::Float32 => Value::Float32(float(text).ok_or_else(|| bad("float4"))? as f32),
        Conv::Float64 => Value::Float64(float(text).ok_or_else(|| bad("float8"))?),
        Conv::Bool => match text {
            "t" | "true" => Value::Boolean(true),
            "f" | "false" => Value::Boolean(false),
            _ => return Err(bad("boolean")),
        },
        Conv::Text => Value::String(text.to_string()),
        Conv::Bytes => Value::Bytes(hex_bytea(text).ok_or_else(|| bad("bytea"))?),
        Conv::Date => Value::Int32(date_days(text).ok_or_else(|| bad("date"))?),
        Conv::Time => Value::Int32(
            time_micros(text)
                .map(|us| (us / 1000) as i32)
                .ok_or_else(|| bad("time"))?,
        ),
        Conv::Timestamp => Value::Int64(
            timestamp_micros(text)
                .map(|us| us.div_euclid(1000))
                .ok_or_else(|| bad("timestamp"))?,
        ),
        Conv::Decimal(scale) => {
            Value::Bytes(decimal_bytes(text, scale).ok_or_else(|| bad("numeric"))?)
        }
    })
}

fn float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

/// `\x0a1b` (bytea's hex output).
fn hex_bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?.as_bytes();
    if hex.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    hex.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// `YYYY-MM-DD` as days since the epoch (`infinity` as the extremes).
fn date_days(text: &str) -> Option<i32> {
    match text {
        "infinity" => return Some(i32::MAX),
        "-infinity" => return Some(i32::MIN),
        _ => {}
    }
    let mut parts = text.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    i32::try_from(days_from_civil(y, m, d)).ok()
}

/// `HH:MM:SS[.ffffff]` as microseconds since midnight.
fn time_micros(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let seconds = parts.next()?;
    let (s, frac) = seconds.split_once('.').unwrap_or((seconds, ""));
    let s: i64 = s.parse().ok()?;
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micros: i64 = format!("{frac:0<6}").parse().ok()?;
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + micros)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM[:SS]]]` (timestamp, or timestamptz as written
/// in some zone) as microseconds since the epoch, UTC; `infinity` as the extremes.
pub(crate) fn timestamp_micros(text: &str) -> Option<i64> {
    match text {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let (date, rest) = text.split_once(' ')?;
    let days = i64::from(date_days(date)?);
    // The zone, if any, starts at the first sign after the seconds.
    let zone_at = rest.find(['+', '-']);
    let (time, zone) = match zone_at {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let mut micros = days * 86_400_000_000 + time_micros(time)?;
    if !zone.is_empty() {
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let mut secs = 0i64;
        for (i, part) in zone[1..].split(':').enumerate() {
            let n: i64 = part.parse().ok()?;
            secs += n * [3600, 60, 1].get(i)?;
        }
        micros -= sign * secs * 1_000_000;
    }
    Some(micros)
}

/// numeric text (`-12.50`) as a Decimal's unscaled two's-complement bytes at `scale`.
fn decimal_bytes(text: &str, scale: i32) -> Option<Vec<u8>> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = usize::try_from(scale).ok()?;
    if frac.len() > scale || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut unscaled: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        unscaled = unscaled
            .checked_mul(10)?
            .checked_add(i128::from(b - b'0'))?;
    }
    for _ in frac.len()..scale {
        unscaled = unscaled.checked_mul(10)?;
    }
    if negative {
        unscaled = -unscaled;
    }
    // The shortest big-endian two's complement, as Java's BigInteger.toByteArray.
    let bytes = unscaled.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    Some(bytes[start..].to_vec())
}

/// A column of a table, as the catalog describes it.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    pub conv: Conv,
    pub optional: bool,
}

/// Where a table was read up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Offset {
    incrementing: Option<i64>,
    /// Microseconds since the epoch.
    timestamp: Option<i64>,
}

impl Offset {
    /// Confluent's offset map: `incrementing`, and the timestamp as `timestamp` (ms) and
    /// `timestamp_nanos` (the nanoseconds within its second).
    fn map(self) -> SourceMap {
        let mut m = SourceMap::new();
        if let Some(i) = self.incrementing {
            m.insert("incrementing".into(), json!(i));
        }
        if let Some(us) = self.timestamp {
            m.insert("timestamp".into(), json!(us.div_euclid(1000)));
            m.insert(
                "timestamp_nanos".into(),
                json!(us.rem_euclid(1_000_000) * 1000),
            );
        }
        m
    }

    fn from_map(m: &SourceMap) -> Result<Offset, ConnectError> {
        let number = |k: &str| -> Result<Option<i64>, ConnectError> {
            match m.get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                    ConnectError::Connect(format!("the stored offset's {k} is not a number: {v}"))
                }),
            }
        };
        let timestamp = match (number("timestamp")?, number("timestamp_nanos")?) {
            (Some(ms), nanos) => {
                let seconds = ms.div_euclid(1000);
                let within = nanos.unwrap_or(ms.rem_euclid(1000) * 1_000_000) / 1000;
                Some(seconds * 1_000_000 + within)
            }
            (None, _) => None,
        };
        Ok(Offset {
            incrementing: number("incrementing")?,
            timestamp,
        })
    }
}

/// One table a task reads.
struct Table {
    /// `{"protocol": "1", "table": "schema.table"}`.
    partition: SourceMap,
    topic: String,
    schema: Arc<Schema>,
    columns: Vec<Column>,
    /// The query, its parameters decided by the mode and whether there is an offset.
    select: String,
    select_from: String,
    inc_index: Option<usize>,
    /// Whether the query has the timestamp as an extra last column.
    with_ts: bool,
    offset: Offset,
    next_poll: Instant,
    pending: VecDeque<SourceRecord>,
}

/// Reads the tables of its task configuration.
#[derive(Default)]
pub struct PostgresSourceTask {
    settings: Option<Settings>,
    client: Option<tokio_postgres::Client>,
    tables: Vec<Table>,
    /// The table to look at first next time (round robin).
    next: usize,
}

/// Opens the reading session if there is none (or it was lost): bytea as hex and ISO
/// dates, the text forms the sources parse.
pub(super) async fn reading_session(
    client: &mut Option<tokio_postgres::Client>,
    config: &tokio_postgres::Config,
) -> Result<(), ConnectError> {
    if client.as_ref().is_none_or(|c| c.is_closed()) {
        let opened = connect(config).await?;
        opened
            .batch_execute("SET bytea_output = 'hex'; SET DateStyle = 'ISO, YMD'")
            .await
            .map_err(|e| db_error("setting up the session", e))?;
        *client = Some(opened);
    }
    Ok(())
}

fn started() -> ConnectError {
    ConnectError::Connect("the task is not started".into())
}

impl PostgresSourceTask {
    /// Opens the session if there is none (or it was lost).
    async fn ensure_client(&mut self) -> Result<(), ConnectError> {
        let settings = self.settings.as_ref().ok_or_else(started)?;
        reading_session(&mut self.client, &settings.connection).await
    }

    /// Looks up a table of the configuration and builds its query.
    async fn table(
        &mut self,
        name: &str,
        context: &SourceTaskContext,
    ) -> Result<Table, ConnectError> {
        self.ensure_client().await?;
        let client = self.client.as_ref().ok_or_else(started)?;
        let found = client
            .query(
                "SELECT n.nspname::text, c.relname::text, c.oid::int8 FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1::text)",
                &[&table_ident(name)],
            )
            .await
            .map_err(|e| db_error("looking up the table", e))?;
        let row = found
            .first()
            .ok_or_else(|| ConnectError::Connect(format!("the table {name} does not exist")))?;
        let get = |i: usize| -> Result<String, ConnectError> {
            row.try_get::<_, String>(i)
                .map_err(|e| ConnectError::Connect(format!("reading the catalog: {e}")))
        };
        let (schema_name, table_name) = (get(0)?, get(1)?);
        let oid: i64 = row
            .try_get(2)
            .map_err(|e| ConnectError::Connect(format!("reading the catalog: {e}")))?;
        let columns = table_columns(client, oid).await?;
        let settings = self.settings.as_ref().ok_or_else(started)?;
        let mode = settings.mode;
        let column = |wanted: &str, setting: &str| -> Result<usize, ConnectError> {
            columns
                .iter()
                .position(|c| c.name == wanted)
                .ok_or_else(|| {
                    ConnectError::Config(format!(
                        "Invalid value {wanted} for configuration {setting}: \
                     the table {schema_name}.{table_name} has no column {wanted}"
                    ))
                })
        };
        let inc_index = if mode.incrementing() {
            let i = column(&settings.incrementing, "incrementing.column.name")?;
            if !matches!(columns[i].conv, Conv::Int16 | Conv::Int32 | Conv::Int64) {
                return Err(ConnectError::Config(format!(
                    "Invalid value {} for configuration incrementing.column.name: \
                     the incrementing column must be an integer column",
                    settings.incrementing
                )));
            }
            Some(i)
        } else {
            None
        };
        let mut ts_parts = Vec::new();
        if mode.timestamp() {
            for t in &settings.timestamps {
                let i = column(t, "timestamp.column.name")?;
                if !matches!(columns[i].conv, Conv::Timestamp | Conv::Date) {
                    return Err(ConnectError::Config(format!(
                        "Invalid value {t} for configuration timestamp.column.name: \
                         the timestamp column must be a timestamp, timestamptz or date column"
                    )));
                }
                ts_parts.push(format!("t.{}", ident(t)));
            }
        }
        let ts_expr = match ts_parts.len() {
            0 => String::new(),
            1 => ts_parts.remove(0),
            _ => format!("COALESCE({})", ts_parts.join(", ")),
        };
        let full = format!("{}.{}", ident(&schema_name), ident(&table_name));
        let mut select = columns
            .iter()
            .map(|c| format!("{}::text", ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", ");
        if mode.timestamp() {
            select.push_str(&format!(", (({ts_expr})::timestamp)::text"));
        }
        // Conditions and ordering name the table's columns through the alias `t`: bare
        // names would be the selected text columns.
        let select_from = format!("SELECT {select} FROM {full} AS t");
        let partition = {
            let mut p = SourceMap::new();
            p.insert("protocol".into(), json!("1"));
            p.insert("table".into(), json!(format!("{schema_name}.{table_name}")));
            p
        };
        let offset = match context.offsets.offset(&partition) {
            Some(stored) => Offset::from_map(&stored)?,
            None => Offset::default(),
        };
        tracing::info!(table = %full, ?offset, "reading the table");
        let fields: Vec<(&str, Schema)> = columns
            .iter()
            .map(|c| (c.name.as_str(), schema_of(c.conv, c.optional)))
            .collect();
        let schema = Arc::new(Schema::structure(fields).named(&table_name));
        Ok(Table {
            partition,
            topic: format!("{}{table_name}", settings.prefix),
            schema,
            columns,
            select: ts_expr,
            select_from,
            inc_index,
            with_ts: mode.timestamp(),
            offset,
            next_poll: Instant::now(),
            pending: VecDeque::new(),
        })
    }

    /// Runs the query of table `t`, queueing its rows as records.
    async fn query(&mut self, t: usize) -> Result<(), ConnectError> {
        let settings = self.settings.clone().ok_or_else(started)?;
        self.ensure_client().await?;
        let client = self.client.as_ref().ok_or_else(started)?;
        let table = &self.tables[t];
        let ts = &table.select;
        let inc = table
            .inc_index
            .map(|i| format!("t.{}", ident(&table.columns[i].name)))
            .unwrap_or_default();
        let lower = "(TIMESTAMP 'epoch' + $1::int8 * INTERVAL '1 microsecond')";
        let upper = "(CURRENT_TIMESTAMP - $2::int8 * INTERVAL '1 millisecond')";
        let limit = settings.batch;
        let o = table.offset;
        let (sql, params): (String, Vec<i64>) = match settings.mode {
            Mode::Bulk => (table.select_from.clone(), vec![]),
            Mode::Incrementing => (
                format!(
                    "{} WHERE {inc} > $1::int8 ORDER BY {inc} ASC LIMIT {limit}",
                    table.select_from
                ),
                // Confluent's start: rows past -1.
                vec![o.incrementing.unwrap_or(-1)],
            ),
            Mode::Timestamp => match o.timestamp {
                Some(us) => (
                    format!(
                        "{} WHERE {ts} > {lower} AND {ts} < {upper} ORDER BY {ts} ASC",
                        table.select_from
                    ),
                    vec![us, settings.delay_ms],
                ),
                None => (
                    format!(
                        "{} WHERE {ts} < {} ORDER BY {ts} ASC",
                        table.select_from,
                        upper.replace("$2", "$1")
                    ),
                    vec![settings.delay_ms],
                ),
            },
            Mode::TimestampIncrementing => match (o.timestamp, o.incrementing) {
                (Some(us), i) => (
                    format!(
                        "{} WHERE {ts} < {upper} AND ({ts} > {lower} OR ({ts} = {lower} AND {inc} > $3::int8)) \
                         ORDER BY {ts}, {inc} ASC LIMIT {limit}",
                        table.select_from
                    ),
                    vec![us, settings.delay_ms, i.unwrap_or(-1)],
                ),
                (None, _) => (
                    format!(
                        "{} WHERE {ts} < {} ORDER BY {ts}, {inc} ASC LIMIT {limit}",
                        table.select_from,
                        upper.replace("$2", "$1")
                    ),
                    vec![settings.delay_ms],
                ),
            },
        };
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let rows = client
            .query(&sql, &refs)
            .await
            .map_err(|e| db_error(&format!("reading {}", table.partition["table"]), e))?;
        let n = rows.len();
        let table = &mut self.tables[t];
        let mut records = Vec::with_capacity(n);
        let mut offsets = Vec::with_capacity(n);
        for row in &rows {
            let mut value = Struct::new(table.schema.clone());
            let mut offset = table.offset;
            for (i, c) in table.columns.iter().enumerate() {
                let text: Option<&str> = row
                    .try_get(i)
                    .map_err(|e| ConnectError::Data(format!("column {}: {e}", c.name)))?;
                let v = match text {
                    None => Value::Null,
                    Some(s) => text_value(c.conv, s)
                        .map_err(|e| ConnectError::Data(format!("column {}: {e}", c.name)))?,
                };
                if Some(i) == table.inc_index {
                    offset.incrementing = match v {
                        Value::Int16(n) => Some(n.into()),
                        Value::Int32(n) => Some(n.into()),
                        Value::Int64(n) => Some(n),
                        _ => offset.incrementing,
                    };
                }
                value.values[i] = v;
            }
            if table.with_ts {
                let text: Option<&str> = row
                    .try_get(table.columns.len())
                    .map_err(|e| ConnectError::Data(format!("the timestamp: {e}")))?;
                offset.timestamp = text.and_then(timestamp_micros).or(offset.timestamp);
            }
            records.push(value);
            offsets.push(offset);
        }
        // A timestamp shared with the next row is not a position to resume from: such a
        // row carries the offset before its timestamp (the group is read again instead).
        if settings.mode == Mode::Timestamp {
            let mut before = table.offset;
            for i in 0..offsets.len() {
                let shared = offsets
                    .get(i + 1)
                    .is_some_and(|next| next.timestamp == offsets[i].timestamp);
                let own = offsets[i];
                if shared {
                    offsets[i] = before;
                } else {
                    before = own;
                }
            }
        }
        if let Some(last) = offsets.last() {
            table.offset = match settings.mode {
                // The last row's own position, whatever it carried.
                Mode::Timestamp => Offset {
                    timestamp: offsets.iter().filter_map(|o| o.timestamp).max(),
                    ..*last
                },
                _ => *last,
            };
        }
        for (value, offset) in records.into_iter().zip(offsets) {
            table.pending.push_back(SourceRecord {
                record: Record::new(table.topic.clone())
                    .with_value(Some(table.schema.clone()), Value::Struct(value)),
                source_partition: table.partition.clone(),
                source_offset: if settings.mode == Mode::Bulk {
                    SourceMap::new()
                } else {
                    offset.map()
                },
            });
        }
        // A full batch means more may be there: the table is read again at once.
        let full = matches!(
            settings.mode,
            Mode::Incrementing | Mode::TimestampIncrementing
        ) && n >= limit;
        table.next_poll = if full {
            Instant::now()
        } else {
            Instant::now() + settings.poll
        };
        Ok(())
    }
}

/// The columns of table `oid`, in order.
pub(crate) async fn table_columns(
    client: &tokio_postgres::Client,
    oid: i64,
) -> Result<Vec<Column>, ConnectError> {
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid::int8, a.atttypmod, a.attnotnull FROM pg_attribute a \
             WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(|e| db_error("reading the table's columns", e))?;
    rows.iter()
        .map(|r| {
            let catalog = |e: tokio_postgres::Error| {
                ConnectError::Connect(format!("reading the catalog: {e}"))
            };
            let type_oid: i64 = r.try_get(1).map_err(catalog)?;
            let typmod: i32 = r.try_get(2).map_err(catalog)?;
            let not_null: bool = r.try_get(3).map_err(catalog)?;
            Ok(Column {
                name: r.try_get(0).map_err(catalog)?,
                conv: conv_of(u32::try_from(type_oid).unwrap_or(0), typmod),
                optional: !not_null,
            })
        })
        .collect()
}

#[async_trait]
impl SourceTask for PostgresSourceTask {
    async fn start(
        &mut self,
        context: SourceTaskContext,
        props: Props,
    ) -> Result<(), ConnectError> {
        let settings = Settings::parse(&props)?;
        let names: Vec<String> = match props.get(TABLES) {
            Some(t) => t
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            None => settings.tables.clone(),
        };
        if names.is_empty() {
            return Err(ConnectError::Config(
                "Invalid value  for configuration tables: the task has no tables".into(),
            ));
        }
        self.settings = Some(settings);
        self.tables.clear();
        for name in names {
            let table = self.table(&name, &context).await?;
            self.tables.push(table);
        }
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let batch = self.settings.as_ref().ok_or_else(started)?.batch;
        let n = self.tables.len();
        for round in 0..2 {
            // Rows already read go first, a batch of one table at a time.
            for k in 0..n {
                let t = (self.next + k) % n;
                if !self.tables[t].pending.is_empty() {
                    self.next = (t + 1) % n;
                    let pending = &mut self.tables[t].pending;
                    let take = batch.min(pending.len());
                    return Ok(pending.drain(..take).collect());
                }
            }
            if round == 1 {
                break;
            }
            // Then the first table whose poll is due is read.
            let now = Instant::now();
            let due = (0..n)
                .map(|k| (self.next + k) % n)
                .find(|&t| self.tables[t].next_poll <= now);
            match due {
                Some(t) => {
                    if let Err(e) = self.query(t).await {
                        if let ConnectError::Retriable(_) = e {
                            self.client = None; // reconnect on the next poll
                        }
                        return Err(e);
                    }
                }
                None => break,
            }
        }
        let now = Instant::now();
        let wait = self
            .tables
            .iter()
            .map(|t| t.next_poll.saturating_duration_since(now))
            .min()
            .unwrap_or(IDLE_WAIT)
            .min(IDLE_WAIT);
        tokio::time::sleep(wait).await;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_values_parse_as_postgresql_writes_them() {
        assert_eq!(
            text_value(Conv::Timestamp, "1970-01-01 00:00:01.5"),
            Ok(Value::Int64(1500))
        );
        assert_eq!(
            timestamp_micros("2024-02-29 12:00:00.000001+02"),
            Some(1_709_200_800_000_001)
        );
        assert_eq!(
            timestamp_micros("2024-02-29 12:00:00+05:30"),
            Some(1_709_188_200_000_000)
        );
        assert_eq!(text_value(Conv::Date, "1969-12-31"), Ok(Value::Int32(-1)));
        assert_eq!(
            text_value(Conv::Date, "2000-03-01"),
            Ok(Value::Int32(11_017))
        );
        assert_eq!(
            text_value(Conv::Time, "01:00:00.25"),
            Ok(Value::Int32(3_600_250))
        );
        assert_eq!(
            text_value(Conv::Bytes, "\\x00ff10"),
            Ok(Value::Bytes(vec![0, 255, 16]))
        );
        assert_eq!(
            text_value(Conv::Decimal(2), "-1.5"),
            Ok(Value::Bytes(vec![0xff, 0x6a]))
        );
        assert_eq!(
            text_value(Conv::Decimal(2), "128.00"),
            Ok(Value::Bytes(vec![0x32, 0x00]))
        );
        assert_eq!(
            text_value(Conv::Decimal(0), "127"),
            Ok(Value::Bytes(vec![0x7f]))
        );
        assert_eq!(
            text_value(Conv::Decimal(0), "128"),
            Ok(Value::Bytes(vec![0, 0x80]))
        );
        assert!(text_value(Conv::Decimal(1), "1.25").is_err());
        assert!(text_value(Conv::Int32, "x").is_err());
        assert_eq!(text_value(Conv::Bool, "t"), Ok(Value::Boolean(true)));
    }

    #[test]
    fn offsets_round_trip_in_confluents_keys() {
        let o = Offset {
            incrementing: Some(7),
            timestamp: Some(1_700_000_000_123_456),
        };
        let m = o.map();
        assert_eq!(m["timestamp"], json!(1_700_000_000_123i64));
        assert_eq!(m["timestamp_nanos"], json!(123_456_000));
        assert_eq!(Offset::from_map(&m).unwrap(), o);
    }

    #[test]
    fn numeric_type_modifiers_give_the_decimal_scale() {
        // numeric(10, 2): ((10 << 16) | 2) + 4.
        assert_eq!(conv_of(1700, (10 << 16 | 2) + 4), Conv::Decimal(2));
        assert_eq!(conv_of(1700, -1), Conv::Text);
        assert_eq!(conv_of(2950, -1), Conv::Text, "uuid is a string");
    }
}
