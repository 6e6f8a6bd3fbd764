//! The PostgreSQL sink connector, with the settings of Confluent's JDBC sink: records with a
//! Struct value become rows of the table `table.name.format` names, inserted, upserted or
//! updated (`insert.mode`) by the primary key `pk.mode` and `pk.fields` define; a tombstone
//! deletes its row (`delete.enabled`); tables are created and given new columns from the
//! record schemas (`auto.create`, `auto.evolve`). This module owns the settings, the
//! mapping of records to rows (`write` applies them), and the offsets the task answers.
//!
//! Each `put` is one transaction: once it returns, its rows are committed, and
//! `pre_commit` answers only offsets of records whose rows are committed, so the offsets
//! the framework commits never run ahead of the table. A crash replays at most the
//! records of the transaction that did not commit, and in upsert mode the replay leaves
//! the table as it would have been.
//!
//! Rows go through a staging table in binary COPY, then one statement per table and
//! column list applies them (see [`super::sql`]). Within a `put` the records of one key
//! are applied as if one after the other: a later write of the same columns replaces an
//! earlier one, a delete drops the writes before it, and deletes run before writes; what
//! cannot be folded that way (the same key written with two column lists) is applied in
//! order, in another round of statements.
//!
//! A record that cannot become a row (no Struct value, no key where one is needed, a value
//! the table refuses) is reported to the framework's errant-record reporter, so
//! `errors.tolerance` and the dead-letter queue apply; the rest of its batch is written.
//! When the server refuses a batch for its data, the batch is split in halves under
//! savepoints until the refused records are found.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;

use super::connection_config;
use super::sql::{self, Apply, Cell};
use super::write::{Column, Layout, Op, Source, Writer};
use crate::api::{
    Connector, Plugin, Props, SinkTask, SinkTaskContext, TaskFactory, TopicPartition,
};
use crate::config::{ConfigDef, ConfigValue, Importance, Kind, Setting, Validator};
use crate::data::{Schema, Type, Value};
use crate::record::SinkRecord;
use crate::ConnectError;

/// `strom.connect.postgres.PostgresSinkConnector`; Confluent's JDBC sink class name is
/// accepted too, so its configs run as they are.
pub const SINK: Plugin = Plugin {
    class: "strom.connect.postgres.PostgresSinkConnector",
    aliases: &[
        "PostgresSink",
        "io.confluent.connect.jdbc.JdbcSinkConnector",
        "JdbcSinkConnector",
    ],
    version: env!("CARGO_PKG_VERSION"),
    connector: || Box::new(PostgresSinkConnector::default()),
    tasks: TaskFactory::Sink(|| Box::new(PostgresSinkTask::default())),
};

/// The default key column names of `pk.mode=kafka`.
const KAFKA_PK: [&str; 3] = ["__connect_topic", "__connect_partition", "__connect_offset"];

