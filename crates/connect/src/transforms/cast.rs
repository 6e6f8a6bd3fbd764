//! Kafka's `Cast$Key` / `Cast$Value`: casts fields of a map or struct, or the whole
//! primitive key or value, to int8, int16, int32, int64, float32, float64, boolean or
//! string (`spec`: `field:type,...`, or a single `type`), with Java's conversions (integer
//! narrowing wraps, floats truncate toward zero and saturate, strings parse, numbers print
//! as Java prints them). Also the Decimal and Java-number helpers MaskField shares.

use std::sync::Arc;

use base64::Engine as _;

use super::routers::Civil;
use super::{field_value, not_a_struct, require_map, Part, SchemaCache, Settings, Transformation};
use crate::data::{logical, Schema, Struct, Type, Value};
use crate::record::Record;
use crate::ConnectError;

const OUTPUT_TYPES: &str = "[INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING]";
const INPUT_TYPES: &str = "[INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING, BYTES]";
const PURPOSE: &str = "cast types";

/// `Cast$Key` / `Cast$Value`.
pub struct Cast {
    part: Part,
    /// The type the whole value is cast to (a `spec` of one bare type).
    whole: Option<Type>,
    /// Field casts, in `spec` order.
    casts: Vec<(String, Type)>,
    cache: SchemaCache,
}

/// A cast target type by Kafka's (case-insensitive) enum name, or the error.
fn target_type(name: &str) -> Result<Type, String> {
    match Type::from_name(&name.to_ascii_lowercase()) {
        Some(t @ (Type::Array | Type::Map | Type::Struct | Type::Bytes)) => Err(format!(
            "Cast transformation does not support casting to {}; supported types are {OUTPUT_TYPES}",
            t.name().to_ascii_uppercase()
        )),
        Some(t) => Ok(t),
        None => Err(format!("Invalid type found in casting spec: {name}")),
    }
}

/// Builds Cast from its settings.
pub fn build(s: &mut Settings, part: Part) -> Option<Box<dyn Transformation>> {
    let raw = s.raw("spec").unwrap_or_default().trim().to_string();
    let spec = s.required_list("spec")?;
    if spec.is_empty() {
        s.invalid("spec", &raw, "Must specify at least one field to cast.");
        return None;
    }
    let mut whole = None;
    let mut casts = Vec::new();
    for mapping in &spec {
        let mut parts: Vec<&str> = mapping.split(':').collect();
        while parts.last() == Some(&"") {
            parts.pop();
        }
        let (field, type_name) = match parts.as_slice() {
            [t] => (None, *t),
            [f, t] => (Some(f.trim().to_string()), *t),
            _ => {
                s.invalid("spec", &raw, &format!("Invalid cast mapping: {mapping}"));
                return None;
            }
        };
        let to = match target_type(type_name.trim()) {
            Ok(t) => t,
            Err(why) => {
                s.invalid("spec", &raw, &why);
                return None;
            }
        };
        match field {
            None => whole = Some(to),
            Some(f) => casts.push((f, to)),
        }
    }
    if whole.is_some() && spec.len() > 1 {
        s.invalid(
            "spec",
            &raw,
            "Cast transformations that specify a type to cast the entire value to may ony specify a single cast in their spec",
        );
        return None;
    }
    Some(Box::new(Cast {
        part,
        whole,
        casts,
        cache: SchemaCache::default(),
    }))
}

impl Cast {
    fn cast_of(&self, field: &str) -> Option<Type> {
        self.casts.iter().find(|(f, _)| f == field).map(|(_, t)| *t)
    }

    /// A fresh schema of type `to` keeping `from`'s optionality and (cast) default.
    fn cast_schema(from: &Schema, to: Type, mut out: Schema) -> Result<Schema, ConnectError> {
        out.optional = from.optional;
        if let Some(d) = &from.default {
            out.default = Some(cast_value(Some(from), d.clone(), to)?);
        }
        Ok(out)
    }

