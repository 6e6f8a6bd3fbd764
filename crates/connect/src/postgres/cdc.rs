//! The PostgreSQL change data capture source, as Debezium's: every committed row change
//! of the tables a publication names becomes a record of topic
//! `<topic.prefix>.<schema>.<table>`, keyed by the primary key, its value an envelope
//! Struct (`before`, `after`, `source`, `op` c/u/d, `ts_ms`); a delete is followed by a
//! tombstone (`tombstones.on.delete`). This module owns the settings, the publication and
//! replication slot it creates, reading the slot, the records, and their source offsets.
//!
//! tokio-postgres has no replication protocol, so the slot is read with SQL:
//! `pg_logical_slot_peek_binary_changes` decodes whole committed transactions (`pgoutput`,
//! see [`super::pgoutput`]) from the slot's confirmed position without consuming them.
//! That interface cannot wait for changes, so an empty read sleeps `poll.interval.ms`
//! before the next. The slot is moved on (`pg_replication_slot_advance`) only in
//! [`SourceTask::commit`], which the framework calls once the offsets of every record
//! returned so far are stored, and only past transactions all of whose records were
//! returned. Each record's offset is its transaction's commit LSN and its position in the
//! transaction, so after a restart the changes at or before the stored offset (read
//! again because the slot had not been advanced over them) are skipped: a task stopped
//! anywhere, even inside a transaction, resumes with neither loss nor repetition beyond
//! what the framework's at-least-once delivery replays.
//!
//! Not done: the initial snapshot of existing rows (Debezium's `r` records); unchanged
//! TOASTed values are null; truncates are skipped (as Debezium's default).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::json;

use super::pgoutput::{self, Datum, Message, RelationColumn};
use super::source::{conv_of, reading_session, schema_of, text_value, Conv};
use super::sql::{ident, table_ident};
use super::{connection_config, db_error};
use crate::api::{Connector, Plugin, Props, SourceTask, SourceTaskContext, TaskFactory};
use crate::config::{ConfigDef, ConfigValue, Importance, Kind, Setting, Validator};
use crate::data::{Schema, Struct, Type, Value};
use crate::record::{Record, SourceMap, SourceRecord};
use crate::ConnectError;

/// `strom.connect.postgres.PostgresCdcSourceConnector`.
pub const SOURCE: Plugin = Plugin {
    class: "strom.connect.postgres.PostgresCdcSourceConnector",
    aliases: &["PostgresCdcSource"],
    version: env!("CARGO_PKG_VERSION"),
    connector: || Box::new(PostgresCdcConnector::default()),
    tasks: TaskFactory::Source(|| Box::new(PostgresCdcTask::default())),
};

/// Microseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

fn def() -> ConfigDef {
    super::connection_def()
        .define(
            "publication.name",
            Kind::String,
            Some("strom_publication"),
            Importance::Low,
            "The publication the slot decodes; created if missing, for table.include.list or ALL TABLES.",
        )
        .validated(Validator::NonEmpty)
        .define(
            "slot.name",
            Kind::String,
            Some("strom"),
            Importance::Medium,
            "The logical replication slot (pgoutput) to read; created if missing.",
        )
        .validated(Validator::NonEmpty)
        .define(
            "table.include.list",
            Kind::List,
            Some(""),
            Importance::High,
            "The tables (schema.table or table) whose changes are captured; empty: every table.",
        )
        .define(
            "topic.prefix",
            Kind::String,
            Some("strom"),
            Importance::High,
            "Topics are <topic.prefix>.<schema>.<table>.",
        )
        .validated(Validator::NonEmpty)
        .define(
            "poll.interval.ms",
            Kind::Int,
            Some("500"),
            Importance::Medium,
            "How long to wait after a read of the slot found no changes.",
        )
        .validated(Validator::AtLeast(1.0))
        .define(
            "max.batch.size",
            Kind::Int,
            Some("2048"),
            Importance::Low,
            "Changes to decode per read of the slot (whole transactions are read).",
        )
        .validated(Validator::AtLeast(1.0))
        .define(
            "tombstones.on.delete",
            Kind::Boolean,
            Some("true"),
            Importance::High,
            "Whether a delete is followed by a tombstone (a null value with the same key).",
        )
        .define(
            "replica.identity.full",
            Kind::Boolean,
            Some("false"),
            Importance::Medium,
            "Whether to set REPLICA IDENTITY FULL on the published tables, so updates and deletes carry the whole old row.",
        )
}

