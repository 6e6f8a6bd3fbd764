//! SQL for the PostgreSQL connectors: quoted identifiers, the column types Connect's
//! schemas map to (as Confluent's PostgreSQL dialect maps them), DEFAULT literals, the
//! statements that create and widen tables, and the sink's write path: values encoded in
//! COPY's binary format into a session's staging table, then applied to the table by one
//! `INSERT ... SELECT` (`ON CONFLICT DO UPDATE` for upserts), `UPDATE ... FROM` or
//! `DELETE ... USING` statement.
//!
//! A staging column has the Connect type's own PostgreSQL type, so the binary encoding is
//! exact; the statement converts to the table's column types with the casts an INSERT
//! makes (assignment casts, which refuse what does not fit rather than truncate), plus an
//! explicit cast from text to a column that is not text (json, uuid, an enum) and from a
//! Decimal's digits to NUMERIC.

use std::fmt::Write;

use bytes::{BufMut, Bytes, BytesMut};

use crate::data::{logical, Schema, Type, Value};

/// `name` as a quoted identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table name as written in `table.name.format`: `schema.table` names a schema (as
/// Confluent's sink reads it); each part is quoted, so case is kept.
pub fn table_ident(name: &str) -> String {
    match name.split_once('.') {
        Some((schema, table)) => format!("{}.{}", ident(schema), ident(table)),
        None => ident(name),
    }
}

/// The PostgreSQL type of a column created for a Connect schema, or `None` for the types
/// a column cannot hold (arrays, maps, structs).
pub fn column_type(schema: &Schema) -> Option<&'static str> {
    Some(match (schema.kind, schema.name.as_deref()) {
        (Type::Bytes, Some(logical::DECIMAL)) => "DECIMAL",
        (Type::Int32, Some(logical::DATE)) => "DATE",
        (Type::Int32, Some(logical::TIME)) => "TIME",
        (Type::Int64, Some(logical::TIMESTAMP)) => "TIMESTAMP",
        (Type::Int8 | Type::Int16, _) => "SMALLINT",
        (Type::Int32, _) => "INT",
        (Type::Int64, _) => "BIGINT",
        (Type::Float32, _) => "REAL",
        (Type::Float64, _) => "DOUBLE PRECISION",
        (Type::Boolean, _) => "BOOLEAN",
        (Type::String, _) => "TEXT",
        (Type::Bytes, _) => "BYTEA",
        (Type::Array | Type::Map | Type::Struct, _) => return None,
    })
}

/// The type of the staging column that carries values of `schema` in binary COPY: what
/// [`Cell::of`] encodes. A Decimal travels as its digits (text), cast to NUMERIC.
pub fn staging_type(schema: &Schema) -> Option<&'static str> {
    Some(match (schema.kind, schema.name.as_deref()) {
        (Type::Bytes, Some(logical::DECIMAL)) => "text",
        (Type::Int32, Some(logical::DATE)) => "date",
        (Type::Int32, Some(logical::TIME)) => "time",
        (Type::Int64, Some(logical::TIMESTAMP)) => "timestamp",
        (Type::Int8 | Type::Int16, _) => "int2",
        (Type::Int32, _) => "int4",
        (Type::Int64, _) => "int8",
        (Type::Float32, _) => "float4",
        (Type::Float64, _) => "float8",
        (Type::Boolean, _) => "bool",
        (Type::String, _) => "text",
        (Type::Bytes, _) => "bytea",
        (Type::Array | Type::Map | Type::Struct, _) => return None,
    })
}

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// One value as binary COPY carries it, in its staging column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// NULL.
    Null,
    /// int2.
    I16(i16),
    /// int4, or date (days since 2000-01-01).
    I32(i32),
    /// int8, time (microseconds since midnight) or timestamp (microseconds since
    /// 2000-01-01).
    I64(i64),
    /// float4.
    F32(f32),
    /// float8.
    F64(f64),
    /// bool.
    Bool(bool),
    /// text (also a Decimal's digits).
    Text(String),
    /// bytea.
    Bytes(Vec<u8>),
}

