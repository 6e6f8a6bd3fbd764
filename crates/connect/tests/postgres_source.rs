//! The PostgreSQL source connectors against a real PostgreSQL server the tests start
//! themselves (see `pg`), driven as `SourceTask`s with an offset store that keeps what the
//! test says was stored, as the framework would after Kafka acknowledged the records:
//! query mode (incrementing, timestamp, timestamp+incrementing) and change data capture
//! on logical replication, each resumed by a new task from the stored offsets.

mod pg;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pg::Postgres;
use serde_json::{json, Value as Json};
use strom_connect::api::{Connector, OffsetReader, Props, SourceTask, SourceTaskContext};
use strom_connect::converter::value_json;
use strom_connect::data::{logical, Type, Value};
use strom_connect::postgres::cdc::{PostgresCdcConnector, PostgresCdcTask};
use strom_connect::postgres::source::{PostgresSourceConnector, PostgresSourceTask};
use strom_connect::record::{SourceMap, SourceRecord};

/// Offsets as the framework keeps them: the latest stored per source partition.
#[derive(Clone, Default)]
struct Stored(Arc<Mutex<HashMap<String, SourceMap>>>);

impl OffsetReader for Stored {
    fn offset(&self, partition: &SourceMap) -> Option<SourceMap> {
        let key = Json::Object(partition.clone()).to_string();
        self.0.lock().ok()?.get(&key).cloned()
    }
}

impl Stored {
    fn store(&self, records: &[SourceRecord]) {
        let mut map = self.0.lock().unwrap();
        for r in records {
            let key = Json::Object(r.source_partition.clone()).to_string();
            map.insert(key, r.source_offset.clone());
        }
    }

    fn context(&self) -> SourceTaskContext {
        SourceTaskContext {
            offsets: Arc::new(self.clone()),
        }
    }
}

fn props(pg: &Postgres, pairs: &[(&str, &str)]) -> Props {
    let mut p: Props = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    p.insert("connection.url".into(), pg.url());
    p.insert("connection.user".into(), "postgres".into());
    p
}

/// Polls until `n` records came (failing after ten seconds), then once more to see that
/// nothing else comes.
async fn poll_n(task: &mut dyn SourceTask, n: usize) -> Vec<SourceRecord> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut all = Vec::new();
    while all.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records came: {:#?}",
            all.len(),
            summary(&all)
        );
        all.extend(task.poll().await.expect("poll"));
    }
    all.extend(task.poll().await.expect("poll"));
    all.extend(task.poll().await.expect("poll"));
    assert_eq!(
        all.len(),
        n,
        "more records than expected: {:#?}",
        summary(&all)
    );
    all
}

fn summary(records: &[SourceRecord]) -> Vec<Json> {
    records
        .iter()
        .map(|r| {
            json!([
                r.record.topic,
                value_json(&r.record.key),
                value_json(&r.record.value)
            ])
        })
        .collect()
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    match v {
        Value::Struct(s) => s.get(name).unwrap_or_else(|| panic!("no field {name}")),
        other => panic!("not a struct: {other:?}"),
    }
}

fn ids(records: &[SourceRecord]) -> Vec<i64> {
    records
        .iter()
        .map(|r| match field(&r.record.value, "id") {
            Value::Int32(i) => i64::from(*i),
            Value::Int64(i) => *i,
            other => panic!("id {other:?}"),
        })
        .collect()
}