fn def() -> ConfigDef {
    super::connection_def()
        .define(
            "table.name.format",
            Kind::String,
            Some("${topic}"),
            Importance::Medium,
            "A format string for the destination table name, which may contain '${topic}' as a placeholder for the originating topic name.",
        )
        .validated(Validator::NonEmpty)
        .define(
            "insert.mode",
            Kind::String,
            Some("insert"),
            Importance::High,
            "The insertion mode to use: insert (standard INSERT), upsert (INSERT ... ON CONFLICT DO UPDATE on the primary key) or update (UPDATE of the row with the record's key).",
        )
        .validated(Validator::OneOf(
            ["insert", "upsert", "update"].map(String::from).to_vec(),
        ))
        .define(
            "pk.mode",
            Kind::String,
            Some("none"),
            Importance::High,
            "The primary key mode: none, kafka (topic, partition and offset), record_key or record_value.",
        )
        .validated(Validator::OneOf(
            ["none", "kafka", "record_key", "record_value"]
                .map(String::from)
                .to_vec(),
        ))
        .define(
            "pk.fields",
            Kind::List,
            Some(""),
            Importance::Medium,
            "List of comma-separated primary key field names. kafka: three names for topic, partition and offset (default __connect_topic,__connect_partition,__connect_offset); record_key: the key's fields (all if empty), or the one column name of a primitive key; record_value: the value's fields (all if empty).",
        )
        .define(
            "fields.whitelist",
            Kind::List,
            Some(""),
            Importance::Medium,
            "List of comma-separated record value field names to write; all when empty. The primary key fields are written regardless.",
        )
        .define(
            "auto.create",
            Kind::Boolean,
            Some("false"),
            Importance::Medium,
            "Whether to automatically create the destination table based on record schema if it is found to be missing by issuing CREATE.",
        )
        .define(
            "auto.evolve",
            Kind::Boolean,
            Some("false"),
            Importance::Medium,
            "Whether to automatically add columns in the table schema when found to be missing relative to the record schema by issuing ALTER.",
        )
        .define(
            "delete.enabled",
            Kind::Boolean,
            Some("false"),
            Importance::Medium,
            "Whether to treat null record values as deletes. Requires pk.mode to be record_key.",
        )
        .define(
            "batch.size",
            Kind::Int,
            Some("3000"),
            Importance::Medium,
            "Specifies how many records to attempt to batch together for insertion into the destination table, when possible.",
        )
        .validated(Validator::AtLeast(1.0))
}

/// How a row's primary key is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PkMode {
    None,
    /// The topic, partition and offset.
    Kafka,
    RecordKey,
    RecordValue,
}

impl PkMode {
    fn name(self) -> &'static str {
        match self {
            PkMode::None => "none",
            PkMode::Kafka => "kafka",
            PkMode::RecordKey => "record_key",
            PkMode::RecordValue => "record_value",
        }
    }
}

/// A task's settings, parsed.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    connector: String,
    pub(super) connection: tokio_postgres::Config,
    table_format: String,
    /// How writes apply (never [`Apply::Delete`]).
    pub(super) mode: Apply,
    pk_mode: PkMode,
    pk_fields: Vec<String>,
    whitelist: Vec<String>,
    pub(super) auto_create: bool,
    pub(super) auto_evolve: bool,
    delete_enabled: bool,
    pub(super) batch_size: usize,
}

impl Settings {
    /// The settings, refusing the ones that do not go together.
    fn parse(props: &Props) -> Result<Settings, ConnectError> {
        let settings = Settings::read(props)?;
        if let Some((setting, why)) = settings.conflicts().into_iter().next() {
            return Err(ConnectError::Config(format!(
                "Invalid value for configuration {setting}: {why}"
            )));
        }
        Ok(settings)
    }

    /// The settings, each checked on its own.
    fn read(props: &Props) -> Result<Settings, ConnectError> {
        let parsed = def().parse(props)?;
        let text = |k: &str| match parsed.get(k) {
            Some(Setting::String(s)) => Some(s.clone()),
            _ => None,
        };
        let list = |k: &str| match parsed.get(k) {
            Some(Setting::List(l)) => l.clone(),
            _ => Vec::new(),
        };
        let flag = |k: &str| matches!(parsed.get(k), Some(Setting::Boolean(true)));
        Ok(Settings {
            connector: props.get("name").cloned().unwrap_or_default(),
            connection: connection_config(
                &text("connection.url").unwrap_or_default(),
                text("connection.user").as_deref(),
                text("connection.password").as_deref(),
            )?,
            table_format: text("table.name.format").unwrap_or_else(|| "${topic}".into()),
            mode: match text("insert.mode").as_deref() {
                Some("upsert") => Apply::Upsert,
                Some("update") => Apply::Update,
                _ => Apply::Insert,
            },
            pk_mode: match text("pk.mode").as_deref() {
                Some("kafka") => PkMode::Kafka,
                Some("record_key") => PkMode::RecordKey,
                Some("record_value") => PkMode::RecordValue,
                _ => PkMode::None,
            },
            pk_fields: list("pk.fields"),
            whitelist: list("fields.whitelist"),
            auto_create: flag("auto.create"),
            auto_evolve: flag("auto.evolve"),
            delete_enabled: flag("delete.enabled"),
            batch_size: match parsed.get("batch.size") {
                Some(Setting::Long(n)) => usize::try_from(*n).unwrap_or(1).max(1),
                _ => 3000,
            },
        })
    }