impl Cell {
    /// `value` of `schema` in its staging type, or why it cannot be written.
    pub fn of(schema: &Schema, value: &Value) -> Result<Cell, String> {
        let logical_name = schema.name.as_deref();
        Ok(match (schema.kind, logical_name, value) {
            (_, _, Value::Null) => Cell::Null,
            (Type::Int32, Some(logical::DATE), Value::Int32(days)) => Cell::I32(
                days.checked_sub(PG_EPOCH_DAYS)
                    .ok_or_else(|| format!("date {days} is out of range"))?,
            ),
            (Type::Int32, Some(logical::TIME), Value::Int32(ms)) => {
                Cell::I64(i64::from(*ms) * 1000)
            }
            (Type::Int64, Some(logical::TIMESTAMP), Value::Int64(ms)) => Cell::I64(
                ms.checked_mul(1000)
                    .and_then(|us| us.checked_sub(PG_EPOCH_MICROS))
                    .ok_or_else(|| format!("timestamp {ms} is out of range"))?,
            ),
            (Type::Bytes, Some(logical::DECIMAL), Value::Bytes(b)) => {
                let scale = schema
                    .parameter("scale")
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                Cell::Text(decimal_text(b, scale)?)
            }
            (Type::Int8, _, Value::Int8(v)) => Cell::I16(i16::from(*v)),
            (Type::Int16, _, Value::Int16(v)) => Cell::I16(*v),
            (Type::Int32, _, Value::Int32(v)) => Cell::I32(*v),
            (Type::Int64, _, Value::Int64(v)) => Cell::I64(*v),
            (Type::Float32, _, Value::Float32(v)) => Cell::F32(*v),
            (Type::Float64, _, Value::Float64(v)) => Cell::F64(*v),
            (Type::Boolean, _, Value::Boolean(v)) => Cell::Bool(*v),
            (Type::String, _, Value::String(s)) => {
                if s.contains('\0') {
                    return Err("PostgreSQL text cannot hold a NUL character".into());
                }
                Cell::Text(s.clone())
            }
            (Type::Bytes, _, Value::Bytes(b)) => Cell::Bytes(b.clone()),
            (kind, _, v) => {
                return Err(format!(
                    "{} does not fit its {} schema",
                    v.describe(),
                    kind.name()
                ))
            }
        })
    }

    /// Appends the cell in COPY's binary field format: its length, then its bytes.
    fn encode(&self, out: &mut BytesMut) {
        match self {
            Cell::Null => out.put_i32(-1),
            Cell::I16(v) => {
                out.put_i32(2);
                out.put_i16(*v);
            }
            Cell::I32(v) => {
                out.put_i32(4);
                out.put_i32(*v);
            }
            Cell::I64(v) => {
                out.put_i32(8);
                out.put_i64(*v);
            }
            Cell::F32(v) => {
                out.put_i32(4);
                out.put_f32(*v);
            }
            Cell::F64(v) => {
                out.put_i32(8);
                out.put_f64(*v);
            }
            Cell::Bool(v) => {
                out.put_i32(1);
                out.put_u8(u8::from(*v));
            }
            Cell::Text(s) => put_bytes(out, s.as_bytes()),
            Cell::Bytes(b) => put_bytes(out, b),
        }
    }

