//! The PostgreSQL sink connector against a real PostgreSQL server the tests start
//! themselves (see `pg`): driven directly as a `SinkTask` with `SinkRecord`s, and through
//! the Connect framework (a worker, a Strom broker, JsonConverter records, the dead-letter
//! queue).

mod pg;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pg::{Broker, Postgres};
use strom_connect::api::{Connector, Props, SinkTask, SinkTaskContext};
use strom_connect::data::{logical, Schema, Struct, Type, Value};
use strom_connect::herder::Herding;
use strom_connect::postgres::sink::{PostgresSinkConnector, PostgresSinkTask};
use strom_connect::record::{Record, SinkRecord};
use strom_connect::ConnectError;

fn props(pg: &Postgres, extra: &[(&str, &str)]) -> Props {
    let mut p: Props = [
        ("name", "pg-sink"),
        (
            "connector.class",
            "strom.connect.postgres.PostgresSinkConnector",
        ),
        ("topics", "accounts"),
        ("connection.user", "postgres"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    p.insert("connection.url".into(), pg.url());
    p.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    p
}

async fn task(pg: &Postgres, extra: &[(&str, &str)]) -> PostgresSinkTask {
    let mut t = PostgresSinkTask::default();
    t.start(SinkTaskContext::default(), props(pg, extra))
        .await
        .unwrap();
    t
}

/// A task with `extra` over the settings most tests share: upserts keyed by the record key
/// into a table it creates.
async fn upsert_by_key_task(pg: &Postgres, extra: &[(&str, &str)]) -> PostgresSinkTask {
    let mut settings = vec![
        ("auto.create", "true"),
        ("insert.mode", "upsert"),
        ("pk.mode", "record_key"),
        ("pk.fields", "id"),
    ];
    settings.extend_from_slice(extra);
    task(pg, &settings).await
}

fn account_schema() -> Arc<Schema> {
    Arc::new(Schema::structure(vec![
        ("name", Schema::of(Type::String)),
        ("n", Schema::of(Type::Int64)),
    ]))
}

fn account(schema: &Arc<Schema>, name: &str, n: i64) -> Value {
    Value::Struct(
        Struct::new(schema.clone())
            .put("name", Value::String(name.into()))
            .unwrap()
            .put("n", Value::Int64(n))
            .unwrap(),
    )
}

/// A record of `accounts` partition 0 with an int64 key (if any) and `value` (a tombstone
/// when null).
fn record(offset: i64, key: Option<i64>, schema: Option<Arc<Schema>>, value: Value) -> SinkRecord {
    let mut r = Record::new("accounts");
    r.partition = Some(0);
    if let Some(k) = key {
        r = r.with_key(Some(Arc::new(Schema::of(Type::Int64))), Value::Int64(k));
    }
    if value != Value::Null {
        r = r.with_value(schema, value);
    }
    SinkRecord { record: r, offset }
}

fn row(values: &[&str]) -> Vec<Option<String>> {
    values
        .iter()
        .map(|v| (*v != "NULL").then(|| v.to_string()))
        .collect()
}

async fn table(pg: &Postgres, sql: &str) -> Vec<Vec<Option<String>>> {
    pg.sql(sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_create_and_insert_write_every_type_to_its_column_type() {
    let pg = Postgres::start();
    let mut t = task(
        &pg,
        &[
            ("auto.create", "true"),
            ("table.name.format", "typed_${topic}"),
        ],
    )
    .await;
    let schema = Arc::new(Schema::structure(vec![
        ("i8", Schema::of(Type::Int8)),
        ("i16", Schema::of(Type::Int16)),
        ("i32", Schema::of(Type::Int32)),
        ("i64", Schema::of(Type::Int64)),
        ("f32", Schema::of(Type::Float32)),
        ("f64", Schema::of(Type::Float64)),
        ("flag", Schema::of(Type::Boolean)),
        ("text", Schema::of(Type::String)),
        ("raw", Schema::of(Type::Bytes)),
        ("price", Schema::decimal(2)),
        ("day", Schema::of(Type::Int32).named(logical::DATE)),
        ("at", Schema::of(Type::Int32).named(logical::TIME)),
        ("ts", Schema::of(Type::Int64).named(logical::TIMESTAMP)),
        ("note", Schema::of(Type::String).optional()),
    ]));
    let value = |i: i8, note: Option<&str>| {
        Value::Struct(
            Struct::new(schema.clone())
                .put("i8", Value::Int8(i))
                .unwrap()
                .put("i16", Value::Int16(-300))
                .unwrap()
                .put("i32", Value::Int32(70_000))
                .unwrap()
                .put("i64", Value::Int64(1 << 40))
                .unwrap()
                .put("f32", Value::Float32(1.5))
                .unwrap()
                .put("f64", Value::Float64(0.1))
                .unwrap()
                .put("flag", Value::Boolean(i % 2 == 0))
                .unwrap()
                .put("text", Value::String("it's \"quoted\"\ttab".into()))
                .unwrap()
                .put("raw", Value::Bytes(vec![0, 1, 255]))
                .unwrap()
                .put("price", Value::Bytes(vec![0xff, 0x85])) // -1.23
                .unwrap()
                .put("day", Value::Int32(19_000)) // 2022-01-08
                .unwrap()
                .put("at", Value::Int32(3_723_004)) // 01:02:03.004
                .unwrap()
                .put("ts", Value::Int64(1_700_000_000_123))
                .unwrap()
                .put(
                    "note",
                    note.map_or(Value::Null, |n| Value::String(n.into())),
                )
                .unwrap(),
        )
    };
    t.put(vec![
        record(0, None, Some(schema.clone()), value(1, None)),
        record(1, None, Some(schema.clone()), value(2, Some("b"))),
    ])
    .await
    .unwrap();
    let columns = table(
        &pg,
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
         WHERE table_name = 'typed_accounts' ORDER BY ordinal_position",
    )
    .await;
    let expected = [
        ("i8", "smallint"),
        ("i16", "smallint"),
        ("i32", "integer"),
        ("i64", "bigint"),
        ("f32", "real"),
        ("f64", "double precision"),
        ("flag", "boolean"),
        ("text", "text"),
        ("raw", "bytea"),
        ("price", "numeric"),
        ("day", "date"),
        ("at", "time without time zone"),
        ("ts", "timestamp without time zone"),
        ("note", "text"),
    ];
    let want: Vec<Vec<Option<String>>> = expected
        .iter()
        .map(|(c, ty)| row(&[c, ty, if *c == "note" { "YES" } else { "NO" }]))
        .collect();
    assert_eq!(columns, want);
    let rows = table(
        &pg,
        "SELECT i8, i16, i32, i64, f32, f64, flag, text, encode(raw, 'hex'), price, day, at, ts, note \
         FROM typed_accounts ORDER BY i8",
    )
    .await;
    let common = ["-300", "70000", "1099511627776", "1.5", "0.1"];
    let mut first = vec!["1"];
    first.extend(common);
    first.extend([
        "f",
        "it's \"quoted\"\ttab",
        "0001ff",
        "-1.23",
        "2022-01-08",
        "01:02:03.004",
        "2023-11-14 22:13:20.123",
        "NULL",
    ]);
    let mut second = vec!["2"];
    second.extend(common);
    second.extend([
        "t",
        "it's \"quoted\"\ttab",
        "0001ff",
        "-1.23",
        "2022-01-08",
        "01:02:03.004",
        "2023-11-14 22:13:20.123",
        "b",
    ]);
    assert_eq!(rows, vec![row(&first), row(&second)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upserts_by_record_key_end_with_the_latest_value_of_each_key() {
    let pg = Postgres::start();
    let mut t = upsert_by_key_task(&pg, &[]).await;
    let s = account_schema();
    // Keys repeat within one put, and across puts.
    let batch: Vec<SinkRecord> = [
        (1, "a", 1),
        (2, "b", 2),
        (1, "a2", 3),
        (3, "c", 4),
        (2, "b2", 5),
    ]
    .iter()
    .enumerate()
    .map(|(i, (k, name, n))| record(i as i64, Some(*k), Some(s.clone()), account(&s, name, *n)))
    .collect();
    t.put(batch.clone()).await.unwrap();
    t.put(vec![record(
        5,
        Some(1),
        Some(s.clone()),
        account(&s, "a3", 6),
    )])
    .await
    .unwrap();
    // A replay of the first batch (as after a crash) followed by what came after it.
    t.put(batch).await.unwrap();
    t.put(vec![record(
        5,
        Some(1),
        Some(s.clone()),
        account(&s, "a3", 6),
    )])
    .await
    .unwrap();
    assert_eq!(
        table(&pg, "SELECT id, name, n FROM accounts ORDER BY id").await,
        vec![
            row(&["1", "a3", "6"]),
            row(&["2", "b2", "5"]),
            row(&["3", "c", "4"])
        ]
    );
    let pk = table(
        &pg,
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a \
         ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
         WHERE i.indrelid = 'accounts'::regclass AND i.indisprimary",
    )
    .await;
    assert_eq!(pk, vec![row(&["id"])]);

    // A struct key: every key field is a primary key column unless pk.fields says.
    let mut t = task(
        &pg,
        &[
            ("auto.create", "true"),
            ("insert.mode", "upsert"),
            ("pk.mode", "record_key"),
            ("table.name.format", "regional_${topic}"),
        ],
    )
    .await;
    let key_schema = Arc::new(Schema::structure(vec![
        ("region", Schema::of(Type::String)),
        ("id", Schema::of(Type::Int32)),
    ]));
    let keyed = |offset: i64, region: &str, id: i32, name: &str, n: i64| {
        let key = Struct::new(key_schema.clone())
            .put("region", Value::String(region.into()))
            .unwrap()
            .put("id", Value::Int32(id))
            .unwrap();
        let mut r = record(offset, None, Some(s.clone()), account(&s, name, n));
        r.record = r
            .record
            .with_key(Some(key_schema.clone()), Value::Struct(key));
        r
    };
    t.put(vec![
        keyed(0, "eu", 1, "x", 1),
        keyed(1, "us", 1, "y", 2),
        keyed(2, "eu", 1, "x2", 3),
    ])
    .await
    .unwrap();
    assert_eq!(
        table(
            &pg,
            "SELECT region, id, name, n FROM regional_accounts ORDER BY region"
        )
        .await,
        vec![row(&["eu", "1", "x2", "3"]), row(&["us", "1", "y", "2"])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upserts_by_record_value_use_the_named_value_fields() {
    let pg = Postgres::start();
    let mut t = task(
        &pg,
        &[
            ("auto.create", "true"),
            ("insert.mode", "upsert"),
            ("pk.mode", "record_value"),
            ("pk.fields", "name"),
        ],
    )
    .await;
    let s = account_schema();
    t.put(vec![
        record(0, None, Some(s.clone()), account(&s, "a", 1)),
        record(1, None, Some(s.clone()), account(&s, "b", 2)),
        record(2, None, Some(s.clone()), account(&s, "a", 3)),
    ])
    .await
    .unwrap();
    t.put(vec![record(3, None, Some(s.clone()), account(&s, "b", 4))])
        .await
        .unwrap();
    assert_eq!(
        table(&pg, "SELECT name, n FROM accounts ORDER BY name").await,
        vec![row(&["a", "3"]), row(&["b", "4"])]
    );
    // Update mode changes the rows that are there and adds none.
    let mut t = task(
        &pg,
        &[
            ("insert.mode", "update"),
            ("pk.mode", "record_value"),
            ("pk.fields", "name"),
        ],
    )
    .await;
    t.put(vec![
        record(4, None, Some(s.clone()), account(&s, "a", 10)),
        record(5, None, Some(s.clone()), account(&s, "zz", 11)),
    ])
    .await
    .unwrap();
    assert_eq!(
        table(&pg, "SELECT name, n FROM accounts ORDER BY name").await,
        vec![row(&["a", "10"]), row(&["b", "4"])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_deletes_the_row_of_its_key() {
    let pg = Postgres::start();
    let mut t = upsert_by_key_task(&pg, &[("delete.enabled", "true")]).await;
    let s = account_schema();
    let w = |o: i64, k: i64, n: i64| record(o, Some(k), Some(s.clone()), account(&s, "v", n));
    let d = |o: i64, k: i64| record(o, Some(k), None, Value::Null);
    // Tombstones first, for a table that is not there yet: nothing to delete, no table.
    t.put(vec![d(0, 1)]).await.unwrap();
    assert_eq!(
        table(
            &pg,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'accounts'"
        )
        .await,
        vec![row(&["0"])]
    );
    t.put(vec![w(1, 1, 1), w(2, 2, 2), w(3, 3, 3)])
        .await
        .unwrap();
    t.put(vec![
        d(4, 2),    // deletes a row written before
        w(5, 4, 4), // written then deleted in the same put: gone
        d(6, 4),
        d(7, 3), // deleted then written again in the same put: there
        w(8, 3, 30),
        w(9, 5, 5), // written, deleted, written again
        d(10, 5),
        w(11, 5, 50),
    ])
    .await
    .unwrap();
    assert_eq!(
        table(&pg, "SELECT id, n FROM accounts ORDER BY id").await,
        vec![row(&["1", "1"]), row(&["3", "30"]), row(&["5", "50"])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_evolve_adds_columns_for_new_optional_fields() {
    let pg = Postgres::start();
    let settings = [
        ("auto.create", "true"),
        ("auto.evolve", "true"),
        ("insert.mode", "upsert"),
        ("pk.mode", "record_key"),
        ("pk.fields", "id"),
    ];
    let mut t = task(&pg, &settings).await;
    let v1 = account_schema();
    let v2 = Arc::new(Schema::structure(vec![
        ("name", Schema::of(Type::String)),
        ("n", Schema::of(Type::Int64)),
        ("email", Schema::of(Type::String).optional()),
        ("level", {
            let mut s = Schema::of(Type::Int32);
            s.default = Some(Value::Int32(7));
            s
        }),
    ]));
    let with_email = |name: &str, email: Option<&str>| {
        Value::Struct(
            Struct::new(v2.clone())
                .put("name", Value::String(name.into()))
                .unwrap()
                .put("n", Value::Int64(2))
                .unwrap()
                .put(
                    "email",
                    email.map_or(Value::Null, |e| Value::String(e.into())),
                )
                .unwrap()
                .put("level", Value::Int32(1))
                .unwrap(),
        )
    };
    t.put(vec![record(
        0,
        Some(1),
        Some(v1.clone()),
        account(&v1, "old", 1),
    )])
    .await
    .unwrap();
    t.put(vec![
        record(1, Some(2), Some(v2.clone()), with_email("new", Some("n@x"))),
        record(2, Some(3), Some(v2.clone()), with_email("none", None)),
    ])
    .await
    .unwrap();
    assert_eq!(
        table(
            &pg,
            "SELECT id, name, email, level FROM accounts ORDER BY id"
        )
        .await,
        vec![
            row(&["1", "old", "NULL", "7"]),
            row(&["2", "new", "n@x", "1"]),
            row(&["3", "none", "NULL", "1"])
        ]
    );
    // A required field without a default cannot be added to a table with rows.
    let v3 = Arc::new(Schema::structure(vec![
        ("name", Schema::of(Type::String)),
        ("n", Schema::of(Type::Int64)),
        ("must", Schema::of(Type::String)),
    ]));
    let v3_value = Value::Struct(
        Struct::new(v3.clone())
            .put("name", Value::String("x".into()))
            .unwrap()
            .put("n", Value::Int64(3))
            .unwrap()
            .put("must", Value::String("y".into()))
            .unwrap(),
    );
    let err = t
        .put(vec![record(3, Some(4), Some(v3.clone()), v3_value.clone())])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectError::Connect(m) if m.contains("field must, as the field is not optional")),
        "{err:?}"
    );
    // Without auto.evolve, a new field is refused.
    let mut fixed = task(&pg, &settings[..1]).await;
    let with_new = Arc::new(Schema::structure(vec![
        ("name", Schema::of(Type::String)),
        ("extra", Schema::of(Type::String).optional()),
    ]));
    let value = Value::Struct(
        Struct::new(with_new.clone())
            .put("name", Value::String("x".into()))
            .unwrap(),
    );
    let err = fixed
        .put(vec![record(4, Some(5), Some(with_new), value)])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("missing fields (extra) and auto-evolution is disabled"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_table_with_other_column_types_takes_the_values_cast() {
    let pg = Postgres::start();
    pg.sql(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name VARCHAR(20), amount NUMERIC(10, 2), \
         doc JSONB, uid UUID, at TIMESTAMPTZ, extra TEXT DEFAULT 'kept')",
    )
    .await;
    let mut t = task(
        &pg,
        &[
            ("insert.mode", "upsert"),
            ("pk.mode", "record_value"),
            ("pk.fields", "id"),
        ],
    )
    .await;
    let schema = Arc::new(Schema::structure(vec![
        ("id", Schema::of(Type::Int64)),
        ("name", Schema::of(Type::String)),
        ("amount", Schema::decimal(3)),
        ("doc", Schema::of(Type::String)),
        ("uid", Schema::of(Type::String)),
        ("at", Schema::of(Type::Int64).named(logical::TIMESTAMP)),
    ]));
    let value = |id: i64, amount: i64| {
        Value::Struct(
            Struct::new(schema.clone())
                .put("id", Value::Int64(id))
                .unwrap()
                .put("name", Value::String(format!("n{id}")))
                .unwrap()
                .put("amount", Value::Bytes(amount.to_be_bytes().to_vec()))
                .unwrap()
                .put("doc", Value::String(format!("{{\"id\": {id}}}")))
                .unwrap()
                .put(
                    "uid",
                    Value::String("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
                )
                .unwrap()
                .put("at", Value::Int64(0))
                .unwrap(),
        )
    };
    t.put(vec![
        record(0, None, Some(schema.clone()), value(1, 12_345)),
        record(1, None, Some(schema.clone()), value(2, -5)),
    ])
    .await
    .unwrap();
    assert_eq!(
        table(
            &pg,
            "SELECT id, name, amount, doc->>'id', uid, at, extra FROM accounts ORDER BY id"
        )
        .await,
        vec![
            row(&[
                "1",
                "n1",
                "12.35",
                "1",
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                "1970-01-01 00:00:00+00",
                "kept"
            ]),
            row(&[
                "2",
                "n2",
                "-0.01",
                "2",
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                "1970-01-01 00:00:00+00",
                "kept"
            ]),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_put_is_one_transaction_across_tables() {
    let pg = Postgres::start();
    pg.sql("CREATE SCHEMA sink; CREATE TABLE sink.b (id BIGINT PRIMARY KEY, name TEXT, n BOOLEAN)")
        .await;
    let mut t = upsert_by_key_task(&pg, &[("table.name.format", "sink.${topic}")]).await;
    let s = account_schema();
    let of = |topic: &str, o: i64| {
        let mut r = record(o, Some(o), Some(s.clone()), account(&s, topic, o));
        r.record.topic = topic.into();
        r
    };
    // Table b's column n is a boolean, which a bigint is not: the whole put fails, and
    // table a (created before the transaction) keeps no row of it.
    let err = t
        .put(vec![of("a", 1), of("b", 2), of("a", 3)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectError::Connect(m) if m.contains("boolean")),
        "{err:?}"
    );
    assert_eq!(
        table(&pg, "SELECT count(*) FROM sink.a").await,
        vec![row(&["0"])]
    );
    pg.sql("ALTER TABLE sink.b ALTER COLUMN n TYPE BIGINT USING 0")
        .await;
    t.put(vec![of("a", 1), of("b", 2), of("a", 3)])
        .await
        .unwrap();
    assert_eq!(
        table(
            &pg,
            "SELECT 'a', id FROM sink.a UNION ALL SELECT 'b', id FROM sink.b ORDER BY 1, 2"
        )
        .await,
        vec![row(&["a", "1"]), row(&["a", "3"]), row(&["b", "2"])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_copy_rows_and_a_duplicate_key_is_refused_alone() {
    let pg = Postgres::start();
    // No key: every record is a row, duplicates and all.
    let mut t = task(
        &pg,
        &[("auto.create", "true"), ("table.name.format", "log")],
    )
    .await;
    let s = account_schema();
    let batch: Vec<SinkRecord> = (0..5000)
        .map(|o| record(o, None, Some(s.clone()), account(&s, "same", o % 10)))
        .collect();
    t.put(batch).await.unwrap();
    assert_eq!(
        table(&pg, "SELECT count(*), count(DISTINCT n) FROM log").await,
        vec![row(&["5000", "10"])]
    );
    // Keyed inserts: a key seen twice fails on its second insert, as Confluent's insert
    // mode does; that record is the one refused (reported as errant), the rest are written.
    let mut t = task(
        &pg,
        &[
            ("auto.create", "true"),
            ("pk.mode", "record_key"),
            ("pk.fields", "id"),
        ],
    )
    .await;
    t.put(vec![
        record(0, Some(1), Some(s.clone()), account(&s, "first", 1)),
        record(1, Some(2), Some(s.clone()), account(&s, "b", 2)),
        record(2, Some(1), Some(s.clone()), account(&s, "again", 3)),
        record(3, Some(3), Some(s.clone()), account(&s, "c", 4)),
    ])
    .await
    .unwrap();
    assert_eq!(
        table(&pg, "SELECT id, name FROM accounts ORDER BY id").await,
        vec![row(&["1", "first"]), row(&["2", "b"]), row(&["3", "c"])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_do_not_go_together_are_refused_with_confluents_messages() {
    let pg = Postgres::start();
    let c = PostgresSinkConnector::default();
    let errors = |p: &Props| -> HashMap<String, Vec<String>> {
        c.validate(p)
            .into_iter()
            .filter(|v| !v.errors.is_empty())
            .map(|v| (v.name, v.errors))
            .collect()
    };
    let delete_by_value = props(
        &pg,
        &[("delete.enabled", "true"), ("pk.mode", "record_value")],
    );
    let e = errors(&delete_by_value);
    assert_eq!(
        e.get("delete.enabled").map(Vec::as_slice),
        Some(&["Delete support only works with pk.mode=record_key".to_string()][..])
    );
    assert!(e.contains_key("pk.mode"));
    let mut no_url = props(&pg, &[]);
    no_url.remove("connection.url");
    assert_eq!(
        errors(&no_url).get("connection.url").map(Vec::as_slice),
        Some(
            &[
                "Missing required configuration \"connection.url\" which has no default value."
                    .to_string()
            ][..]
        )
    );
    let e = errors(&props(&pg, &[("insert.mode", "upsert")]));
    assert!(e["insert.mode"][0].contains("set pk.mode"), "{e:?}");
    let e = errors(&props(&pg, &[("insert.mode", "merge")]));
    assert!(e.contains_key("insert.mode"), "{e:?}");
    let e = errors(&props(&pg, &[("pk.mode", "kafka"), ("pk.fields", "a,b")]));
    assert!(e.contains_key("pk.fields"), "{e:?}");
    let e = errors(&props(&pg, &[("connection.url", "jdbc:postgresql://[x")]));
    assert!(e.contains_key("connection.url"), "{e:?}");
    assert!(errors(&props(
        &pg,
        &[("pk.mode", "record_key"), ("delete.enabled", "true")]
    ))
    .is_empty());
    // A task refuses them too.
    let mut t = PostgresSinkTask::default();
    let err = t
        .start(SinkTaskContext::default(), delete_by_value)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Config(_)), "{err:?}");
    // And so does the framework, by Confluent's class name.
    let plugins = strom_connect::worker::Plugins::default();
    let plugin = plugins
        .find("io.confluent.connect.jdbc.JdbcSinkConnector")
        .expect("Confluent's class name is an alias");
    assert_eq!(plugin.class, "strom.connect.postgres.PostgresSinkConnector");
    assert!(plugins.find("PostgresSink").is_some());
    assert!(plugins.find("PostgresSinkConnector").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_commit_answers_only_offsets_whose_rows_are_committed() {
    let mut pg = Postgres::start();
    let mut t = upsert_by_key_task(&pg, &[]).await;
    let s = account_schema();
    let batch = |from: i64, to: i64| -> Vec<SinkRecord> {
        (from..to)
            .map(|o| record(o, Some(o % 7), Some(s.clone()), account(&s, "v", o)))
            .collect()
    };
    let tp = ("accounts".to_string(), 0);
    t.put(batch(0, 10)).await.unwrap();
    let offered = HashMap::from([(tp.clone(), 10)]);
    assert_eq!(t.pre_commit(offered).await.unwrap()[&tp], 10);

    // The server goes away: the next put fails as retriable, and pre_commit, offered the
    // offsets past the batch that failed, answers only those of the committed one.
    pg.stop();
    let err = t.put(batch(10, 20)).await.unwrap_err();
    assert!(matches!(err, ConnectError::Retriable(_)), "{err:?}");
    let offered = HashMap::from([(tp.clone(), 20), (("other".to_string(), 0), 5)]);
    assert_eq!(
        t.pre_commit(offered).await.unwrap(),
        HashMap::from([(tp.clone(), 10)])
    );
    assert_eq!(t.committed(&tp), Some(10));

    // Back: the same records again (as the framework retries), then everything.
    pg.restart();
    t.put(batch(10, 20)).await.unwrap();
    let offered = HashMap::from([(tp.clone(), 20)]);
    assert_eq!(t.pre_commit(offered).await.unwrap()[&tp], 20);
    assert_eq!(
        table(&pg, "SELECT count(*), max(n) FROM accounts").await,
        vec![row(&["7", "19"])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_retriable_and_the_task_reconnects() {
    let pg = Postgres::start();
    let mut t = upsert_by_key_task(&pg, &[]).await;
    let s = account_schema();
    t.put(vec![record(
        0,
        Some(1),
        Some(s.clone()),
        account(&s, "a", 1),
    )])
    .await
    .unwrap();
    assert!(pg.terminate_sessions().await >= 1);
    let second = vec![record(1, Some(2), Some(s.clone()), account(&s, "b", 2))];
    let mut retriable = 0;
    loop {
        match t.put(second.clone()).await {
            Ok(()) => break,
            Err(ConnectError::Retriable(_)) if retriable < 3 => retriable += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    // Whether the put sees the dead session depends on whether the client noticed the
    // server's goodbye first; either way it is replaced at once.
    assert!(
        retriable <= 1,
        "the lost connection is seen at most once, then replaced"
    );
    assert_eq!(
        table(&pg, "SELECT id, name FROM accounts ORDER BY id").await,
        vec![row(&["1", "a"]), row(&["2", "b"])]
    );
}

/// Connect's JsonConverter envelope.
fn envelope(schema: serde_json::Value, payload: serde_json::Value) -> Bytes {
    Bytes::from(serde_json::json!({"schema": schema, "payload": payload}).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_framework_errant_records_go_to_the_dead_letter_queue_and_the_rest_is_written()
{
    let pg = Postgres::start();
    let broker = Broker::start().await;
    let admin =
        strom_client::Admin::new(vec![broker.addr.clone()], "test", Duration::from_secs(10));
    admin.create_topic("orders", 2, 1, &[]).await.unwrap();
    // A table made by hand, with a column narrower than some values.
    pg.sql("CREATE TABLE orders (id BIGINT PRIMARY KEY, name VARCHAR(8) NOT NULL, n BIGINT)")
        .await;

    let dir = tempfile::tempdir().unwrap();
    let worker_props: Props = [
        ("bootstrap.servers", broker.addr.clone()),
        ("offset.flush.interval.ms", "200".to_string()),
        (
            "offset.storage.file.filename",
            dir.path().join("offsets").display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = strom_connect::worker::WorkerConfig::from_props(worker_props).unwrap();
    let worker = Arc::new(strom_connect::worker::Worker {
        id: "test:0".into(),
        config,
        plugins: strom_connect::worker::Plugins::default(),
        offsets: Arc::new(
            strom_connect::offsets::FileOffsetStore::open(dir.path().join("offsets")).unwrap(),
        ),
    });
    let herder = strom_connect::herder::Herder::new(worker);
    let mut connector = props(
        &pg,
        &[
            (
                "connector.class",
                "io.confluent.connect.jdbc.JdbcSinkConnector",
            ),
            ("topics", "orders"),
            ("tasks.max", "2"),
            (
                "key.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            ),
            (
                "value.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            ),
            ("insert.mode", "upsert"),
            ("pk.mode", "record_key"),
            ("pk.fields", "id"),
            ("delete.enabled", "true"),
            ("errors.tolerance", "all"),
            ("errors.deadletterqueue.topic.name", "orders-dlq"),
            ("errors.deadletterqueue.topic.replication.factor", "1"),
        ],
    );
    connector.insert("name".into(), "orders-sink".into());
    herder.put("orders-sink", connector, false).await.unwrap();

    let key_schema = serde_json::json!({"type": "int64", "optional": false});
    let value_schema = serde_json::json!({"type": "struct", "optional": false, "fields": [
        {"field": "name", "type": "string", "optional": false},
        {"field": "n", "type": "int64", "optional": false},
    ]});
    let producer = strom_client::Producer::new(strom_client::ProducerConfig {
        bootstrap_servers: vec![broker.addr.clone()],
        ..Default::default()
    });
    let send = |key: i64, value: Option<Bytes>| strom_client::ProducerRecord {
        topic: "orders".into(),
        partition: None,
        key: Some(envelope(key_schema.clone(), serde_json::json!(key))),
        value,
        headers: Vec::new(),
        timestamp: None,
    };
    let mut records = Vec::new();
    for i in 0..40i64 {
        let k = i % 10;
        records.push(send(
            k,
            Some(envelope(
                value_schema.clone(),
                serde_json::json!({"name": format!("o{k}"), "n": i}),
            )),
        ));
    }
    // Schemaless: the task reports it.
    records.push(send(
        100,
        Some(envelope(
            serde_json::Value::Null,
            serde_json::json!({"name": "x", "n": 1}),
        )),
    ));
    // Too long for the column: the server refuses it, and only it.
    records.push(send(
        101,
        Some(envelope(
            value_schema.clone(),
            serde_json::json!({"name": "much too long", "n": 1}),
        )),
    ));
    records.push(send(0, None)); // deletes key 0
    for r in records {
        producer.send(r).await.unwrap().await.unwrap();
    }

    // Everything read and committed, with the table as the last value of each key.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = herder.status("orders-sink").await.unwrap();
        for (task, state, _) in &status.tasks {
            assert!(
                !matches!(state, strom_connect::worker::State::Failed(_)),
                "task {task} failed: {state:?}"
            );
        }
        let lag = admin
            .group_lag("connect-orders-sink")
            .await
            .unwrap_or_default();
        let done = lag.len() == 2 && lag.iter().all(|(_, committed, end)| committed == end);
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "not all committed: {lag:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut expected = Vec::new();
    for k in 1..10i64 {
        let n = 30 + k;
        expected.push(row(&[&k.to_string(), &format!("o{k}"), &n.to_string()]));
    }
    assert_eq!(
        table(&pg, "SELECT id, name, n FROM orders ORDER BY id").await,
        expected
    );

    let mut dlq = strom_client::Consumer::new(strom_client::ConsumerConfig {
        bootstrap_servers: vec![broker.addr.clone()],
        ..Default::default()
    });
    dlq.assign(&[("orders-dlq".to_string(), 0, strom_client::StartAt::Earliest)])
        .await
        .unwrap();
    let mut dead = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while dead.len() < 2 && Instant::now() < deadline {
        dead.extend(dlq.poll().await.unwrap());
    }
    let mut keys: Vec<String> = dead
        .iter()
        .map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned())
        .collect();
    keys.sort();
    assert_eq!(dead.len(), 2, "{keys:?}");
    assert!(
        keys[0].contains("100") && keys[1].contains("101"),
        "{keys:?}"
    );
    herder.shutdown().await;
}

/// Rows per second: the sink in upsert mode, and a plain binary COPY of the same rows.
/// `cargo test --release -p strom-connect --test postgres_sink -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn benchmark_upsert_against_copy() {
    const N: i64 = 200_000;
    let put_size: usize = std::env::var("PUT_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let pg = Postgres::start();
    let schema = Arc::new(Schema::structure(vec![
        ("name", Schema::of(Type::String)),
        ("n", Schema::of(Type::Int64)),
        ("score", Schema::of(Type::Float64)),
        ("active", Schema::of(Type::Boolean)),
    ]));
    let records: Vec<SinkRecord> = (0..N)
        .map(|i| {
            let v = Struct::new(schema.clone())
                .put("name", Value::String(format!("account {i}")))
                .unwrap()
                .put("n", Value::Int64(i))
                .unwrap()
                .put("score", Value::Float64(i as f64 * 0.5))
                .unwrap()
                .put("active", Value::Boolean(i % 2 == 0))
                .unwrap();
            record(i, Some(i), Some(schema.clone()), Value::Struct(v))
        })
        .collect();
    let mut t = upsert_by_key_task(&pg, &[]).await;
    // The table and staging table made before the clock starts.
    t.put(records[..1].to_vec()).await.unwrap();
    pg.sql("TRUNCATE accounts").await;
    let started = Instant::now();
    for chunk in records.chunks(put_size) {
        t.put(chunk.to_vec()).await.unwrap();
    }
    let sink = started.elapsed();
    assert_eq!(
        table(&pg, "SELECT count(*) FROM accounts").await,
        vec![row(&[&N.to_string()])]
    );
    // The same rows again: every one an update.
    let started = Instant::now();
    for chunk in records.chunks(put_size) {
        t.put(chunk.to_vec()).await.unwrap();
    }
    let update = started.elapsed();

    pg.sql(
        "CREATE TABLE copied (id BIGINT PRIMARY KEY, name TEXT NOT NULL, n BIGINT NOT NULL, \
         score DOUBLE PRECISION NOT NULL, active BOOLEAN NOT NULL)",
    )
    .await;
    let client = pg.client().await;
    let started = Instant::now();
    let sink_in = client
        .copy_in::<_, Bytes>("COPY copied FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    let writer = tokio_postgres::binary_copy::BinaryCopyInWriter::new(
        sink_in,
        &[
            tokio_postgres::types::Type::INT8,
            tokio_postgres::types::Type::TEXT,
            tokio_postgres::types::Type::INT8,
            tokio_postgres::types::Type::FLOAT8,
            tokio_postgres::types::Type::BOOL,
        ],
    );
    futures_util::pin_mut!(writer);
    for r in &records {
        let (Value::Int64(id), Value::Struct(v)) = (&r.record.key, &r.record.value) else {
            unreachable!()
        };
        let (Value::String(name), Value::Int64(n), Value::Float64(score), Value::Boolean(active)) =
            (&v.values[0], &v.values[1], &v.values[2], &v.values[3])
        else {
            unreachable!()
        };
        writer
            .as_mut()
            .write(&[id, name, n, score, active])
            .await
            .unwrap();
    }
    writer.finish().await.unwrap();
    let copy = started.elapsed();
    let rate = |d: Duration| N as f64 / d.as_secs_f64();
    println!(
        "{N} rows, puts of {put_size}: sink upsert (inserts) {:.0} rows/s ({sink:.2?}), \
         sink upsert (updates) {:.0} rows/s ({update:.2?}), binary COPY {:.0} rows/s ({copy:.2?}); \
         COPY/sink {:.2}x (inserts), {:.2}x (updates)",
        rate(sink),
        rate(update),
        rate(copy),
        rate(copy) / rate(sink),
        rate(copy) / rate(update),
    );
}