#[derive(Debug, Clone)]
struct Settings {
    connection: tokio_postgres::Config,
    publication: String,
    slot: String,
    tables: Vec<String>,
    prefix: String,
    poll: Duration,
    batch: usize,
    tombstones: bool,
    identity_full: bool,
}

impl Settings {
    fn parse(props: &Props) -> Result<Settings, ConnectError> {
        let parsed = def().parse(props)?;
        let string = |k: &str| match parsed.get(k) {
            Some(Setting::String(s)) => s.clone(),
            _ => String::new(),
        };
        let flag = |k: &str, d: bool| match parsed.get(k) {
            Some(Setting::Boolean(b)) => *b,
            _ => d,
        };
        let long = |k: &str, d: i64| match parsed.get(k) {
            Some(Setting::Long(n)) => *n,
            _ => d,
        };
        let slot = string("slot.name");
        if !slot
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(ConnectError::Config(format!(
                "Invalid value {slot} for configuration slot.name: \
                 a slot name may contain only lower case letters, numbers and the underscore"
            )));
        }
        Ok(Settings {
            connection: connection_config(
                &string("connection.url"),
                props.get("connection.user").map(String::as_str),
                props.get("connection.password").map(String::as_str),
            )?,
            publication: string("publication.name"),
            slot,
            tables: match parsed.get("table.include.list") {
                Some(Setting::List(l)) => l.clone(),
                _ => Vec::new(),
            },
            prefix: string("topic.prefix"),
            poll: Duration::from_millis(long("poll.interval.ms", 500).max(1) as u64),
            batch: long("max.batch.size", 2048).max(1) as usize,
            tombstones: flag("tombstones.on.delete", true),
            identity_full: flag("replica.identity.full", false),
        })
    }
}

/// The CDC connector: one task, as a slot has one reader.
#[derive(Debug, Default)]
pub struct PostgresCdcConnector {
    props: Props,
}

#[async_trait]
impl Connector for PostgresCdcConnector {
    fn config_def(&self) -> ConfigDef {
        def()
    }

    fn validate(&self, props: &Props) -> Vec<ConfigValue> {
        super::validate_with(def(), props, || match Settings::parse(props) {
            Ok(_) => Vec::new(),
            Err(e) => {
                let text = e.to_string();
                let setting = if text.contains("slot.name") {
                    "slot.name"
                } else {
                    "connection.url"
                };
                vec![(setting, text)]
            }
        })
    }