    /// Settings that do not go together (each with the setting to blame), as Confluent's
    /// sink refuses them.
    fn conflicts(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.delete_enabled && self.pk_mode != PkMode::RecordKey {
            let why = "Delete support only works with pk.mode=record_key".to_string();
            out.push(("delete.enabled", why.clone()));
            out.push(("pk.mode", why));
        }
        if self.mode != Apply::Insert && self.pk_mode == PkMode::None {
            let mode = if self.mode == Apply::Upsert {
                "upsert"
            } else {
                "update"
            };
            out.push((
                "insert.mode",
                format!("insert.mode={mode} needs the rows' keys: set pk.mode to kafka, record_key or record_value"),
            ));
        }
        if self.pk_mode == PkMode::Kafka && !matches!(self.pk_fields.len(), 0 | 3) {
            out.push((
                "pk.fields",
                format!(
                    "pk.mode=kafka takes either no field names (for the defaults {}) or exactly 3, got {:?}",
                    KAFKA_PK.join(","),
                    self.pk_fields
                ),
            ));
        }
        out
    }

    /// The table a topic's records go to.
    fn table_of(&self, topic: &str) -> String {
        self.table_format.replace("${topic}", topic)
    }
}

/// The connector: `tasks.max` identical tasks, which share the topics' partitions.
#[derive(Debug, Default)]
pub struct PostgresSinkConnector {
    props: Props,
}

#[async_trait]
impl Connector for PostgresSinkConnector {
    fn config_def(&self) -> ConfigDef {
        def()
    }

    fn validate(&self, props: &Props) -> Vec<ConfigValue> {
        super::validate_with(def(), props, || match Settings::read(props) {
            Ok(s) => s.conflicts(),
            // What the definitions pass and the settings refuse: the URL.
            Err(e) => vec![("connection.url", e.to_string())],
        })
    }

    async fn start(&mut self, props: Props) -> Result<(), ConnectError> {
        Settings::parse(&props)?;
        self.props = props;
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<Props> {
        vec![self.props.clone(); max_tasks.max(1)]
    }
}

/// What makes a layout: the topic and schemas of a record, and whether it is a delete.
struct LayoutKey {
    topic: String,
    key: Option<Arc<Schema>>,
    value: Option<Arc<Schema>>,
    delete: bool,
}

fn same_schema(a: &Option<Arc<Schema>>, b: &Option<Arc<Schema>>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => Arc::ptr_eq(x, y) || x == y,
        (None, None) => true,
        _ => false,
    }
}

/// How many layouts a task remembers.
const LAYOUTS: usize = 32;

/// Writes records to PostgreSQL, one transaction per `put`.
#[derive(Default)]
pub struct PostgresSinkTask {
    settings: Option<Arc<Settings>>,
    context: SinkTaskContext,
    writer: Writer,
    /// Table names by topic.
    names: HashMap<String, Arc<str>>,
    layouts: VecDeque<(LayoutKey, Arc<Layout>)>,
    /// The next offset after the records of each partition whose `put` committed.
    written: HashMap<TopicPartition, i64>,
    /// A `put` failed since the last one that committed: records the framework gave have
    /// no rows, so only `written` may be committed.
    failed: bool,
}

