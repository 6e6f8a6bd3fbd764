//! The sink's write path: what a record becomes (a [`Layout`]'s cells, an [`Op`]), the
//! tables made ready for it (created, given new columns), and a `put`'s ops applied in one
//! transaction. The ops are planned into rounds per table (a key deleted at most once and
//! written at most once per round, deletes first), each group of one column list staged
//! by binary COPY and applied by one statement per `batch.size` rows; when the server
//! refuses the data, the ops are halved under savepoints down to the records at fault.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use futures_util::SinkExt;

use super::sink::Settings;
use super::sql::{self, Apply, Cell, CopyRows, NewColumn, TableColumn};
use super::{connect, db_error, failure, message, Failure};
use crate::data::Schema;
use crate::ConnectError;

/// Where a column's values come from in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// The whole (primitive) key.
    Key,
    /// A field of the key, by position.
    KeyField(usize),
    /// A field of the value, by position.
    ValueField(usize),
    /// The topic, partition or offset it was read from.
    Topic,
    Partition,
    Offset,
}

/// A column a record writes.
#[derive(Debug, Clone)]
pub(super) struct Column {
    pub(super) name: String,
    pub(super) schema: Arc<Schema>,
    pub(super) source: Source,
}

/// The columns the records of one kind write (or, for deletes, name by key): the key
/// columns first.
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) table: Arc<str>,
    pub(super) columns: Vec<Column>,
    pub(super) keys: usize,
    pub(super) delete: bool,
    /// The staging column types, one per column.
    pub(super) staging: Vec<&'static str>,
}

impl Layout {
    /// Whether two layouts write the same columns.
    pub(super) fn same(a: &Arc<Layout>, b: &Arc<Layout>) -> bool {
        Arc::ptr_eq(a, b)
            || (a.table == b.table
                && a.delete == b.delete
                && a.keys == b.keys
                && a.columns.len() == b.columns.len()
                && a.columns
                    .iter()
                    .zip(&b.columns)
                    .all(|(x, y)| x.name == y.name)
                && a.staging == b.staging)
    }
}

/// One record as a row to write or delete.
#[derive(Debug)]
pub(super) struct Op {
    /// Its position in the `put`.
    pub(super) record: usize,
    pub(super) layout: Arc<Layout>,
    /// One per layout column.
    pub(super) cells: Vec<Cell>,
    /// The key cells' identity (empty without a key).
    pub(super) key: Vec<u8>,
}

/// A connection and what it has made: its staging tables, by column types.
struct Session {
    client: tokio_postgres::Client,
    staging: HashMap<Vec<&'static str>, String>,
    /// Staging tables holding rows of the open transaction.
    used: HashSet<String>,
}

/// Why a write failed: a statement the server refused, or something else.
enum Failed {
    Db {
        what: String,
        error: tokio_postgres::Error,
    },
    Other(ConnectError),
}

impl Failed {
    /// A statement for `what` failed.
    fn db(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Failed {
        let what = what.into();
        move |error| Failed::Db { what, error }
    }

    fn kind(&self) -> Failure {
        match self {
            Failed::Db { error, .. } => failure(error),
            Failed::Other(_) => Failure::Other,
        }
    }

    fn message(&self) -> String {
        match self {
            Failed::Db { what, error } => message(what, error),
            Failed::Other(e) => e.to_string(),
        }
    }

    fn into_error(self) -> ConnectError {
        match self {
            Failed::Db { what, error } => db_error(&what, error),
            Failed::Other(e) => e,
        }
    }
}

/// A task's connection and what it knows of the tables it writes.
#[derive(Default)]
pub(super) struct Writer {
    session: Option<Session>,
    /// The columns of the tables written so far, as last read from the catalog.
    tables: HashMap<Arc<str>, HashMap<String, TableColumn>>,
}

impl Writer {
    /// Closes the connection.
    pub(super) fn disconnect(&mut self) {
        self.session = None;
    }