    async fn start(&mut self, props: Props) -> Result<(), ConnectError> {
        Settings::parse(&props)?;
        self.props = props;
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Vec<Props> {
        vec![self.props.clone()]
    }
}

/// A relation as the last Relation message described it, with its schemas.
struct Relation {
    schema: String,
    table: String,
    columns: Vec<RelationColumn>,
    convs: Vec<Conv>,
    /// Indexes of the primary key columns (else the replica identity's).
    key: Vec<usize>,
    topic: String,
    key_schema: Option<Arc<Schema>>,
    row: Arc<Schema>,
    envelope: Arc<Schema>,
}

/// The transaction being decoded.
#[derive(Debug, Clone, Copy)]
struct Tx {
    final_lsn: u64,
    xid: u32,
    /// Commit time, ms since the epoch.
    ts_ms: i64,
    /// Changes seen so far in it.
    changes: u64,
}

fn lsn_of(text: &str) -> Result<u64, ConnectError> {
    let (hi, lo) = text
        .split_once('/')
        .ok_or_else(|| ConnectError::Connect(format!("{text:?} is not an LSN")))?;
    let part = |s: &str| {
        u64::from_str_radix(s, 16)
            .map_err(|_| ConnectError::Connect(format!("{text:?} is not an LSN")))
    };
    Ok(part(hi)? << 32 | part(lo)?)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn started() -> ConnectError {
    ConnectError::Connect("the task is not started".into())
}

/// Reads the slot and turns the changes into records.
#[derive(Default)]
pub struct PostgresCdcTask {
    settings: Option<Settings>,
    client: Option<tokio_postgres::Client>,
    database: String,
    relations: HashMap<u32, Relation>,
    partition: SourceMap,
    source_schema: Option<Arc<Schema>>,
    /// The position (commit LSN, event) of the last record returned or stored.
    emitted: Option<(u64, u64)>,
    /// The end LSN of the latest transaction all of whose records were returned.
    safe_end: u64,
    /// Where the slot was advanced to.
    advanced: u64,
    /// Whether records were returned since the last commit.
    uncommitted: bool,
    /// Changes to ask a read for (grows past what is skipped when the slot lags).
    limit: usize,
}

impl PostgresCdcTask {
    async fn ensure_client(&mut self) -> Result<(), ConnectError> {
        let settings = self.settings.as_ref().ok_or_else(started)?;
        reading_session(&mut self.client, &settings.connection).await
    }

    /// Creates the publication and the slot if missing; the slot's confirmed position.
    async fn set_up(&mut self) -> Result<u64, ConnectError> {
        self.ensure_client().await?;
        let s = self.settings.as_ref().ok_or_else(started)?;
        let c = self.client.as_ref().ok_or_else(started)?;
        let one =
            |rows: Vec<tokio_postgres::Row>, what: &str| -> Result<Option<String>, ConnectError> {
                match rows.first() {
                    None => Ok(None),
                    Some(r) => r
                        .try_get::<_, Option<String>>(0)
                        .map_err(|e| ConnectError::Connect(format!("{what}: {e}"))),
                }
            };
        let level = one(
            c.query("SELECT current_setting('wal_level')", &[])
                .await
                .map_err(|e| db_error("reading wal_level", e))?,
            "wal_level",
        )?
        .unwrap_or_default();
        if level != "logical" {
            return Err(ConnectError::Config(format!(
                "change data capture needs the server's wal_level=logical; it is {level}"
            )));
        }
        self.database = one(
            c.query("SELECT current_database()::text", &[])
                .await
                .map_err(|e| db_error("reading the database name", e))?,
            "current_database",
        )?
        .unwrap_or_default();
        let tables = s
            .tables
            .iter()
            .map(|t| table_ident(t))
            .collect::<Vec<_>>()
            .join(", ");
        let publication = c
            .query(
                "SELECT puballtables FROM pg_publication WHERE pubname = $1::text",
                &[&s.publication],
            )
            .await
            .map_err(|e| db_error("looking up the publication", e))?;
        let all_tables = match publication.first() {
            Some(r) => Some(
                r.try_get::<_, bool>(0)
                    .map_err(|e| ConnectError::Connect(format!("reading the publication: {e}")))?,
            ),
            None => None,
        };
        let target = if s.tables.is_empty() {
            "ALL TABLES".to_string()
        } else {
            format!("TABLE {tables}")
        };
        match all_tables {
            None => {
                tracing::info!(publication = %s.publication, %target, "creating the publication");
                c.batch_execute(&format!(
                    "CREATE PUBLICATION {} FOR {target}",
                    ident(&s.publication)
                ))
                .await
                .map_err(|e| db_error("creating the publication", e))?;
            }
            Some(false) if !s.tables.is_empty() => {
                c.batch_execute(&format!(
                    "ALTER PUBLICATION {} SET TABLE {tables}",
                    ident(&s.publication)
                ))
                .await
                .map_err(|e| db_error("setting the publication's tables", e))?;
            }
            Some(_) => {}
        }
        if s.identity_full {
            let rows = c
                .query(
                    "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1::text",
                    &[&s.publication],
                )
                .await
                .map_err(|e| db_error("listing the published tables", e))?;
            for r in rows {
                let (Ok(schema), Ok(table)) =
                    (r.try_get::<_, String>(0), r.try_get::<_, String>(1))
                else {
                    continue;
                };
                c.batch_execute(&format!(
                    "ALTER TABLE {}.{} REPLICA IDENTITY FULL",
                    ident(&schema),
                    ident(&table)
                ))
                .await
                .map_err(|e| db_error("setting REPLICA IDENTITY FULL", e))?;
            }
        }
        let slot_query =
            "SELECT plugin::text, confirmed_flush_lsn::text FROM pg_replication_slots \
                          WHERE slot_name = $1::text AND database = current_database()";
        let mut slot = c
            .query(slot_query, &[&s.slot])
            .await
            .map_err(|e| db_error("looking up the replication slot", e))?;
        if slot.is_empty() {
            tracing::info!(slot = %s.slot, "creating the logical replication slot");
            if self.emitted.is_some() {
                tracing::warn!(slot = %s.slot, "the slot is gone while offsets are stored: changes made since are lost");
            }
            c.query(
                "SELECT pg_create_logical_replication_slot($1::text::name, 'pgoutput')",
                &[&s.slot],
            )
            .await
            .map_err(|e| db_error("creating the replication slot", e))?;
            slot = c
                .query(slot_query, &[&s.slot])
                .await
                .map_err(|e| db_error("looking up the replication slot", e))?;
        }
        let row = slot
            .first()
            .ok_or_else(|| ConnectError::Connect(format!("the slot {} is not there", s.slot)))?;
        let plugin: Option<String> = row
            .try_get(0)
            .map_err(|e| ConnectError::Connect(format!("reading the slot: {e}")))?;
        if plugin.as_deref() != Some("pgoutput") {
            return Err(ConnectError::Config(format!(
                "Invalid value {} for configuration slot.name: the slot decodes with {}, not pgoutput",
                s.slot,
                plugin.unwrap_or_default()
            )));
        }
        let confirmed: Option<String> = row
            .try_get(1)
            .map_err(|e| ConnectError::Connect(format!("reading the slot: {e}")))?;
        confirmed
            .as_deref()
            .map(lsn_of)
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Takes in a Relation message: the columns, the key and the schemas.
    async fn relation(
        &mut self,
        id: u32,
        namespace: String,
        name: String,
        columns: Vec<RelationColumn>,
    ) -> Result<(), ConnectError> {
        let settings = self.settings.as_ref().ok_or_else(started)?;
        let client = self.client.as_ref().ok_or_else(started)?;
        let pk = client
            .query(
                "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
                 ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = $1::int8::oid AND i.indisprimary",
                &[&i64::from(id)],
            )
            .await
            .map_err(|e| db_error("reading the primary key", e))?;
        let pk: Vec<String> = pk.iter().filter_map(|r| r.try_get(0).ok()).collect();
        let mut key: Vec<usize> = (0..columns.len())
            .filter(|&i| pk.contains(&columns[i].name))
            .collect();
        if key.is_empty() {
            key = (0..columns.len()).filter(|&i| columns[i].key).collect();
        }
        let convs: Vec<Conv> = columns
            .iter()
            .map(|c| conv_of(c.type_oid, c.typmod))
            .collect();
        let topic = format!("{}.{namespace}.{name}", settings.prefix);
        let row = Arc::new(
            Schema::structure(
                columns
                    .iter()
                    .zip(&convs)
                    .map(|(c, conv)| (c.name.as_str(), schema_of(*conv, true)))
                    .collect(),
            )
            .named(&format!("{topic}.Value")),
        );
        let key_schema = (!key.is_empty()).then(|| {
            Arc::new(
                Schema::structure(
                    key.iter()
                        .map(|&i| (columns[i].name.as_str(), schema_of(convs[i], false)))
                        .collect(),
                )
                .named(&format!("{topic}.Key")),
            )
        });
        let source = self.source_schema().clone();
        let envelope = Arc::new(
            Schema::structure(vec![
                ("before", (*row).clone().optional()),
                ("after", (*row).clone().optional()),
                ("source", (*source).clone()),
                ("op", Schema::of(Type::String)),
                ("ts_ms", Schema::of(Type::Int64).optional()),
            ])
            .named(&format!("{topic}.Envelope")),
        );
        self.relations.insert(
            id,
            Relation {
                schema: namespace,
                table: name,
                columns,
                convs,
                key,
                topic,
                key_schema,
                row,
                envelope,
            },
        );
        Ok(())
    }

    fn source_schema(&mut self) -> Arc<Schema> {
        self.source_schema
            .get_or_insert_with(|| {
                Arc::new(
                    Schema::structure(vec![
                        ("version", Schema::of(Type::String)),
                        ("connector", Schema::of(Type::String)),
                        ("name", Schema::of(Type::String)),
                        ("ts_ms", Schema::of(Type::Int64)),
                        ("db", Schema::of(Type::String)),
                        ("schema", Schema::of(Type::String)),
                        ("table", Schema::of(Type::String)),
                        ("txId", Schema::of(Type::Int64)),
                        ("lsn", Schema::of(Type::Int64)),
                    ])
                    .named("strom.connect.postgres.Source"),
                )
            })
            .clone()
    }

    /// Moves the slot on to `to` (an end LSN of a transaction whose records are stored).
    async fn advance(&mut self, to: u64) -> Result<(), ConnectError> {
        if to <= self.advanced {
            return Ok(());
        }
        self.ensure_client().await?;
        let s = self.settings.as_ref().ok_or_else(started)?;
        let c = self.client.as_ref().ok_or_else(started)?;
        c.query(
            "SELECT pg_replication_slot_advance($1::text::name, $2::text::pg_lsn)",
            &[&s.slot, &pgoutput::lsn_text(to)],
        )
        .await
        .map_err(|e| db_error("advancing the replication slot", e))?;
        tracing::debug!(slot = %s.slot, lsn = %pgoutput::lsn_text(to), "advanced the slot");
        self.advanced = to;
        self.limit = s.batch;
        Ok(())
    }

    /// Reads the slot once: the records of changes not returned before, and whether the
    /// read may have stopped short of what the slot holds.
    async fn read(&mut self) -> Result<(Vec<SourceRecord>, bool), ConnectError> {
        self.ensure_client().await?;
        let s = self.settings.clone().ok_or_else(started)?;
        let c = self.client.as_ref().ok_or_else(started)?;
        let limit = i32::try_from(self.limit).unwrap_or(i32::MAX);
        let rows = c
            .query(
                "SELECT (lsn - '0/0'::pg_lsn)::int8, data FROM pg_logical_slot_peek_binary_changes(\
                 $1::text::name, NULL, $2::int4, 'proto_version', '1', 'publication_names', $3::text)",
                &[&s.slot, &limit, &s.publication],
            )
            .await
            .map_err(|e| db_error("reading the replication slot", e))?;
        let more = rows.len() >= self.limit;
        let mut out = Vec::new();
        let mut tx: Option<Tx> = None;
        let mut skipped = 0;
        for (n, row) in rows.iter().enumerate() {
            let lsn: i64 = row
                .try_get(0)
                .map_err(|e| ConnectError::Data(format!("reading a change: {e}")))?;
            let data: &[u8] = row
                .try_get(1)
                .map_err(|e| ConnectError::Data(format!("reading a change: {e}")))?;
            let message = pgoutput::decode(data)?;
            let (relation, op, old, new) = match message {
                Message::Begin {
                    final_lsn,
                    timestamp,
                    xid,
                } => {
                    tx = Some(Tx {
                        final_lsn,
                        xid,
                        ts_ms: (timestamp + PG_EPOCH_MICROS).div_euclid(1000),
                        changes: 0,
                    });
                    continue;
                }
                Message::Commit { end_lsn, .. } => {
                    self.safe_end = self.safe_end.max(end_lsn);
                    tx = None;
                    continue;
                }
                Message::Relation {
                    id,
                    namespace,
                    name,
                    columns,
                    ..
                } => {
                    self.relation(id, namespace, name, columns).await?;
                    continue;
                }
                Message::Origin | Message::Type | Message::Other => continue,
                Message::Truncate { relations } => {
                    tracing::info!(?relations, "a truncate is not captured");
                    if let Some(t) = tx.as_mut() {
                        t.changes += 1;
                    }
                    continue;
                }
                Message::Insert { relation, new } => (relation, "c", None, Some(new)),
                Message::Update { relation, old, new } => (relation, "u", old, Some(new)),
                Message::Delete { relation, old } => (relation, "d", Some(old), None),
            };
            let t = tx.as_mut().ok_or_else(|| {
                ConnectError::Data("a pgoutput change outside a transaction".into())
            })?;
            let event = t.changes * 2;
            t.changes += 1;
            let t = *t;
            let done = |e: u64| self.emitted.is_some_and(|at| (t.final_lsn, e) <= at);
            let change_done = done(event);
            let tombstone_wanted = op == "d" && s.tombstones;
            if change_done && (!tombstone_wanted || done(event + 1)) {
                skipped = n + 1;
                continue;
            }
            let source_schema = self.source_schema();
            let rel = self.relations.get(&relation).ok_or_else(|| {
                ConnectError::Data(format!(
                    "a change of relation {relation} before its description"
                ))
            })?;
            let image = |tuple: &[Datum], only_key: bool| -> Result<Value, ConnectError> {
                let mut st = Struct::new(rel.row.clone());
                for (i, d) in tuple.iter().enumerate().take(rel.columns.len()) {
                    if only_key && !rel.key.contains(&i) {
                        continue;
                    }
                    st.values[i] = datum(rel, i, d)?;
                }
                Ok(Value::Struct(st))
            };
            let after = match &new {
                Some(tuple) => image(tuple, false)?,
                None => Value::Null,
            };
            let before = match (&old, &new) {
                (Some((b'O', tuple)), _) => image(tuple, false)?,
                (Some((_, tuple)), _) => image(tuple, true)?,
                (None, Some(tuple)) if op == "u" => image(tuple, true)?,
                _ => Value::Null,
            };
            let key_tuple = match (&old, &new) {
                (_, Some(n)) => n,
                (Some((_, o)), None) => o,
                (None, None) => continue,
            };
            let key = match &rel.key_schema {
                None => Value::Null,
                Some(ks) => {
                    let mut k = Struct::new(ks.clone());
                    for (j, &i) in rel.key.iter().enumerate() {
                        k.values[j] = match key_tuple.get(i) {
                            Some(d) => datum(rel, i, d)?,
                            None => Value::Null,
                        };
                    }
                    Value::Struct(k)
                }
            };
            let source = Struct {
                schema: source_schema,
                values: vec![
                    Value::String(env!("CARGO_PKG_VERSION").into()),
                    Value::String("postgresql".into()),
                    Value::String(s.prefix.clone()),
                    Value::Int64(t.ts_ms),
                    Value::String(self.database.clone()),
                    Value::String(rel.schema.clone()),
                    Value::String(rel.table.clone()),
                    Value::Int64(i64::from(t.xid)),
                    Value::Int64(lsn),
                ],
            };
            let envelope = Struct {
                schema: rel.envelope.clone(),
                values: vec![
                    before,
                    after,
                    Value::Struct(source),
                    Value::String(op.into()),
                    Value::Int64(now_ms()),
                ],
            };
            let offset = |e: u64| {
                let mut m = SourceMap::new();
                m.insert("lsn_commit".into(), json!(t.final_lsn));
                m.insert("event".into(), json!(e));
                m.insert("txId".into(), json!(t.xid));
                m.insert("lsn".into(), json!(lsn));
                m
            };
            let mut record = Record::new(rel.topic.clone()).with_key(rel.key_schema.clone(), key);
            record.timestamp = Some(t.ts_ms);
            if !change_done {
                out.push(SourceRecord {
                    record: record
                        .clone()
                        .with_value(Some(rel.envelope.clone()), Value::Struct(envelope)),
                    source_partition: self.partition.clone(),
                    source_offset: offset(event),
                });
                self.emitted = Some((t.final_lsn, event));
            }
            if tombstone_wanted {
                out.push(SourceRecord {
                    record,
                    source_partition: self.partition.clone(),
                    source_offset: offset(event + 1),
                });
                self.emitted = Some((t.final_lsn, event + 1));
            }
        }
        // What was skipped is read again until the slot is advanced: ask for more, and
        // for twice as much when a read that may have stopped short gave nothing new.
        self.limit = if out.is_empty() && more {
            (rows.len() + s.batch).max(self.limit.saturating_mul(2))
        } else {
            skipped + s.batch
        };
        Ok((out, more))
    }
}

/// A column's value in a tuple.
fn datum(rel: &Relation, i: usize, d: &Datum) -> Result<Value, ConnectError> {
    match d {
        Datum::Null | Datum::Unchanged => Ok(Value::Null),
        Datum::Text(t) => text_value(rel.convs[i], t).map_err(|e| {
            ConnectError::Data(format!(
                "{}.{} column {}: {e}",
                rel.schema, rel.table, rel.columns[i].name
            ))
        }),
    }
}

#[async_trait]
impl SourceTask for PostgresCdcTask {
    async fn start(
        &mut self,
        context: SourceTaskContext,
        props: Props,
    ) -> Result<(), ConnectError> {
        let settings = Settings::parse(&props)?;
        self.limit = settings.batch;
        self.partition = SourceMap::new();
        self.partition
            .insert("server".into(), json!(settings.prefix.clone()));
        self.emitted = match context.offsets.offset(&self.partition) {
            Some(o) => {
                let n = |k: &str| {
                    o.get(k).and_then(serde_json::Value::as_u64).ok_or_else(|| {
                        ConnectError::Connect(format!("the stored offset has no {k}: {o:?}"))
                    })
                };
                Some((n("lsn_commit")?, n("event")?))
            }
            None => None,
        };
        self.settings = Some(settings);
        let confirmed = self.set_up().await?;
        self.advanced = confirmed;
        self.safe_end = confirmed;
        tracing::info!(
            confirmed = %pgoutput::lsn_text(confirmed),
            resume_after = ?self.emitted,
            "reading the replication slot"
        );
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let wait = self.settings.as_ref().ok_or_else(started)?.poll;
        loop {
            let (records, more) = match self.read().await {
                Ok(r) => r,
                Err(e) => {
                    if let ConnectError::Retriable(_) = e {
                        self.client = None;
                    }
                    return Err(e);
                }
            };
            if !records.is_empty() {
                self.uncommitted = true;
                return Ok(records);
            }
            // Nothing returned is waiting to be stored: the slot may move on now.
            if !self.uncommitted && self.safe_end > self.advanced {
                self.advance(self.safe_end).await?;
            }
            if !more {
                break;
            }
        }
        tokio::time::sleep(wait).await;
        Ok(Vec::new())
    }

    async fn commit(&mut self) -> Result<(), ConnectError> {
        // Every record returned so far has its offset stored.
        self.uncommitted = false;
        let to = self.safe_end;
        self.advance(to).await
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.client = None;
        Ok(())
    }
}