    fn updated_schema(&self, schema: &Schema) -> Result<Schema, ConnectError> {
        if let Some(to) = self.whole {
            let is_logical = schema.name.as_deref().is_some_and(|n| {
                [
                    logical::DECIMAL,
                    logical::DATE,
                    logical::TIME,
                    logical::TIMESTAMP,
                ]
                .contains(&n)
            });
            // Kafka copies the name and parameters too; a logical type's name on another
            // type would make its readers misread it, so that is left off.
            let basics = if is_logical {
                Schema::of(to)
            } else {
                super::copy_basics(schema, to)
            };
            return Cast::cast_schema(schema, to, basics);
        }
        if schema.kind != Type::Struct {
            return Err(ConnectError::Data(format!(
                "Only Struct objects supported for [{PURPOSE}], found: a {} schema",
                schema.kind.name()
            )));
        }
        let mut out = super::copy_basics(schema, Type::Struct);
        out.optional = schema.optional;
        for f in &schema.fields {
            let field_schema = match self.cast_of(&f.name) {
                Some(to) => Cast::cast_schema(&f.schema, to, Schema::of(to))?,
                None => (*f.schema).clone(),
            };
            super::add_field(&mut out, &f.name, field_schema)?;
        }
        Ok(out)
    }
}

impl Transformation for Cast {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let (schema, value) = self.part.take(&mut record);
        match (schema, self.whole) {
            (None, Some(to)) => {
                let v = cast_value(None, value, to)?;
                self.part.put(&mut record, None, v);
            }
            (None, None) => {
                if value == Value::Null {
                    self.part.put(&mut record, None, value);
                    return Ok(Some(record));
                }
                let mut entries = require_map(value, PURPOSE)?;
                for (k, v) in entries.iter_mut() {
                    if let Value::String(name) = k {
                        if let Some(to) = self.cast_of(name) {
                            *v = cast_value(None, std::mem::replace(v, Value::Null), to)?;
                        }
                    }
                }
                self.part.put(&mut record, None, Value::Map(entries));
            }
            (Some(schema), Some(to)) => {
                let updated = self
                    .cache
                    .get_or(&schema, || self.updated_schema(&schema))?;
                let v = cast_value(Some(&*schema), value, to)?;
                self.part.put(&mut record, Some(updated), v);
            }
            (Some(schema), None) => {
                let s = match value {
                    Value::Null => {
                        self.part.put(&mut record, Some(schema), Value::Null);
                        return Ok(Some(record));
                    }
                    Value::Struct(s) => s,
                    other => return Err(not_a_struct(&other, PURPOSE)),
                };
                let updated = self
                    .cache
                    .get_or(&schema, || self.updated_schema(&schema))?;
                let mut values = Vec::with_capacity(updated.fields.len());
                for f in &updated.fields {
                    let original = s.schema.field(&f.name);
                    let v = original.map(|o| field_value(&s, o)).unwrap_or(Value::Null);
                    values.push(match (self.cast_of(&f.name), original) {
                        (Some(to), Some(o)) => cast_value(Some(&*o.schema), v, to)?,
                        _ => v,
                    });
                }
                let out = Struct {
                    schema: Arc::clone(&updated),
                    values,
                };
                self.part
                    .put(&mut record, Some(updated), Value::Struct(out));
            }
        }
        Ok(Some(record))
    }
}

/// A number as Java's `Number` holds it.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
    Decimal(i128, i32),
}

impl Num {
    /// Java's `longValue()` (then narrowed by the caller, as `intValue()` & co. wrap).
    fn long(self) -> i64 {
        match self {
            Num::Int(i) => i,
            Num::Float(f) => f as i64,
            Num::Decimal(u, scale) => decimal_integer(u, scale) as i64,
        }
    }

    /// Java's `intValue()` (a float saturates to int first, then narrows).
    fn int(self) -> i32 {
        match self {
            Num::Float(f) => f as i32,
            other => other.long() as i32,
        }
    }

    fn double(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
            Num::Decimal(u, scale) => decimal_to_string(u, scale).parse().unwrap_or(f64::NAN),
        }
    }
}

/// The value's type when it has no schema (Kafka's `ConnectSchema.schemaType`).
fn type_of(value: &Value) -> Type {
    match value {
        Value::Null | Value::String(_) => Type::String,
        Value::Int8(_) => Type::Int8,
        Value::Int16(_) => Type::Int16,
        Value::Int32(_) => Type::Int32,
        Value::Int64(_) => Type::Int64,
        Value::Float32(_) => Type::Float32,
        Value::Float64(_) => Type::Float64,
        Value::Boolean(_) => Type::Boolean,
        Value::Bytes(_) => Type::Bytes,
        Value::Array(_) => Type::Array,
        Value::Map(_) => Type::Map,
        Value::Struct(_) => Type::Struct,
    }
}