    /// Writes `ops` in one transaction; records the server refuses for their data are
    /// added to `errant`. After a failure that may pass ([`ConnectError::Retriable`]) the
    /// next write starts on a new connection.
    pub(super) async fn write(
        &mut self,
        s: &Settings,
        ops: &[Op],
        errant: &mut Vec<(usize, String)>,
    ) -> Result<(), ConnectError> {
        let result = self.write_once(s, ops, errant).await;
        if matches!(result, Err(ConnectError::Retriable(_))) {
            self.session = None;
        }
        result
    }

    async fn write_once(
        &mut self,
        s: &Settings,
        ops: &[Op],
        errant: &mut Vec<(usize, String)>,
    ) -> Result<(), ConnectError> {
        if ops.is_empty() {
            return Ok(());
        }
        if self.session.as_ref().is_none_or(|c| c.client.is_closed()) {
            self.session = Some(Session {
                client: connect(&s.connection).await?,
                staging: HashMap::new(),
                used: HashSet::new(),
            });
        }
        let absent = self.prepare(s, ops).await?;
        let Some(session) = self.session.as_mut() else {
            return Err(ConnectError::Retriable("no connection".into()));
        };
        let all: Vec<usize> = (0..ops.len()).collect();
        let result = transaction(session, s, &self.tables, &absent, ops, &all, errant).await;
        match result {
            Ok(()) => Ok(()),
            Err(f) => {
                if !session.client.is_closed() {
                    let _ = session.client.batch_execute("ROLLBACK").await;
                }
                session.used.clear();
                match f.kind() {
                    Failure::Missing => {
                        // A table or column went away (or the session's staging tables):
                        // read everything again, on a new connection.
                        self.tables.clear();
                        Err(ConnectError::Retriable(f.message()))
                    }
                    _ => Err(f.into_error()),
                }
            }
        }
    }