#[async_trait]
impl SinkTask for PostgresSinkTask {
    async fn start(&mut self, context: SinkTaskContext, props: Props) -> Result<(), ConnectError> {
        self.settings = Some(Arc::new(Settings::parse(&props)?));
        self.context = context;
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        let s = self
            .settings
            .clone()
            .ok_or_else(|| ConnectError::Connect("the task is not started".into()))?;
        self.failed = true;
        let mut errant: Vec<(usize, String)> = Vec::new();
        let mut ops = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            match self.op_of(&s, r, i) {
                Ok(op) => ops.push(op),
                Err(why) => errant.push((i, why)),
            }
        }
        self.writer.write(&s, &ops, &mut errant).await?;
        for r in &records {
            let next = self.written.entry(r.topic_partition()).or_insert(0);
            *next = (*next).max(r.offset + 1);
        }
        self.failed = false;
        // Reported once committed: a retried put would report them again.
        if !errant.is_empty() {
            errant.sort_by_key(|(i, _)| *i);
            let mut errant = errant.into_iter().peekable();
            for (i, r) in records.into_iter().enumerate() {
                if let Some((_, why)) = errant.next_if(|(e, _)| *e == i) {
                    self.context.report(r, why);
                }
            }
        }
        Ok(())
    }

    async fn pre_commit(
        &mut self,
        offsets: HashMap<TopicPartition, i64>,
    ) -> Result<HashMap<TopicPartition, i64>, ConnectError> {
        if !self.failed {
            // Every record given so far is in a committed transaction (or reported); the
            // offsets past them are of records the framework filtered or dealt with.
            return Ok(offsets);
        }
        Ok(offsets
            .into_iter()
            .filter_map(|(tp, next)| {
                let written = *self.written.get(&tp)?;
                Some((tp, next.min(written)))
            })
            .collect())
    }

    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        for tp in partitions {
            self.written.remove(tp);
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.writer.disconnect();
        Ok(())
    }
}

impl PostgresSinkTask {
    /// The next offset after the records of `partition` whose rows are committed.
    pub fn committed(&self, partition: &TopicPartition) -> Option<i64> {
        self.written.get(partition).copied()
    }

    /// What a record does to its table, or why it cannot be written.
    fn op_of(&mut self, s: &Settings, r: &SinkRecord, index: usize) -> Result<Op, String> {
        let rec = &r.record;
        let delete = rec.is_tombstone();
        if delete && !s.delete_enabled || !delete && !matches!(rec.value, Value::Struct(_)) {
            return Err(format!(
                "Sink connector '{}' is configured with 'delete.enabled={}' and 'pk.mode={}' and therefore requires records with a non-null Struct value and non-null Struct schema, but found record at (topic='{}',partition={},offset={}) with a {} value and {} value schema",
                s.connector,
                s.delete_enabled,
                s.pk_mode.name(),
                rec.topic,
                rec.partition.unwrap_or(0),
                r.offset,
                if rec.value == Value::Null { "null".to_string() } else { rec.value.describe() },
                if rec.value_schema.is_some() { "a" } else { "null" },
            ));
        }
        let layout = self.layout_of(s, r, delete)?;
        let mut cells = Vec::with_capacity(layout.columns.len());
        let mut key = Vec::new();
        for (i, c) in layout.columns.iter().enumerate() {
            let value = match c.source {
                Source::Key => Some(&rec.key),
                Source::KeyField(f) => match &rec.key {
                    Value::Struct(k) => k.values.get(f),
                    _ => None,
                },
                Source::ValueField(f) => match &rec.value {
                    Value::Struct(v) => v.values.get(f),
                    _ => None,
                },
                Source::Topic => {
                    cells.push(Cell::Text(rec.topic.clone()));
                    None
                }
                Source::Partition => {
                    cells.push(Cell::I32(rec.partition.unwrap_or(0)));
                    None
                }
                Source::Offset => {
                    cells.push(Cell::I64(r.offset));
                    None
                }
            };
            if let Some(value) = value {
                if i < layout.keys && *value == Value::Null {
                    return Err(format!(
                        "the primary key column {} of table {} would be null (pk.mode={}) in the record at (topic='{}',partition={},offset={})",
                        c.name,
                        layout.table,
                        s.pk_mode.name(),
                        rec.topic,
                        rec.partition.unwrap_or(0),
                        r.offset
                    ));
                }
                cells.push(
                    Cell::of(&c.schema, value).map_err(|e| format!("column {}: {e}", c.name))?,
                );
            } else if cells.len() <= i {
                return Err(format!("the record has no value for column {}", c.name));
            }
            if i < layout.keys {
                cells[i].identity(&mut key);
            }
        }
        Ok(Op {
            record: index,
            layout,
            cells,
            key,
        })
    }