async fn query_task(pg: &Postgres, stored: &Stored, extra: &[(&str, &str)]) -> PostgresSourceTask {
    let mut pairs = vec![("topic.prefix", "pg-"), ("poll.interval.ms", "100")];
    pairs.extend_from_slice(extra);
    let mut t = PostgresSourceTask::default();
    t.start(stored.context(), props(pg, &pairs))
        .await
        .expect("start");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incrementing_mode_reads_new_rows_with_their_types_and_resumes_without_loss_or_repeats() {
    let pg = Postgres::start();
    pg.sql(
        "CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL, n int8, small int2, \
         ratio float8, price numeric(10,2), at timestamptz, day date, flag bool, raw bytea, doc jsonb); \
         INSERT INTO accounts (name, n, small, ratio, price, at, day, flag, raw, doc) VALUES \
         ('a', 1, 2, 0.5, 12.34, '2024-01-02 03:04:05.678+00', '2024-01-02', true, '\\x0102', '{\"k\": 1}'); \
         INSERT INTO accounts (name) SELECT 'row ' || i FROM generate_series(2, 12) i",
    )
    .await;
    let stored = Stored::default();
    let settings = [
        ("mode", "incrementing"),
        ("incrementing.column.name", "id"),
        ("table.whitelist", "accounts"),
        ("batch.max.rows", "2"),
    ];
    let mut t = query_task(&pg, &stored, &settings).await;
    let first = t.poll().await.expect("poll");
    assert_eq!(first.len(), 2, "batch.max.rows caps a batch");
    let mut all = first;
    all.extend(poll_n(&mut t, 10).await);
    assert_eq!(
        ids(&all),
        (1..=12).collect::<Vec<_>>(),
        "in the column's order"
    );

    let r = &all[0];
    assert_eq!(r.record.topic, "pg-accounts");
    assert_eq!(r.record.key, Value::Null);
    assert_eq!(
        r.source_partition,
        json!({"protocol": "1", "table": "public.accounts"})
            .as_object()
            .cloned()
            .unwrap()
    );
    assert_eq!(r.source_offset["incrementing"], json!(1));
    let schema = r.record.value_schema.clone().expect("a schema");
    assert_eq!(schema.name.as_deref(), Some("accounts"));
    let kind = |f: &str| {
        let s = &schema.field(f).expect(f).schema;
        (s.kind, s.name.clone(), s.optional)
    };
    assert_eq!(kind("id"), (Type::Int32, None, false));
    assert_eq!(kind("name"), (Type::String, None, false));
    assert_eq!(kind("n"), (Type::Int64, None, true));
    assert_eq!(kind("small"), (Type::Int16, None, true));
    assert_eq!(kind("ratio"), (Type::Float64, None, true));
    assert_eq!(
        kind("price"),
        (Type::Bytes, Some(logical::DECIMAL.into()), true)
    );
    assert_eq!(
        schema.field("price").unwrap().schema.parameter("scale"),
        Some("2")
    );
    assert_eq!(
        kind("at"),
        (Type::Int64, Some(logical::TIMESTAMP.into()), true)
    );
    assert_eq!(kind("day"), (Type::Int32, Some(logical::DATE.into()), true));
    assert_eq!(kind("flag"), (Type::Boolean, None, true));
    assert_eq!(kind("raw"), (Type::Bytes, None, true));
    assert_eq!(
        kind("doc"),
        (Type::String, None, true),
        "others are strings"
    );
    let v = &r.record.value;
    assert_eq!(field(v, "name"), &Value::String("a".into()));
    assert_eq!(field(v, "n"), &Value::Int64(1));
    assert_eq!(field(v, "small"), &Value::Int16(2));
    assert_eq!(field(v, "ratio"), &Value::Float64(0.5));
    assert_eq!(
        field(v, "price"),
        &Value::Bytes(1234i32.to_be_bytes()[2..].to_vec())
    );
    assert_eq!(field(v, "at"), &Value::Int64(1_704_164_645_678));
    assert_eq!(field(v, "day"), &Value::Int32(19_724));
    assert_eq!(field(v, "flag"), &Value::Boolean(true));
    assert_eq!(field(v, "raw"), &Value::Bytes(vec![1, 2]));
    assert_eq!(field(v, "doc"), &Value::String("{\"k\": 1}".into()));
    assert_eq!(field(&all[1].record.value, "n"), &Value::Null);

    // Only the first three were stored when the task went away; rows come meanwhile.
    stored.store(&all[..3]);
    t.stop().await.expect("stop");
    pg.sql("INSERT INTO accounts (name) VALUES ('six'), ('seven')")
        .await;
    let mut again = query_task(&pg, &stored, &settings).await;
    let rest = poll_n(&mut again, 11).await;
    assert_eq!(
        ids(&rest),
        (4..=14).collect::<Vec<_>>(),
        "resumed after the stored offset"
    );
    stored.store(&rest);
    pg.sql("INSERT INTO accounts (name) VALUES ('eight')").await;
    assert_eq!(ids(&poll_n(&mut again, 1).await), [15]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_modes_pick_up_updates_and_resume_from_the_stored_position() {
    let pg = Postgres::start();
    pg.sql(
        "CREATE TABLE items (id serial PRIMARY KEY, name text, \
         updated timestamptz NOT NULL DEFAULT clock_timestamp()); \
         INSERT INTO items (name) SELECT 'item ' || i FROM generate_series(1, 5) i",
    )
    .await;
    let stored = Stored::default();
    let settings = [
        ("mode", "timestamp+incrementing"),
        ("incrementing.column.name", "id"),
        ("timestamp.column.name", "updated"),
        ("table.whitelist", "public.items"),
        ("batch.max.rows", "3"),
    ];
    let mut t = query_task(&pg, &stored, &settings).await;
    let first = poll_n(&mut t, 5).await;
    assert_eq!(ids(&first), [1, 2, 3, 4, 5]);
    let o = &first[4].source_offset;
    assert_eq!(o["incrementing"], json!(5));
    assert!(o["timestamp"].as_i64().is_some() && o["timestamp_nanos"].as_i64().is_some());

    // Updates move rows past the offset; they come again, in timestamp order.
    pg.sql("UPDATE items SET name = 'renamed', updated = clock_timestamp() WHERE id = 2")
        .await;
    pg.sql("UPDATE items SET name = 'renamed', updated = clock_timestamp() WHERE id = 1")
        .await;
    pg.sql("INSERT INTO items (name) VALUES ('six')").await;
    let changed = poll_n(&mut t, 3).await;
    assert_eq!(ids(&changed), [2, 1, 6]);
    assert_eq!(
        field(&changed[0].record.value, "name"),
        &Value::String("renamed".into())
    );

    // A new task from what was stored (up to the first update) reads the rest once.
    stored.store(&first);
    stored.store(&changed[..1]);
    t.stop().await.expect("stop");
    let mut again = query_task(&pg, &stored, &settings).await;
    assert_eq!(ids(&poll_n(&mut again, 2).await), [1, 6]);

    // Timestamp mode alone: rows sharing a timestamp carry the offset before it, so a
    // task stopped amid them reads them again rather than losing one.
    pg.sql(
        "CREATE TABLE events (id int, at timestamptz NOT NULL); \
         INSERT INTO events VALUES (1, '2024-01-01 00:00:00+00'); \
         INSERT INTO events VALUES (2, '2024-01-02 00:00:00+00'), (3, '2024-01-02 00:00:00+00')",
    )
    .await;
    let stored = Stored::default();
    let ts_settings = [
        ("mode", "timestamp"),
        ("timestamp.column.name", "at"),
        ("table.whitelist", "events"),
    ];
    let mut ts = query_task(&pg, &stored, &ts_settings).await;
    let events = poll_n(&mut ts, 3).await;
    assert_eq!(ids(&events), [1, 2, 3]);
    assert_eq!(events[1].source_offset, events[0].source_offset);
    assert_eq!(
        events[0].source_offset["timestamp"],
        json!(1_704_067_200_000i64)
    );
    stored.store(&events[..2]);
    ts.stop().await.expect("stop");
    let mut ts = query_task(&pg, &stored, &ts_settings).await;
    assert_eq!(ids(&poll_n(&mut ts, 2).await), [2, 3]);
    pg.sql("UPDATE events SET at = '2024-01-03 00:00:00+00' WHERE id = 1")
        .await;
    assert_eq!(ids(&poll_n(&mut ts, 1).await), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_settings_are_checked_and_tables_split_over_the_tasks() {
    let pg = Postgres::start();
    pg.sql("CREATE TABLE a (id int); CREATE TABLE b (id int); CREATE TABLE c (id int)")
        .await;
    let connector = PostgresSourceConnector::default();
    let errors = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        connector
            .validate(&props(&pg, pairs))
            .into_iter()
            .flat_map(|v| v.errors.into_iter().map(move |e| (v.name.clone(), e)))
            .collect()
    };
    assert_eq!(
        errors(&[("topic.prefix", "p-"), ("mode", "incrementing")]),
        [(
            "incrementing.column.name".to_string(),
            "Invalid value  for configuration incrementing.column.name: mode incrementing \
             requires an incrementing column (incrementing.column.name)"
                .to_string()
        )]
    );
    assert_eq!(
        errors(&[
            ("topic.prefix", "p-"),
            ("mode", "timestamp+incrementing"),
            ("incrementing.column.name", "id")
        ]),
        [(
            "timestamp.column.name".to_string(),
            "Invalid value  for configuration timestamp.column.name: mode timestamp+incrementing \
             requires at least one timestamp column (timestamp.column.name)"
                .to_string()
        )]
    );
    assert_eq!(
        errors(&[("topic.prefix", "p-"), ("mode", "sometimes")]),
        [(
            "mode".to_string(),
            "Invalid value sometimes for configuration mode: String must be one of: bulk, \
             incrementing, timestamp, timestamp+incrementing"
                .to_string()
        )]
    );
    assert_eq!(
        errors(&[("mode", "bulk")]),
        [(
            "topic.prefix".to_string(),
            "Missing required configuration \"topic.prefix\" which has no default value."
                .to_string()
        )]
    );
    assert!(errors(&[("topic.prefix", "p-"), ("mode", "bulk")]).is_empty());

    // A column the table does not have stops the task's start.
    let mut t = PostgresSourceTask::default();
    let e = t
        .start(
            Stored::default().context(),
            props(
                &pg,
                &[
                    ("topic.prefix", "p-"),
                    ("mode", "incrementing"),
                    ("incrementing.column.name", "nope"),
                    ("table.whitelist", "a"),
                ],
            ),
        )
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("has no column nope"), "{e}");

    // Every table, when none is named; at most tasks.max tasks.
    let mut c = PostgresSourceConnector::default();
    c.start(props(&pg, &[("topic.prefix", "p-"), ("mode", "bulk")]))
        .await
        .expect("start");
    let tasks: Vec<String> = c
        .task_configs(2)
        .iter()
        .map(|p| p["tables"].clone())
        .collect();
    assert_eq!(tasks, ["public.a,public.b", "public.c"]);
    assert_eq!(c.task_configs(5).len(), 3);

    // Bulk mode reads the whole table each time.
    pg.sql("INSERT INTO a VALUES (1), (2)").await;
    let bulk_settings = [
        ("mode", "bulk"),
        ("table.whitelist", "a"),
        ("poll.interval.ms", "3000"),
    ];
    let mut bulk = query_task(&pg, &Stored::default(), &bulk_settings).await;
    assert_eq!(ids(&poll_n(&mut bulk, 2).await), [1, 2]);
    assert_eq!(ids(&poll_n(&mut bulk, 2).await), [1, 2]);
}

fn logical_pg() -> Postgres {
    Postgres::start_with(&[("wal_level", "logical")])
}

async fn cdc_task(pg: &Postgres, stored: &Stored, extra: &[(&str, &str)]) -> PostgresCdcTask {
    let mut pairs = vec![
        ("table.include.list", "customers,public.orders"),
        ("poll.interval.ms", "50"),
    ];
    pairs.extend_from_slice(extra);
    let mut t = PostgresCdcTask::default();
    t.start(stored.context(), props(pg, &pairs))
        .await
        .expect("start");
    t
}

/// A change as (topic, op or "tombstone", key, before, after).
fn change(r: &SourceRecord) -> (String, String, Json, Json, Json) {
    let v = &r.record.value;
    let (op, before, after) = match v {
        Value::Null => ("tombstone".to_string(), Json::Null, Json::Null),
        _ => (
            match field(v, "op") {
                Value::String(s) => s.clone(),
                other => panic!("op {other:?}"),
            },
            value_json(field(v, "before")),
            value_json(field(v, "after")),
        ),
    };
    (
        r.record.topic.clone(),
        op,
        value_json(&r.record.key),
        before,
        after,
    )
}

async fn cdc_tables(pg: &Postgres) {
    pg.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, balance numeric(10,2)); \
         CREATE TABLE orders (id serial PRIMARY KEY, customer int, total int8); \
         CREATE TABLE ignored (id int PRIMARY KEY)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_captures_inserts_updates_and_deletes_in_commit_order_with_tombstones() {
    let pg = logical_pg();
    cdc_tables(&pg).await;
    let stored = Stored::default();
    let mut t = cdc_task(&pg, &stored, &[("replica.identity.full", "true")]).await;
    assert!(t.poll().await.expect("poll").is_empty());
    pg.sql("INSERT INTO customers VALUES (1, 'ann', 10.50)")
        .await;
    pg.sql("INSERT INTO ignored VALUES (1)").await;
    pg.sql(
        "BEGIN; INSERT INTO orders (customer, total) VALUES (1, 100), (1, 200); \
         UPDATE customers SET balance = 20.00 WHERE id = 1; \
         INSERT INTO customers VALUES (2, 'bob', NULL); DELETE FROM orders WHERE id = 1; COMMIT",
    )
    .await;
    pg.sql("DELETE FROM customers WHERE id = 2").await;
    let records = poll_n(&mut t, 9).await;
    let got: Vec<_> = records.iter().map(change).collect();
    let c = "strom.public.customers".to_string();
    let o = "strom.public.orders".to_string();
    // Decimals travel as their unscaled two's-complement bytes, base64 in JSON.
    let decimal = |unscaled: i16| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(unscaled.to_be_bytes())
    };
    let cust = |id: i32, name: &str, balance: Option<i16>| json!({"id": id, "name": name, "balance": balance.map(decimal)});
    let order = |id: i32, total: i64| json!({"id": id, "customer": 1, "total": total});
    let expected = vec![
        (
            c.clone(),
            "c".into(),
            json!({"id": 1}),
            Json::Null,
            cust(1, "ann", Some(1050)),
        ),
        (
            o.clone(),
            "c".into(),
            json!({"id": 1}),
            Json::Null,
            order(1, 100),
        ),
        (
            o.clone(),
            "c".into(),
            json!({"id": 2}),
            Json::Null,
            order(2, 200),
        ),
        (
            c.clone(),
            "u".into(),
            json!({"id": 1}),
            cust(1, "ann", Some(1050)),
            cust(1, "ann", Some(2000)),
        ),
        (
            c.clone(),
            "c".into(),
            json!({"id": 2}),
            Json::Null,
            cust(2, "bob", None),
        ),
        (
            o.clone(),
            "d".into(),
            json!({"id": 1}),
            order(1, 100),
            Json::Null,
        ),
        (
            o.clone(),
            "tombstone".into(),
            json!({"id": 1}),
            Json::Null,
            Json::Null,
        ),
        (
            c.clone(),
            "d".into(),
            json!({"id": 2}),
            cust(2, "bob", None),
            Json::Null,
        ),
        (
            c.clone(),
            "tombstone".into(),
            json!({"id": 2}),
            Json::Null,
            Json::Null,
        ),
    ];
    assert_eq!(got, expected);

    // The transaction's changes share its id and commit LSN, in order.
    let tx: Vec<_> = records[1..7]
        .iter()
        .map(|r| {
            (
                r.source_offset["lsn_commit"].clone(),
                r.source_offset["txId"].clone(),
            )
        })
        .collect();
    assert!(tx.iter().all(|x| *x == tx[0]), "{tx:?}");
    assert_ne!(records[0].source_offset["lsn_commit"], tx[0].0);
    let source = field(&records[1].record.value, "source");
    assert_eq!(field(source, "table"), &Value::String("orders".into()));
    assert_eq!(field(source, "schema"), &Value::String("public".into()));
    assert_eq!(field(source, "db"), &Value::String("postgres".into()));
    assert!(matches!(field(source, "lsn"), Value::Int64(n) if *n > 0));
    let key_schema = records[0].record.key_schema.clone().expect("a key schema");
    assert_eq!(
        key_schema.name.as_deref(),
        Some("strom.public.customers.Key")
    );
    assert_eq!(
        records[0]
            .record
            .value_schema
            .as_ref()
            .and_then(|s| s.name.clone())
            .as_deref(),
        Some("strom.public.customers.Envelope")
    );
    assert!(records[0].record.timestamp.is_some(), "the commit time");

    // Once the offsets are stored and the task told, the slot moves on.
    let confirmed = || async {
        pg.sql("SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = 'strom'")
            .await[0][0]
            .clone()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let before = confirmed().await;
    stored.store(&records);
    t.commit().await.expect("commit");
    assert!(confirmed().await > before, "the slot was advanced");
    assert!(t.poll().await.expect("poll").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cdc_task_stopped_mid_transaction_resumes_from_its_offset_without_loss_or_repeats() {
    let pg = logical_pg();
    cdc_tables(&pg).await;
    let stored = Stored::default();
    let settings = [("max.batch.size", "3"), ("tombstones.on.delete", "false")];
    let mut t = cdc_task(&pg, &stored, &settings).await;
    pg.sql(
        "BEGIN; INSERT INTO customers SELECT i, 'c' || i, i FROM generate_series(1, 10) i; COMMIT; \
         UPDATE customers SET name = 'renamed' WHERE id = 3; DELETE FROM customers WHERE id = 4",
    )
    .await;
    let first = poll_n(&mut t, 12).await;
    let ops: Vec<_> = first.iter().map(|r| change(r).1).collect();
    assert_eq!(&ops[10..], ["u", "d"]);
    // Without REPLICA IDENTITY FULL an update's and a delete's before is the key.
    assert_eq!(
        change(&first[10]).3,
        json!({"id": 3, "name": null, "balance": null})
    );
    assert_eq!(
        change(&first[11]).3,
        json!({"id": 4, "name": null, "balance": null})
    );

    // Stopped with only six of the ten inserts stored: a new task gives the rest once.
    stored.store(&first[..6]);
    t.stop().await.expect("stop");
    drop(t);
    pg.sql("INSERT INTO orders (customer, total) VALUES (7, 70)")
        .await;
    let mut again = cdc_task(&pg, &stored, &settings).await;
    let rest = poll_n(&mut again, 7).await;
    assert_eq!(
        rest.iter().map(change).collect::<Vec<_>>(),
        first[6..]
            .iter()
            .map(change)
            .chain([(
                "strom.public.orders".to_string(),
                "c".to_string(),
                json!({"id": 1}),
                Json::Null,
                json!({"id": 1, "customer": 7, "total": 70}),
            )])
            .collect::<Vec<_>>()
    );
    // Stored and committed: the slot is advanced, and a third task sees only new changes.
    stored.store(&rest);
    again.commit().await.expect("commit");
    again.stop().await.expect("stop");
    drop(again);
    pg.sql("UPDATE orders SET total = 71").await;
    let mut third = cdc_task(&pg, &stored, &settings).await;
    let last = poll_n(&mut third, 1).await;
    assert_eq!(change(&last[0]).1, "u");
    assert_eq!(
        change(&last[0]).4,
        json!({"id": 1, "customer": 7, "total": 71})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_settings_are_checked() {
    let pg = Postgres::start(); // wal_level=replica
    let connector = PostgresCdcConnector::default();
    let values = connector.validate(&props(&pg, &[("slot.name", "Bad-Slot")]));
    let slot = values.iter().find(|v| v.name == "slot.name").unwrap();
    assert_eq!(
        slot.errors,
        [
            "Invalid value Bad-Slot for configuration slot.name: a slot name may contain only \
          lower case letters, numbers and the underscore"
        ]
    );
    assert!(connector
        .validate(&props(&pg, &[]))
        .iter()
        .all(|v| v.errors.is_empty()));
    assert_eq!(connector.task_configs(4).len(), 1, "one reader per slot");
    let e = PostgresCdcTask::default()
        .start(Stored::default().context(), props(&pg, &[]))
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("wal_level=logical"), "{e}");
}