    /// Makes sure every table the ops write has their columns (creating or altering them
    /// as the settings allow) and that the session has their staging tables. Answers the
    /// tables that do not exist and that only deletes touch (there is nothing to delete).
    async fn prepare(
        &mut self,
        s: &Settings,
        ops: &[Op],
    ) -> Result<HashSet<Arc<str>>, ConnectError> {
        let session = self
            .session
            .as_mut()
            .ok_or_else(|| ConnectError::Retriable("no connection".into()))?;
        // The distinct layouts, in order.
        let mut layouts: Vec<&Arc<Layout>> = Vec::new();
        for op in ops {
            if !layouts.iter().any(|l| Arc::ptr_eq(l, &op.layout)) {
                layouts.push(&op.layout);
            }
        }
        for l in &layouts {
            if !session.staging.contains_key(&l.staging) {
                let name = format!("strom_sink_stage_{}", session.staging.len());
                session
                    .client
                    .batch_execute(&sql::create_staging(&name, &l.staging))
                    .await
                    .map_err(|e| db_error("creating a staging table", e))?;
                session.staging.insert(l.staging.clone(), name);
            }
        }
        let mut absent = HashSet::new();
        let mut tables: Vec<&Arc<str>> = Vec::new();
        for l in &layouts {
            if !tables.contains(&&l.table) {
                tables.push(&l.table);
            }
        }
        for table in tables {
            let mine: Vec<&&Arc<Layout>> = layouts.iter().filter(|l| l.table == *table).collect();
            // The columns wanted, in order; key columns are flagged.
            let mut wanted: Vec<NewColumn<'_>> = Vec::new();
            for l in &mine {
                for (i, c) in l.columns.iter().enumerate() {
                    if !wanted.iter().any(|w| w.name == c.name) {
                        wanted.push(NewColumn {
                            name: &c.name,
                            schema: &c.schema,
                            key: i < l.keys,
                        });
                    }
                }
            }
            let known = self
                .tables
                .get(table)
                .is_some_and(|have| wanted.iter().all(|c| have.contains_key(c.name)));
            if known {
                continue;
            }
            let client = &session.client;
            let have = match table_columns(client, table).await? {
                Some(have) => have,
                None if mine.iter().all(|l| l.delete) => {
                    absent.insert((*table).clone());
                    continue;
                }
                None => {
                    if !s.auto_create {
                        return Err(ConnectError::Connect(format!(
                            "Table \"{table}\" is missing and auto-creation is disabled (auto.create=false)"
                        )));
                    }
                    let ddl = sql::create_table(table, &wanted);
                    tracing::info!(%table, "creating the table from the record schema: {ddl}");
                    if let Err(e) = client.batch_execute(&ddl).await {
                        // Another task may have created it meanwhile.
                        if table_columns(client, table).await?.is_none() {
                            return Err(db_error(&format!("creating table {table}"), e));
                        }
                    }
                    table_columns(client, table).await?.unwrap_or_default()
                }
            };
            let missing: Vec<&NewColumn<'_>> = wanted
                .iter()
                .filter(|c| !have.contains_key(c.name))
                .collect();
            let have = if missing.is_empty() {
                have
            } else {
                let names: Vec<&str> = missing.iter().map(|c| c.name).collect();
                if !s.auto_evolve {
                    return Err(ConnectError::Connect(format!(
                        "Table \"{table}\" is missing fields ({}) and auto-evolution is disabled (auto.evolve=false)",
                        names.join(", ")
                    )));
                }
                if let Some(c) = missing
                    .iter()
                    .find(|c| !c.schema.optional && c.schema.default.is_none())
                {
                    return Err(ConnectError::Connect(format!(
                        "Cannot ALTER TABLE \"{table}\" to add missing field {}, as the field is not optional and does not have a default value",
                        c.name
                    )));
                }
                let to_add: Vec<NewColumn<'_>> = missing
                    .iter()
                    .map(|c| NewColumn {
                        name: c.name,
                        schema: c.schema,
                        key: false,
                    })
                    .collect();
                let ddl = sql::add_columns(table, &to_add);
                tracing::info!(%table, columns = ?names, "adding columns from the record schema: {ddl}");
                if let Err(e) = client.batch_execute(&ddl).await {
                    let now = table_columns(client, table).await?.unwrap_or_default();
                    if !to_add.iter().all(|c| now.contains_key(c.name)) {
                        return Err(db_error(&format!("altering table {table}"), e));
                    }
                }
                table_columns(client, table).await?.unwrap_or_default()
            };
            self.tables.insert((*table).clone(), have);
        }
        Ok(absent)
    }
}

/// The columns the server has for `table`, or `None` when there is no such table.
async fn table_columns(
    client: &tokio_postgres::Client,
    table: &str,
) -> Result<Option<HashMap<String, TableColumn>>, ConnectError> {
    let what = || format!("reading the columns of table {table}");
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typcategory = 'S' \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&sql::table_ident(table)],
        )
        .await
        .map_err(|e| db_error(&what(), e))?;
    if rows.is_empty() {
        let exists = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&sql::table_ident(table)],
            )
            .await
            .map_err(|e| db_error(&what(), e))?;
        let exists: bool = exists.try_get(0).map_err(|e| db_error(&what(), e))?;
        return Ok(exists.then(HashMap::new));
    }
    let mut columns = HashMap::new();
    for row in rows {
        let name: String = row.try_get(0).map_err(|e| db_error(&what(), e))?;
        let type_name: String = row.try_get(1).map_err(|e| db_error(&what(), e))?;
        let string: bool = row.try_get(2).map_err(|e| db_error(&what(), e))?;
        columns.insert(name, TableColumn { type_name, string });
    }
    Ok(Some(columns))
}

/// The ops of one table that can be applied together: each key is deleted at most once
/// and written at most once, the deletes before the writes. (`None`: an op folded away.)
#[derive(Debug, Default)]
struct Round<'a> {
    deletes: Vec<usize>,
    writes: Vec<Option<usize>>,
    /// Per key: its delete, and its write's position in `writes`.
    slots: HashMap<&'a [u8], (bool, Option<usize>)>,
}