    /// Appends bytes that identify the value (the same for equal values, different for
    /// different ones), for telling keys apart.
    pub fn identity(&self, out: &mut Vec<u8>) {
        match self {
            Cell::Null => out.push(0),
            Cell::I16(v) => {
                out.push(1);
                out.extend_from_slice(&i64::from(*v).to_be_bytes());
            }
            Cell::I32(v) => {
                out.push(1);
                out.extend_from_slice(&i64::from(*v).to_be_bytes());
            }
            Cell::I64(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Cell::F32(v) => {
                out.push(2);
                out.extend_from_slice(&f64::from(*v).to_bits().to_be_bytes());
            }
            Cell::F64(v) => {
                out.push(2);
                out.extend_from_slice(&v.to_bits().to_be_bytes());
            }
            Cell::Bool(v) => out.extend_from_slice(&[3, u8::from(*v)]),
            Cell::Text(s) => {
                out.push(4);
                out.extend_from_slice(&(s.len() as u64).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Cell::Bytes(b) => {
                out.push(5);
                out.extend_from_slice(&(b.len() as u64).to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    // A field is at most 1 GB in PostgreSQL, far below i32::MAX.
    out.put_i32(i32::try_from(b.len()).unwrap_or(i32::MAX));
    out.put_slice(b);
}

/// Rows in COPY's binary format, handed out in chunks as they fill.
pub struct CopyRows {
    buf: BytesMut,
}

/// How many bytes [`CopyRows`] gathers before a chunk is worth sending.
pub const COPY_CHUNK: usize = 256 * 1024;

impl CopyRows {
    /// The format's header.
    pub fn new() -> CopyRows {
        let mut buf = BytesMut::with_capacity(COPY_CHUNK + 4096);
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0); // flags
        buf.put_i32(0); // no header extension
        CopyRows { buf }
    }

    /// Appends a row.
    pub fn row<'a>(&mut self, cells: impl ExactSizeIterator<Item = &'a Cell>) {
        self.buf
            .put_i16(i16::try_from(cells.len()).unwrap_or(i16::MAX));
        for c in cells {
            c.encode(&mut self.buf);
        }
    }

    /// What is gathered, if it is a chunk's worth.
    pub fn chunk(&mut self) -> Option<Bytes> {
        (self.buf.len() >= COPY_CHUNK).then(|| self.buf.split().freeze())
    }

    /// The rest, with the format's trailer.
    pub fn finish(mut self) -> Bytes {
        self.buf.put_i16(-1);
        self.buf.freeze()
    }
}

impl Default for CopyRows {
    fn default() -> Self {
        CopyRows::new()
    }
}

/// A Decimal's unscaled two's-complement bytes and scale as decimal text.
pub fn decimal_text(bytes: &[u8], scale: i32) -> Result<String, String> {
    if bytes.len() > 16 {
        return Err("a Decimal wider than 128 bits is not supported".into());
    }
    if bytes.is_empty() {
        return Err("a Decimal needs at least one byte".into());
    }
    let negative = bytes[0] & 0x80 != 0;
    let mut wide = [if negative { 0xff } else { 0 }; 16];
    wide[16 - bytes.len()..].copy_from_slice(bytes);
    let unscaled = i128::from_be_bytes(wide);
    let mut digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale <= 0 {
        if unscaled != 0 {
            digits.push_str(&"0".repeat(scale.unsigned_abs() as usize));
        }
        return Ok(format!("{sign}{digits}"));
    }
    let scale = scale as usize;
    Ok(if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        format!("{sign}{int}.{frac}")
    } else {
        format!("{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
    })
}

/// `value` (of `schema`) as a SQL constant, for a column's DEFAULT; `None` when it has
/// no constant form here.
pub fn literal(schema: &Schema, value: &Value) -> Option<String> {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    Some(match Cell::of(schema, value).ok()? {
        Cell::Null => "NULL".into(),
        Cell::Text(s) if schema.name.as_deref() == Some(logical::DECIMAL) => s,
        Cell::Text(s) => quote(&s),
        Cell::I16(v) => v.to_string(),
        Cell::I32(v) if schema.name.as_deref() == Some(logical::DATE) => {
            format!("(DATE '2000-01-01' + {v})")
        }
        Cell::I32(v) => v.to_string(),
        Cell::I64(v) => match schema.name.as_deref() {
            Some(logical::TIME) => format!("(TIME '00:00' + {v} * INTERVAL '1 microsecond')"),
            Some(logical::TIMESTAMP) => {
                format!("(TIMESTAMP '2000-01-01' + {v} * INTERVAL '1 microsecond')")
            }
            _ => v.to_string(),
        },
        Cell::F32(v) if v.is_finite() => format!("{v:?}"),
        Cell::F64(v) if v.is_finite() => format!("{v:?}"),
        Cell::F32(v) => quote(&f64::from(v).to_string().replace("inf", "Infinity")),
        Cell::F64(v) => quote(&v.to_string().replace("inf", "Infinity")),
        Cell::Bool(v) => (if v { "TRUE" } else { "FALSE" }).into(),
        Cell::Bytes(b) => {
            let mut s = String::from("'\\x");
            for byte in b {
                let _ = write!(s, "{byte:02x}");
            }
            s.push_str("'::BYTEA");
            s
        }
    })
}

/// A column to create or add: its name, its schema, and whether it is part of the key.
pub struct NewColumn<'a> {
    /// The name.
    pub name: &'a str,
    /// The schema its values have.
    pub schema: &'a Schema,
    /// Part of the primary key.
    pub key: bool,
}

fn column_definition(sql: &mut String, c: &NewColumn<'_>) {
    let ty = column_type(c.schema).unwrap_or("TEXT");
    let _ = write!(sql, "{} {ty}", ident(c.name));
    if let Some(default) = c.schema.default.as_ref().and_then(|d| literal(c.schema, d)) {
        let _ = write!(sql, " DEFAULT {default}");
    }
    if c.key || !c.schema.optional {
        sql.push_str(" NOT NULL");
    }
}

/// `CREATE TABLE` with these columns, the key ones as the primary key.
pub fn create_table(table: &str, columns: &[NewColumn<'_>]) -> String {
    let mut sql = format!("CREATE TABLE IF NOT EXISTS {} (", table_ident(table));
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        column_definition(&mut sql, c);
    }
    let keys: Vec<String> = columns
        .iter()
        .filter(|c| c.key)
        .map(|c| ident(c.name))
        .collect();
    if !keys.is_empty() {
        let _ = write!(sql, ", PRIMARY KEY ({})", keys.join(", "));
    }
    sql.push(')');
    sql
}

/// `ALTER TABLE ... ADD COLUMN` for each of these columns.
pub fn add_columns(table: &str, columns: &[NewColumn<'_>]) -> String {
    let mut sql = format!("ALTER TABLE {}", table_ident(table));
    for (i, c) in columns.iter().enumerate() {
        sql.push_str(if i > 0 { ", " } else { " " });
        sql.push_str("ADD COLUMN IF NOT EXISTS ");
        column_definition(&mut sql, c);
    }
    sql
}

/// A session's staging table for rows of these staging types: columns `c0`, `c1`, ...,
/// emptied at each commit.
pub fn create_staging(name: &str, types: &[&str]) -> String {
    let mut sql = format!("CREATE TEMP TABLE IF NOT EXISTS {name} (");
    for (i, ty) in types.iter().enumerate() {
        let _ = write!(sql, "{}c{i} {ty}", if i > 0 { ", " } else { "" });
    }
    sql.push_str(") ON COMMIT DELETE ROWS");
    sql
}

/// The COPY that fills a staging table.
pub fn copy_staging(name: &str) -> String {
    format!("COPY {name} FROM STDIN (FORMAT binary)")
}

/// The COPY that fills these columns of a table directly.
pub fn copy_into(table: &str, columns: &[&str]) -> String {
    let names: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        table_ident(table),
        names.join(", ")
    )
}

/// Whether a column of type `type_name` (as `format_type` writes it) takes the binary
/// values of staging type `staging` (holding values of `schema`) as they are.
pub fn same_type(staging: &str, schema: &Schema, type_name: &str) -> bool {
    if schema.name.as_deref() == Some(logical::DECIMAL) {
        return false; // staged as text, cast
    }
    let name = match staging {
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "float4" => "real",
        "float8" => "double precision",
        "bool" => "boolean",
        "time" => "time without time zone",
        "timestamp" => "timestamp without time zone",
        other => other, // text, bytea, date
    };
    name == type_name
}

/// What a table's column is, as the catalog says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableColumn {
    /// Its type as `format_type` writes it (`integer`, `character varying(20)`).
    pub type_name: String,
    /// Whether its type is a string type (text, varchar, char): text goes in as it is.
    pub string: bool,
}

/// The expression that reads staging column `i` (holding values of `schema`) as a value
/// for a table column of type `target`.
pub fn staged(i: usize, schema: &Schema, target: Option<&TableColumn>) -> String {
    let column = format!("s.c{i}");
    if schema.kind == Type::Bytes && schema.name.as_deref() == Some(logical::DECIMAL) {
        return format!("CAST({column} AS NUMERIC)");
    }
    match target {
        Some(t) if schema.kind == Type::String && !t.string => {
            format!("CAST({column} AS {})", t.type_name)
        }
        _ => column,
    }
}

/// How the rows of a staging table are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    /// Inserted.
    Insert,
    /// Inserted, or the row with the same key updated.
    Upsert,
    /// The row with the same key updated (none: nothing happens).
    Update,
    /// The row with the same key deleted.
    Delete,
}

/// The statement that applies the rows of staging table `staging` to `table`: `columns`
/// are the table's column names, in staging order, the first `keys` of them the key,
/// `exprs` the expressions from [`staged`] that read them. `None` when there is nothing
/// to do (an update of key columns only).
pub fn apply(
    how: Apply,
    table: &str,
    staging: &str,
    columns: &[&str],
    keys: usize,
    exprs: &[String],
) -> Option<String> {
    let t = table_ident(table);
    let names: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let key_match = || {
        (0..keys)
            .map(|i| format!("t.{} = {}", names[i], exprs[i]))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    Some(match how {
        Apply::Insert | Apply::Upsert => {
            let mut sql = format!(
                "INSERT INTO {t} ({}) SELECT {} FROM {staging} s",
                names.join(", "),
                exprs.join(", ")
            );
            if how == Apply::Upsert {
                let _ = write!(sql, " ON CONFLICT ({}) DO ", names[..keys].join(", "));
                if names.len() == keys {
                    sql.push_str("NOTHING");
                } else {
                    sql.push_str("UPDATE SET ");
                    let sets: Vec<String> = names[keys..]
                        .iter()
                        .map(|c| format!("{c} = EXCLUDED.{c}"))
                        .collect();
                    sql.push_str(&sets.join(", "));
                }
            }
            sql
        }
        Apply::Update => {
            if names.len() == keys {
                return None;
            }
            let sets: Vec<String> = (keys..names.len())
                .map(|i| format!("{} = {}", names[i], exprs[i]))
                .collect();
            format!(
                "UPDATE {t} AS t SET {} FROM {staging} s WHERE {}",
                sets.join(", "),
                key_match()
            )
        }
        Apply::Delete => format!(
            "DELETE FROM {t} AS t USING {staging} s WHERE {}",
            key_match()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(table_ident("sales.Orders"), "\"sales\".\"Orders\"");
    }

    #[test]
    fn decimals_are_written_as_their_digits() {
        assert_eq!(decimal_text(&[0xff, 0x85], 2).unwrap(), "-1.23");
        assert_eq!(decimal_text(&[0x05], 3).unwrap(), "0.005");
        assert_eq!(decimal_text(&[0x05], -2).unwrap(), "500");
        assert_eq!(decimal_text(&[0x00], 2).unwrap(), "0.00");
        assert!(decimal_text(&[0; 17], 0).is_err());
    }

    #[test]
    fn cells_follow_the_schema_and_refuse_what_does_not_fit() {
        let date = Schema::of(Type::Int32).named(logical::DATE);
        assert_eq!(Cell::of(&date, &Value::Int32(10_957)), Ok(Cell::I32(0)));
        let ts = Schema::of(Type::Int64).named(logical::TIMESTAMP);
        assert_eq!(
            Cell::of(&ts, &Value::Int64(946_684_800_001)),
            Ok(Cell::I64(1000))
        );
        assert_eq!(
            Cell::of(&Schema::of(Type::Int8), &Value::Int8(-3)),
            Ok(Cell::I16(-3))
        );
        assert!(Cell::of(&Schema::of(Type::Int64), &Value::Int32(1)).is_err());
        assert!(Cell::of(&Schema::of(Type::String), &Value::String("a\0".into())).is_err());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        Cell::I32(7).identity(&mut a);
        Cell::I64(7).identity(&mut b);
        assert_eq!(a, b, "the same number is the same key whatever its width");
    }

    #[test]
    fn defaults_are_constants() {
        let s = Schema::of(Type::String);
        assert_eq!(
            literal(&s, &Value::String("it's".into())).unwrap(),
            "'it''s'"
        );
        assert_eq!(
            literal(&Schema::of(Type::Float64), &Value::Float64(0.1)).unwrap(),
            "0.1"
        );
        assert_eq!(
            literal(&Schema::decimal(2), &Value::Bytes(vec![0xff, 0x85])).unwrap(),
            "-1.23"
        );
        assert_eq!(
            literal(&Schema::of(Type::Bytes), &Value::Bytes(vec![0, 255])).unwrap(),
            "'\\x00ff'::BYTEA"
        );
    }

    #[test]
    fn statements_read_the_staging_table() {
        let cols = ["id", "name", "n"];
        let exprs: Vec<String> = (0..3).map(|i| format!("s.c{i}")).collect();
        assert_eq!(
            apply(Apply::Upsert, "accounts", "stg", &cols, 1, &exprs).unwrap(),
            "INSERT INTO \"accounts\" (\"id\", \"name\", \"n\") SELECT s.c0, s.c1, s.c2 FROM stg s \
             ON CONFLICT (\"id\") DO UPDATE SET \"name\" = EXCLUDED.\"name\", \"n\" = EXCLUDED.\"n\""
        );
        assert_eq!(
            apply(Apply::Delete, "a.b", "stg", &cols[..1], 1, &exprs[..1]).unwrap(),
            "DELETE FROM \"a\".\"b\" AS t USING stg s WHERE t.\"id\" = s.c0"
        );
        assert_eq!(
            apply(Apply::Update, "t", "stg", &cols, 1, &exprs).unwrap(),
            "UPDATE \"t\" AS t SET \"name\" = s.c1, \"n\" = s.c2 FROM stg s WHERE t.\"id\" = s.c0"
        );
        assert!(apply(Apply::Update, "t", "stg", &cols[..1], 1, &exprs[..1]).is_none());
        let text = TableColumn {
            type_name: "uuid".into(),
            string: false,
        };
        assert_eq!(
            staged(2, &Schema::of(Type::String), Some(&text)),
            "CAST(s.c2 AS uuid)"
        );
        assert_eq!(
            staged(0, &Schema::decimal(2), None),
            "CAST(s.c0 AS NUMERIC)"
        );
    }
}