/// A Decimal schema's scale (0 when not given).
pub fn decimal_scale(schema: &Schema) -> i32 {
    schema
        .parameter("scale")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Whether `schema` is the Decimal logical type.
pub fn is_decimal(schema: Option<&Schema>) -> bool {
    schema.and_then(|s| s.name.as_deref()) == Some(logical::DECIMAL)
}

fn number(value: &Value, schema: Option<&Schema>) -> Result<Option<Num>, ConnectError> {
    Ok(Some(match value {
        Value::Int8(i) => Num::Int((*i).into()),
        Value::Int16(i) => Num::Int((*i).into()),
        Value::Int32(i) => Num::Int((*i).into()),
        Value::Int64(i) => Num::Int(*i),
        Value::Float32(f) => Num::Float((*f).into()),
        Value::Float64(f) => Num::Float(*f),
        Value::Bytes(b) if is_decimal(schema) => {
            let scale = schema.map(decimal_scale).unwrap_or(0);
            Num::Decimal(unscaled(b)?, scale)
        }
        _ => return Ok(None),
    }))
}

fn unscaled(bytes: &[u8]) -> Result<i128, ConnectError> {
    decimal_unscaled(bytes).ok_or_else(|| {
        ConnectError::Data(format!(
            "a Decimal of {} bytes is larger than Strom's 128-bit decimals",
            bytes.len()
        ))
    })
}

/// `value` (described by `schema`, or schemaless) cast to `to`, as Kafka's Cast does.
pub fn cast_value(schema: Option<&Schema>, value: Value, to: Type) -> Result<Value, ConnectError> {
    if value == Value::Null {
        return Ok(Value::Null);
    }
    let from = schema.map(|s| s.kind).unwrap_or_else(|| type_of(&value));
    if matches!(from, Type::Array | Type::Map | Type::Struct) {
        return Err(ConnectError::Data(format!(
            "Cast transformation does not support casting from {}; supported types are {INPUT_TYPES}",
            from.name().to_ascii_uppercase()
        )));
    }
    if to == Type::String {
        return Ok(Value::String(java_string(&value, schema)?));
    }
    let out_of_range = |s: &str| {
        ConnectError::Data(format!(
            "Value ({s}) was out of range for requested data type"
        ))
    };
    let num = match &value {
        Value::Boolean(b) => Num::Int(i64::from(*b)),
        Value::String(s) => {
            let t = s.trim();
            return Ok(match to {
                Type::Int8 => Value::Int8(s.parse().map_err(|_| out_of_range(s))?),
                Type::Int16 => Value::Int16(s.parse().map_err(|_| out_of_range(s))?),
                Type::Int32 => Value::Int32(s.parse().map_err(|_| out_of_range(s))?),
                Type::Int64 => Value::Int64(s.parse().map_err(|_| out_of_range(s))?),
                Type::Float32 => Value::Float32(
                    java_float_text(t)
                        .and_then(|f| f.parse().ok())
                        .ok_or_else(|| out_of_range(s))?,
                ),
                Type::Float64 => Value::Float64(
                    java_float_text(t)
                        .and_then(|f| f.parse().ok())
                        .ok_or_else(|| out_of_range(s))?,
                ),
                _ => Value::Boolean(s.eq_ignore_ascii_case("true")),
            });
        }
        other => match number(other, schema)? {
            Some(n) => n,
            None => {
                return Err(ConnectError::Data(format!(
                    "Unexpected type in Cast transformation: class {}",
                    super::java_class(other, schema)
                )))
            }
        },
    };
    Ok(match to {
        Type::Int8 => Value::Int8(num.int() as i8),
        Type::Int16 => Value::Int16(num.int() as i16),
        Type::Int32 => Value::Int32(num.int()),
        Type::Int64 => Value::Int64(num.long()),
        Type::Float32 => Value::Float32(match (num, &value) {
            (_, Value::Float32(f)) => *f,
            (n, _) => n.double() as f32,
        }),
        Type::Float64 => Value::Float64(num.double()),
        _ => Value::Boolean(num.long() != 0),
    })
}

/// A float in Java's `Float.parseFloat` / `Double.parseDouble` spelling (`1.5`, `2e3`,
/// `1.5f`, `Infinity`, `NaN`) rewritten for Rust's parser; `None` for what Java refuses.
fn java_float_text(s: &str) -> Option<String> {
    let negative = s.starts_with('-');
    match s.strip_prefix(['+', '-']).unwrap_or(s) {
        "Infinity" => return Some(if negative { "-inf" } else { "inf" }.into()),
        "NaN" => return Some("NaN".into()),
        _ => {}
    }
    let number = s.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(s);
    let plain = number
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'));
    (plain && number.chars().any(|c| c.is_ascii_digit())).then(|| number.to_string())
}

/// A value as Java's `toString()` prints it, as Cast's string cast does (bytes as
/// base64, Decimal as `BigDecimal`, Date / Time / Timestamp in ISO 8601, UTC).
pub fn java_string(value: &Value, schema: Option<&Schema>) -> Result<String, ConnectError> {
    let schema_name = schema.and_then(|s| s.name.as_deref());
    Ok(match value {
        Value::Null => "null".into(),
        Value::Int32(days) if schema_name == Some(logical::DATE) => {
            let c = Civil::from_millis(i64::from(*days) * 86_400_000);
            format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
        }
        Value::Int32(ms) if schema_name == Some(logical::TIME) => {
            let c = Civil::from_millis(i64::from(*ms));
            format!(
                "{:02}:{:02}:{:02}.{:03}Z",
                c.hour, c.minute, c.second, c.milli
            )
        }
        Value::Int64(ms) if schema_name == Some(logical::TIMESTAMP) => {
            let c = Civil::from_millis(*ms);
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                c.year, c.month, c.day, c.hour, c.minute, c.second, c.milli
            )
        }
        Value::Int8(i) => i.to_string(),
        Value::Int16(i) => i.to_string(),
        Value::Int32(i) => i.to_string(),
        Value::Int64(i) => i.to_string(),
        Value::Float32(f) => java_float(*f),
        Value::Float64(f) => java_double(*f),
        Value::Boolean(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Bytes(b) if schema_name == Some(logical::DECIMAL) => {
            decimal_to_string(unscaled(b)?, schema.map(decimal_scale).unwrap_or(0))
        }
        Value::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b),
        other => {
            return Err(ConnectError::Data(format!(
                "Unexpected type in Cast transformation: class {}",
                super::java_class(other, schema)
            )))
        }
    })
}