/// The rounds of each table for `chunk` (op positions, in record order), each round to be
/// applied after the one before it.
fn plan<'a>(mode: Apply, ops: &'a [Op], chunk: &[usize]) -> Vec<(Arc<str>, Vec<Round<'a>>)> {
    let mut tables: Vec<(Arc<str>, Vec<Round<'a>>)> = Vec::new();
    for &i in chunk {
        let op = &ops[i];
        let t = match tables.iter().position(|(t, _)| *t == op.layout.table) {
            Some(t) => t,
            None => {
                tables.push((op.layout.table.clone(), vec![Round::default()]));
                tables.len() - 1
            }
        };
        let rounds = &mut tables[t].1;
        if op.layout.keys == 0 {
            if let Some(round) = rounds.last_mut() {
                round.writes.push(Some(i));
            }
            continue;
        }
        let fits = rounds
            .last()
            .is_some_and(|round| match round.slots.get(op.key.as_slice()) {
                None => true,
                Some(_) if op.layout.delete => true,
                Some((_, None)) => true,
                Some((_, Some(w))) => {
                    mode != Apply::Insert
                        && round.writes[*w]
                            .is_some_and(|prev| Layout::same(&ops[prev].layout, &op.layout))
                }
            });
        if !fits {
            rounds.push(Round::default());
        }
        let Some(round) = rounds.last_mut() else {
            continue;
        };
        let slot = round.slots.entry(&op.key).or_insert((false, None));
        if op.layout.delete {
            // A delete drops the write before it; one delete of a key is enough.
            if let Some(w) = slot.1.take() {
                round.writes[w] = None;
            }
            if !slot.0 {
                slot.0 = true;
                round.deletes.push(i);
            }
        } else {
            match slot.1 {
                Some(w) => round.writes[w] = Some(i),
                None => {
                    slot.1 = Some(round.writes.len());
                    round.writes.push(Some(i));
                }
            }
        }
    }
    tables
}

/// Runs `chunk` in an open transaction, or in one of its own: every op at once, and when
/// the server refuses the data, halves under savepoints down to the single records it
/// refuses (added to `errant`). Commits.
async fn transaction(
    session: &mut Session,
    s: &Settings,
    tables: &HashMap<Arc<str>, HashMap<String, TableColumn>>,
    absent: &HashSet<Arc<str>>,
    ops: &[Op],
    chunk: &[usize],
    errant: &mut Vec<(usize, String)>,
) -> Result<(), Failed> {
    session
        .client
        .batch_execute("BEGIN")
        .await
        .map_err(Failed::db("beginning a transaction"))?;
    match run(session, s, tables, absent, ops, chunk).await {
        Ok(()) => {}
        Err(f) if f.kind() == Failure::Data => {
            tracing::warn!(
                "the server refused a batch of {} records ({}); looking for the records at fault",
                chunk.len(),
                f.message()
            );
            session
                .client
                .batch_execute("ROLLBACK; BEGIN")
                .await
                .map_err(Failed::db("restarting the transaction"))?;
            session.used.clear();
            let mut pending: VecDeque<&[usize]> = VecDeque::new();
            let (left, right) = chunk.split_at(chunk.len() / 2);
            pending.extend([left, right]);
            while let Some(part) = pending.pop_front() {
                if part.is_empty() {
                    continue;
                }
                session
                    .client
                    .batch_execute("SAVEPOINT strom_sink")
                    .await
                    .map_err(Failed::db("setting a savepoint"))?;
                match run(session, s, tables, absent, ops, part).await {
                    Ok(()) => session
                        .client
                        .batch_execute("RELEASE SAVEPOINT strom_sink")
                        .await
                        .map_err(Failed::db("releasing a savepoint"))?,
                    Err(f) if f.kind() == Failure::Data => {
                        session
                            .client
                            .batch_execute(
                                "ROLLBACK TO SAVEPOINT strom_sink; RELEASE SAVEPOINT strom_sink",
                            )
                            .await
                            .map_err(Failed::db("rolling back to a savepoint"))?;
                        if let [one] = part {
                            errant.push((ops[*one].record, f.message()));
                        } else {
                            let (left, right) = part.split_at(part.len() / 2);
                            pending.push_front(right);
                            pending.push_front(left);
                        }
                    }
                    Err(f) => return Err(f),
                }
            }
        }
        Err(f) => return Err(f),
    }
    session
        .client
        .batch_execute("COMMIT")
        .await
        .map_err(Failed::db("committing"))?;
    session.used.clear();
    Ok(())
}

/// Applies `chunk` (op positions, in record order) in the open transaction.
async fn run(
    session: &mut Session,
    s: &Settings,
    tables: &HashMap<Arc<str>, HashMap<String, TableColumn>>,
    absent: &HashSet<Arc<str>>,
    ops: &[Op],
    chunk: &[usize],
) -> Result<(), Failed> {
    for (table, rounds) in plan(s.mode, ops, chunk) {
        if absent.contains(&table) {
            continue;
        }
        let info = tables.get(&table);
        for round in rounds {
            let writes: Vec<usize> = round.writes.iter().flatten().copied().collect();
            for (how, list) in [(Apply::Delete, &round.deletes), (s.mode, &writes)] {
                // Grouped by column list, in order of first appearance.
                let mut groups: Vec<(&Arc<Layout>, Vec<usize>)> = Vec::new();
                for &i in list {
                    let l = &ops[i].layout;
                    match groups.iter_mut().find(|(g, _)| Layout::same(g, l)) {
                        Some((_, members)) => members.push(i),
                        None => groups.push((l, vec![i])),
                    }
                }
                for (layout, members) in groups {
                    let how = if layout.keys == 0 { Apply::Insert } else { how };
                    for rows in members.chunks(s.batch_size) {
                        apply(session, info, layout, how, ops, rows).await?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Applies `rows` (op positions, all of `layout`) to the table: copied into the layout's
/// staging table and applied from there, or, for plain inserts into columns of exactly
/// the staging types, copied into the table itself.
async fn apply(
    session: &mut Session,
    info: Option<&HashMap<String, TableColumn>>,
    layout: &Layout,
    how: Apply,
    ops: &[Op],
    rows: &[usize],
) -> Result<(), Failed> {
    let table = &layout.table;
    let names: Vec<&str> = layout.columns.iter().map(|c| c.name.as_str()).collect();
    let direct = how == Apply::Insert
        && info.is_some_and(|info| {
            layout
                .columns
                .iter()
                .zip(&layout.staging)
                .all(|(c, staging)| {
                    info.get(&c.name)
                        .is_some_and(|t| sql::same_type(staging, &c.schema, &t.type_name))
                })
        });
    if direct {
        let what = format!("copying {} rows into table {table}", rows.len());
        return copy(session, &sql::copy_into(table, &names), ops, rows, &what).await;
    }
    let staging = session
        .staging
        .get(&layout.staging)
        .cloned()
        .ok_or_else(|| {
            Failed::Other(ConnectError::Connect(format!(
                "no staging table for the rows of table {table}"
            )))
        })?;
    let exprs: Vec<String> = layout
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| sql::staged(i, &c.schema, info.and_then(|t| t.get(&c.name))))
        .collect();
    let Some(statement) = sql::apply(how, table, &staging, &names, layout.keys, &exprs) else {
        return Ok(());
    };
    if !session.used.insert(staging.clone()) {
        session
            .client
            .batch_execute(&format!("DELETE FROM {staging}"))
            .await
            .map_err(Failed::db(format!("emptying {staging}")))?;
    }
    let what = format!("copying {} rows for table {table}", rows.len());
    copy(session, &sql::copy_staging(&staging), ops, rows, &what).await?;
    let what = match how {
        Apply::Delete => format!("deleting {} rows from table {table}", rows.len()),
        _ => format!("writing {} rows to table {table}", rows.len()),
    };
    session
        .client
        .batch_execute(&statement)
        .await
        .map_err(Failed::db(what))?;
    Ok(())
}

/// Runs `statement`, a binary COPY FROM STDIN, with the cells of `rows`.
async fn copy(
    session: &Session,
    statement: &str,
    ops: &[Op],
    rows: &[usize],
    what: &str,
) -> Result<(), Failed> {
    let sink = session
        .client
        .copy_in::<_, bytes::Bytes>(statement)
        .await
        .map_err(Failed::db(what))?;
    futures_util::pin_mut!(sink);
    let mut data = CopyRows::new();
    for &i in rows {
        data.row(ops[i].cells.iter());
        if let Some(chunk) = data.chunk() {
            sink.send(chunk).await.map_err(Failed::db(what))?;
        }
    }
    sink.send(data.finish()).await.map_err(Failed::db(what))?;
    sink.finish().await.map_err(Failed::db(what))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Type;

    fn layout(columns: &[&str], keys: usize, delete: bool) -> Arc<Layout> {
        Arc::new(Layout {
            table: Arc::from("t"),
            columns: columns
                .iter()
                .enumerate()
                .map(|(i, name)| Column {
                    name: name.to_string(),
                    schema: Arc::new(Schema::of(Type::Int64)),
                    source: Source::ValueField(i),
                })
                .collect(),
            keys,
            delete,
            staging: vec!["int8"; columns.len()],
        })
    }

    fn op(record: usize, layout: &Arc<Layout>, key: u8) -> Op {
        Op {
            record,
            layout: layout.clone(),
            cells: Vec::new(),
            key: vec![key],
        }
    }

    /// Each round as (deletes, writes), by record.
    fn rounds(mode: Apply, ops: &[Op]) -> Vec<(Vec<usize>, Vec<usize>)> {
        let chunk: Vec<usize> = (0..ops.len()).collect();
        let mut tables = plan(mode, ops, &chunk);
        assert_eq!(tables.len(), 1);
        tables
            .remove(0)
            .1
            .into_iter()
            .map(|r| {
                let writes = r.writes.iter().flatten().map(|&i| ops[i].record).collect();
                (r.deletes.iter().map(|&i| ops[i].record).collect(), writes)
            })
            .collect()
    }

    #[test]
    fn upserts_fold_each_key_to_what_writing_in_order_would_leave() {
        let row = layout(&["id", "v"], 1, false);
        let same_again = layout(&["id", "v"], 1, false);
        let wider = layout(&["id", "v", "w"], 1, false);
        let delete = layout(&["id"], 1, true);
        let ops = [
            op(0, &row, 1),
            op(1, &row, 2),
            op(2, &same_again, 1), // replaces record 0
            op(3, &delete, 2),     // drops record 1
            op(4, &row, 2),        // written after the delete: deletes run first
            op(5, &delete, 3),
            op(6, &delete, 3), // one delete is enough
            op(7, &wider, 1),  // other columns than record 2's: a round of its own
        ];
        assert_eq!(
            rounds(Apply::Upsert, &ops),
            vec![(vec![3, 5], vec![2, 4]), (vec![], vec![7])]
        );
    }

    #[test]
    fn inserts_of_a_key_twice_stay_two_inserts_and_rows_without_keys_all_go() {
        let row = layout(&["id", "v"], 1, false);
        let ops = [op(0, &row, 1), op(1, &row, 1)];
        assert_eq!(
            rounds(Apply::Insert, &ops),
            vec![(vec![], vec![0]), (vec![], vec![1])]
        );
        let unkeyed = layout(&["v"], 0, false);
        let ops = [op(0, &unkeyed, 0), op(1, &unkeyed, 0), op(2, &unkeyed, 0)];
        assert_eq!(rounds(Apply::Insert, &ops), vec![(vec![], vec![0, 1, 2])]);
    }
}