    /// The layout of a record, made once per topic and schemas.
    fn layout_of(
        &mut self,
        s: &Settings,
        r: &SinkRecord,
        delete: bool,
    ) -> Result<Arc<Layout>, String> {
        let rec = &r.record;
        let value_schema = if delete {
            None
        } else {
            rec.value_schema.clone()
        };
        if let Some(pos) = self.layouts.iter().position(|(k, _)| {
            k.delete == delete
                && k.topic == rec.topic
                && same_schema(&k.key, &rec.key_schema)
                && same_schema(&k.value, &value_schema)
        }) {
            return Ok(self.layouts[pos].1.clone());
        }
        let table = match self.names.get(&rec.topic) {
            Some(t) => t.clone(),
            None => {
                let t: Arc<str> = Arc::from(s.table_of(&rec.topic));
                self.names.insert(rec.topic.clone(), t.clone());
                t
            }
        };
        let layout = Arc::new(layout(
            s,
            table,
            rec.key_schema.as_deref(),
            value_schema.as_deref(),
            delete,
        )?);
        if self.layouts.len() == LAYOUTS {
            self.layouts.pop_front();
        }
        self.layouts.push_back((
            LayoutKey {
                topic: rec.topic.clone(),
                key: rec.key_schema.clone(),
                value: value_schema,
                delete,
            },
            layout.clone(),
        ));
        Ok(layout)
    }
}