/// Java's `Double.toString`: plain between 10^-3 and 10^7, else `d.dddE±n`.
pub fn java_double(d: f64) -> String {
    java_decimal_text(
        d.is_nan(),
        d.is_infinite(),
        d < 0.0,
        d.abs(),
        &format!("{d}"),
        &format!("{d:e}"),
    )
}

/// Java's `Float.toString`.
pub fn java_float(f: f32) -> String {
    java_decimal_text(
        f.is_nan(),
        f.is_infinite(),
        f < 0.0,
        f64::from(f.abs()),
        &format!("{f}"),
        &format!("{f:e}"),
    )
}

fn java_decimal_text(
    nan: bool,
    inf: bool,
    negative: bool,
    abs: f64,
    plain: &str,
    sci: &str,
) -> String {
    if nan {
        return "NaN".into();
    }
    if inf {
        return if negative { "-Infinity" } else { "Infinity" }.into();
    }
    if abs == 0.0 || (1e-3..1e7).contains(&abs) {
        let mut s = plain.to_string();
        if !s.contains('.') {
            s.push_str(".0");
        }
        return s;
    }
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_string()
    } else {
        format!("{mantissa}.0")
    };
    format!("{mantissa}E{exp}")
}

/// A Decimal's unscaled value from its two's-complement big-endian bytes (`None` past
/// 128 bits).
pub fn decimal_unscaled(bytes: &[u8]) -> Option<i128> {
    if bytes.len() > 16 {
        return None;
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut buf = if negative { [0xff; 16] } else { [0; 16] };
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    Some(i128::from_be_bytes(buf))
}

/// The shortest two's-complement big-endian bytes of `unscaled` (Java's
/// `BigInteger.toByteArray`).
pub fn decimal_bytes(unscaled: i128) -> Vec<u8> {
    let all = unscaled.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (all[start], all[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    all[start..].to_vec()
}

/// The integer part of `unscaled × 10^-scale`, truncated toward zero (wrapping past 128
/// bits).
fn decimal_integer(unscaled: i128, scale: i32) -> i128 {
    if scale >= 0 {
        10i128
            .checked_pow(scale.unsigned_abs())
            .map(|p| unscaled / p)
            .unwrap_or(0)
    } else {
        unscaled.wrapping_mul(10i128.wrapping_pow(scale.unsigned_abs()))
    }
}

/// A Decimal as Java's `BigDecimal.toString` prints it.
pub fn decimal_to_string(unscaled: i128, scale: i32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    let n = digits.len() as i64;
    let adjusted = n - 1 - i64::from(scale);
    if scale >= 0 && adjusted >= -6 {
        let scale = scale as i64;
        if scale == 0 {
            format!("{sign}{digits}")
        } else if n > scale {
            let (int, frac) = digits.split_at((n - scale) as usize);
            format!("{sign}{int}.{frac}")
        } else {
            format!("{sign}0.{}{digits}", "0".repeat((scale - n) as usize))
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if adjusted >= 0 { "+" } else { "-" };
        format!("{sign}{first}{dot}{rest}E{exp_sign}{}", adjusted.abs())
    }
}

/// `text` (`-12.5`) as an unscaled value at `scale`, when it has no more non-zero
/// fraction digits than `scale` keeps.
pub fn parse_decimal(text: &str, scale: i32) -> Option<i128> {
    let t = text.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
        || scale < 0
    {
        return None;
    }
    let keep = scale as usize;
    let (kept, dropped) = if frac.len() > keep {
        frac.split_at(keep)
    } else {
        (frac, "")
    };
    if dropped.chars().any(|c| c != '0') {
        return None;
    }
    let digits = format!("{int}{kept}{}", "0".repeat(keep - kept.len()));
    let v: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    Some(if negative { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{errors_of, map, one, run};
    use super::*;

    fn value(schema: Option<Arc<Schema>>, v: Value) -> Record {
        Record::new("t").with_value(schema, v)
    }

    #[test]
    fn casts_fields_of_a_map() {
        let chain = one(
            "Cast$Value",
            &[("spec", "a:int8, b:string, c:boolean, d:float64, e:int32")],
        );
        let out = run(
            &chain,
            value(
                None,
                map(vec![
                    ("a", Value::Int32(300)),
                    ("b", Value::Float64(1e10)),
                    ("c", Value::String("TRUE".into())),
                    ("d", Value::String("2.5".into())),
                    ("e", Value::Float64(-7.9)),
                    ("f", Value::Int8(1)),
                ]),
            ),
        );
        assert_eq!(
            out.value,
            map(vec![
                ("a", Value::Int8(44)),
                ("b", Value::String("1.0E10".into())),
                ("c", Value::Boolean(true)),
                ("d", Value::Float64(2.5)),
                ("e", Value::Int32(-7)),
                ("f", Value::Int8(1)),
            ])
        );
        let e = chain
            .apply(value(None, map(vec![("a", Value::String("x".into()))])))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Value (x) was out of range for requested data type"
        );
    }

    #[test]
    fn casts_fields_of_a_struct_and_updates_the_schema() {
        let schema = Arc::new(
            Schema::structure(vec![
                ("id", Schema::of(Type::Int64)),
                (
                    "price",
                    Schema {
                        default: Some(Value::Float32(1.5)),
                        ..Schema::of(Type::Float32).optional()
                    },
                ),
                ("amount", Schema::decimal(2)),
                ("at", crate::transforms::timestamp_schema()),
            ])
            .named("order"),
        );
        let v = Value::Struct(Struct {
            schema: Arc::clone(&schema),
            values: vec![
                Value::Int64(12),
                Value::Null,
                Value::Bytes(decimal_bytes(-12345)),
                Value::Int64(86_400_000 + 1_001),
            ],
        });
        let chain = one(
            "Cast$Value",
            &[("spec", "id:int32,price:string,amount:string,at:string")],
        );
        let out = run(&chain, value(Some(schema), v));
        let s = out.value_schema.clone().unwrap();
        assert_eq!(s.name.as_deref(), Some("order"));
        assert_eq!(s.field("id").unwrap().schema.kind, Type::Int32);
        let price = &s.field("price").unwrap().schema;
        assert_eq!(price.kind, Type::String);
        assert!(price.optional);
        assert_eq!(price.default, Some(Value::String("1.5".into())));
        assert_eq!(s.field("at").unwrap().schema.name, None);
        let Value::Struct(st) = &out.value else {
            panic!()
        };
        assert_eq!(
            st.values,
            vec![
                Value::Int32(12),
                // A null takes the field's default first, as Kafka's Struct.get does.
                Value::String("1.5".into()),
                Value::String("-123.45".into()),
                Value::String("1970-01-02T00:00:01.001Z".into()),
            ]
        );
        s.validate(&out.value).unwrap();
    }

    #[test]
    fn casts_a_whole_primitive_value() {
        let chain = one("Cast$Key", &[("spec", "int16")]);
        let mut r = Record::new("t");
        r.key_schema = Some(Arc::new(Schema::of(Type::Int64).optional()));
        r.key = Value::Int64(65_537);
        let out = run(&chain, r);
        assert_eq!(out.key, Value::Int16(1));
        let ks = out.key_schema.unwrap();
        assert_eq!((ks.kind, ks.optional), (Type::Int16, true));
        // Schemaless; bytes print as base64; booleans count as 1 and 0.
        let s = one("Cast$Value", &[("spec", "string")]);
        assert_eq!(
            run(&s, value(None, Value::Bytes(b"hi".to_vec()))).value,
            Value::String("aGk=".into())
        );
        let i = one("Cast$Value", &[("spec", "INT64")]);
        assert_eq!(
            run(&i, value(None, Value::Boolean(true))).value,
            Value::Int64(1)
        );
        assert_eq!(run(&i, value(None, Value::Null)).value, Value::Null);
        let e = i.apply(value(None, map(vec![]))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Cast transformation does not support casting from MAP; supported types are \
             [INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING, BYTES]"
        );
        let e = i.apply(value(None, Value::Bytes(vec![1]))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Unexpected type in Cast transformation: class [B"
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        let msg = |spec: &str| errors_of("Cast$Value", &[("spec", spec)])[0].1.clone();
        assert_eq!(
            msg("a:bytes"),
            "Invalid value a:bytes for configuration transforms.t.spec: Cast transformation does not support \
             casting to BYTES; supported types are [INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING]"
        );
        assert_eq!(
            msg("int8,a:int16"),
            "Invalid value int8,a:int16 for configuration transforms.t.spec: Cast transformations that specify \
             a type to cast the entire value to may ony specify a single cast in their spec"
        );
        assert_eq!(
            msg(""),
            "Invalid value  for configuration transforms.t.spec: Must specify at least one field to cast."
        );
        assert_eq!(
            msg("a:b:c"),
            "Invalid value a:b:c for configuration transforms.t.spec: Invalid cast mapping: a:b:c"
        );
        assert_eq!(
            errors_of("Cast$Value", &[])[0].1,
            "Missing required configuration \"transforms.t.spec\" which has no default value."
        );
    }

    #[test]
    fn java_number_text() {
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(0.001), "0.001");
        assert_eq!(java_double(0.0001), "1.0E-4");
        assert_eq!(java_double(1234567.0), "1234567.0");
        assert_eq!(java_double(12345678.9), "1.23456789E7");
        assert_eq!(java_double(-0.0), "-0.0");
        assert_eq!(java_float(0.1), "0.1");
        assert_eq!(decimal_to_string(12345, 2), "123.45");
        assert_eq!(decimal_to_string(5, 3), "0.005");
        assert_eq!(decimal_to_string(5, 9), "5E-9");
        assert_eq!(decimal_to_string(5, -2), "5E+2");
        assert_eq!(decimal_unscaled(&decimal_bytes(-129)), Some(-129));
        assert_eq!(decimal_bytes(127), vec![0x7f]);
        assert_eq!(decimal_bytes(128), vec![0x00, 0x80]);
        assert_eq!(decimal_bytes(-1), vec![0xff]);
        assert_eq!(parse_decimal("-1.5", 2), Some(-150));
        assert_eq!(parse_decimal("1.505", 2), None);
        assert_eq!(parse_decimal("abc", 2), None);
        assert_eq!(decimal_integer(-12345, 2), -123);
    }
}