/// The layout of the records of one topic and schemas, or why they cannot be written.
fn layout(
    s: &Settings,
    table: Arc<str>,
    key_schema: Option<&Schema>,
    value_schema: Option<&Schema>,
    delete: bool,
) -> Result<Layout, String> {
    let mut columns: Vec<Column> = Vec::new();
    let missing_schema = |what: &str| {
        format!(
            "PK mode for table '{table}' is {}, but record {what} schema is missing",
            s.pk_mode.name()
        )
    };
    let value = match value_schema {
        Some(v) if v.kind == Type::Struct => Some(v),
        Some(v) => {
            return Err(format!(
            "the record value schema is a {}; a Struct is needed to be written to table '{table}'",
            v.kind.name()
        ))
        }
        None if delete => None,
        None => return Err(missing_schema("value")),
    };
    let field = |schema: &Schema, name: &str, what: &str| -> Result<(usize, Arc<Schema>), String> {
        schema
            .field(name)
            .map(|f| (f.index, f.schema.clone()))
            .ok_or_else(|| {
                format!(
                    "PK mode for table '{table}' is {} with configured PK fields {:?}, but record {what} schema does not contain field: {name}",
                    s.pk_mode.name(),
                    s.pk_fields
                )
            })
    };
    match s.pk_mode {
        PkMode::None => {}
        PkMode::Kafka => {
            let names: Vec<&str> = if s.pk_fields.len() == 3 {
                s.pk_fields.iter().map(String::as_str).collect()
            } else {
                KAFKA_PK.to_vec()
            };
            let sources = [
                (Source::Topic, Type::String),
                (Source::Partition, Type::Int32),
                (Source::Offset, Type::Int64),
            ];
            for (name, (source, kind)) in names.into_iter().zip(sources) {
                columns.push(Column {
                    name: name.to_string(),
                    schema: Arc::new(Schema::of(kind)),
                    source,
                });
            }
        }
        PkMode::RecordKey => {
            let key = key_schema.ok_or_else(|| missing_schema("key"))?;
            if key.kind == Type::Struct {
                let names: Vec<String> = if s.pk_fields.is_empty() {
                    key.fields.iter().map(|f| f.name.clone()).collect()
                } else {
                    s.pk_fields.clone()
                };
                for name in names {
                    let (index, schema) = field(key, &name, "key")?;
                    columns.push(Column {
                        name,
                        schema,
                        source: Source::KeyField(index),
                    });
                }
            } else {
                let [name] = s.pk_fields.as_slice() else {
                    return Err(format!(
                        "Need exactly one PK column defined since the key schema for records is a primitive type, defined columns are: {:?}",
                        s.pk_fields
                    ));
                };
                columns.push(Column {
                    name: name.clone(),
                    schema: Arc::new(key.clone()),
                    source: Source::Key,
                });
            }
        }
        PkMode::RecordValue => {
            let value = value.ok_or_else(|| missing_schema("value"))?;
            let names: Vec<String> = if s.pk_fields.is_empty() {
                value.fields.iter().map(|f| f.name.clone()).collect()
            } else {
                s.pk_fields.clone()
            };
            for name in names {
                let (index, schema) = field(value, &name, "value")?;
                columns.push(Column {
                    name,
                    schema,
                    source: Source::ValueField(index),
                });
            }
        }
    }
    let keys = columns.len();
    if let (Some(value), false) = (value, delete) {
        for f in &value.fields {
            let listed = s.whitelist.is_empty() || s.whitelist.contains(&f.name);
            if !listed || columns[..keys].iter().any(|c| c.name == f.name) {
                continue;
            }
            columns.push(Column {
                name: f.name.clone(),
                schema: f.schema.clone(),
                source: Source::ValueField(f.index),
            });
        }
    }
    let mut staging = Vec::with_capacity(columns.len());
    for c in &columns {
        staging.push(sql::staging_type(&c.schema).ok_or_else(|| {
            format!(
                "field {} is a {}, which a PostgreSQL column cannot hold",
                c.name,
                c.schema.kind.name()
            )
        })?);
    }
    if columns.is_empty() {
        return Err(format!(
            "the record has no fields to write to table '{table}'"
        ));
    }
    Ok(Layout {
        table,
        columns,
        keys,
        delete,
        staging,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Struct;
    use crate::record::Record;

    fn settings(kv: &[(&str, &str)]) -> Result<Settings, ConnectError> {
        let mut p: Props = [
            ("name", "pg"),
            ("connection.url", "jdbc:postgresql://127.0.0.1:5432/db"),
        ]
        .iter()
        .chain(kv)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        p.retain(|_, v| !v.is_empty());
        Settings::parse(&p)
    }

    fn record(key: Option<(Schema, Value)>, value: Option<(Schema, Value)>) -> SinkRecord {
        let mut r = Record::new("accounts");
        r.partition = Some(2);
        if let Some((s, k)) = key {
            r = r.with_key(Some(Arc::new(s)), k);
        }
        if let Some((s, v)) = value {
            r = r.with_value(Some(Arc::new(s)), v);
        }
        SinkRecord {
            record: r,
            offset: 7,
        }
    }

    fn account() -> (Schema, Value) {
        let schema = Schema::structure(vec![
            ("id", Schema::of(Type::Int64).optional()),
            ("name", Schema::of(Type::String)),
        ]);
        let value = Struct::new(Arc::new(schema.clone()))
            .put("id", Value::Int64(5))
            .unwrap()
            .put("name", Value::String("a".into()))
            .unwrap();
        (schema, Value::Struct(value))
    }

    fn op(s: &Settings, r: &SinkRecord) -> Result<Op, String> {
        PostgresSinkTask::default().op_of(s, r, 0)
    }

    #[test]
    fn settings_that_do_not_go_together_are_refused() {
        let e = settings(&[("delete.enabled", "true"), ("pk.mode", "record_value")]);
        assert!(
            matches!(&e, Err(ConnectError::Config(m)) if m.contains("Delete support only works with pk.mode=record_key")),
            "{e:?}"
        );
        assert!(settings(&[("insert.mode", "upsert")]).is_err());
        assert!(settings(&[("insert.mode", "update"), ("pk.mode", "kafka")]).is_ok());
        assert!(settings(&[("connection.url", "")]).is_err());
        let s = settings(&[("table.name.format", "sink_${topic}"), ("batch.size", "10")]).unwrap();
        assert_eq!((s.table_of("t"), s.batch_size), ("sink_t".to_string(), 10));
    }

    #[test]
    fn records_that_cannot_be_rows_say_why() {
        let s = settings(&[("pk.mode", "record_key"), ("pk.fields", "id")]).unwrap();
        let key = || Some((Schema::of(Type::Int64), Value::Int64(1)));
        let mut schemaless = record(key(), None);
        schemaless.record.value = Value::String("plain".into());
        let e = op(&s, &schemaless).unwrap_err();
        assert!(
            e.contains("requires records with a non-null Struct value and non-null Struct schema")
                && e.contains("(topic='accounts',partition=2,offset=7)")
                && e.contains("null value schema"),
            "{e}"
        );
        let e = op(&s, &record(key(), None)).unwrap_err();
        assert!(e.contains("'delete.enabled=false'"), "a tombstone: {e}");
        let e = op(&s, &record(None, Some(account()))).unwrap_err();
        assert!(e.contains("record key schema is missing"), "{e}");
        let two = settings(&[("pk.mode", "record_key"), ("pk.fields", "a,b")]).unwrap();
        let e = op(&two, &record(key(), Some(account()))).unwrap_err();
        assert!(e.contains("Need exactly one PK column defined"), "{e}");
        let by_value = settings(&[("pk.mode", "record_value"), ("pk.fields", "nope")]).unwrap();
        let e = op(&by_value, &record(None, Some(account()))).unwrap_err();
        assert!(e.contains("does not contain field: nope"), "{e}");
        let by_id = settings(&[("pk.mode", "record_value"), ("pk.fields", "id")]).unwrap();
        let (schema, _) = account();
        let null_id = Struct::new(Arc::new(schema.clone()))
            .put("name", Value::String("a".into()))
            .unwrap();
        let e = op(
            &by_id,
            &record(None, Some((schema, Value::Struct(null_id)))),
        )
        .unwrap_err();
        assert!(e.contains("primary key column id"), "{e}");
        let listy = Schema::structure(vec![("tags", Schema::array(Schema::of(Type::String)))]);
        let value = Value::Struct(Struct::new(Arc::new(listy.clone())));
        let none = settings(&[]).unwrap();
        let e = op(&none, &record(None, Some((listy, value)))).unwrap_err();
        assert!(e.contains("field tags is a array"), "{e}");
    }

    #[test]
    fn rows_are_keyed_as_pk_mode_says() {
        let s = settings(&[("pk.mode", "kafka")]).unwrap();
        let o = op(&s, &record(None, Some(account()))).unwrap();
        let names: Vec<&str> = o.layout.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "__connect_topic",
                "__connect_partition",
                "__connect_offset",
                "id",
                "name"
            ]
        );
        assert_eq!(o.layout.keys, 3);
        assert_eq!(
            o.cells[..3],
            [Cell::Text("accounts".into()), Cell::I32(2), Cell::I64(7)]
        );
        // The value's field named as the key is the key column, written once.
        let s = settings(&[("pk.mode", "record_key"), ("pk.fields", "id")]).unwrap();
        let o = op(
            &s,
            &record(
                Some((Schema::of(Type::Int64), Value::Int64(9))),
                Some(account()),
            ),
        )
        .unwrap();
        assert_eq!(o.cells, [Cell::I64(9), Cell::Text("a".into())]);
        let s = settings(&[("fields.whitelist", "name")]).unwrap();
        let o = op(&s, &record(None, Some(account()))).unwrap();
        assert_eq!((o.layout.keys, o.cells.len()), (0, 1));
    }
}
