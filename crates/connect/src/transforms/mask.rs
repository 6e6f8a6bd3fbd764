//! Kafka's `MaskField$Key` / `MaskField$Value`: replaces the `fields` of a map or struct
//! with their type's empty value (0, false, "", an empty array or map, the epoch for
//! Date / Time / Timestamp, 0 for a Decimal), or with `replacement` converted to the
//! field's type (numbers, strings and Decimals only), keeping the schema.

use std::collections::BTreeSet;

use super::cast::{decimal_bytes, decimal_scale, is_decimal, parse_decimal};
use super::{field_value, java_class, not_a_struct, require_map, Part, Settings, Transformation};
use crate::data::{Schema, Struct, Value};
use crate::record::Record;
use crate::ConnectError;

const PURPOSE: &str = "mask fields";

/// `MaskField$Key` / `MaskField$Value`.
pub struct MaskField {
    part: Part,
    fields: BTreeSet<String>,
    replacement: Option<String>,
}

/// Builds MaskField from its settings.
pub fn build(s: &mut Settings, part: Part) -> Option<Box<dyn Transformation>> {
    let fields = s.non_empty_list("fields");
    let replacement = s.non_empty_string("replacement", false);
    if !s.errors().is_empty() {
        return None;
    }
    Some(Box::new(MaskField {
        part,
        fields: fields?.into_iter().collect(),
        replacement,
    }))
}

impl MaskField {
    /// `value` (of `schema`, when it has one) masked.
    fn masked(&self, value: Value, schema: Option<&Schema>) -> Result<Value, ConnectError> {
        if value == Value::Null {
            return Ok(Value::Null);
        }
        match &self.replacement {
            None => empty_of(value, schema),
            Some(r) => replaced(value, schema, r),
        }
    }
}

/// The empty value of `value`'s type.
fn empty_of(value: Value, schema: Option<&Schema>) -> Result<Value, ConnectError> {
    Ok(match value {
        Value::Boolean(_) => Value::Boolean(false),
        Value::Int8(_) => Value::Int8(0),
        Value::Int16(_) => Value::Int16(0),
        Value::Int32(_) => Value::Int32(0),
        Value::Int64(_) => Value::Int64(0),
        Value::Float32(_) => Value::Float32(0.0),
        Value::Float64(_) => Value::Float64(0.0),
        Value::String(_) => Value::String(String::new()),
        Value::Array(_) => Value::Array(Vec::new()),
        Value::Map(_) => Value::Map(Vec::new()),
        Value::Bytes(_) if is_decimal(schema) => Value::Bytes(decimal_bytes(0)),
        other => {
            return Err(ConnectError::Data(format!(
                "Cannot mask value of type: class {}",
                java_class(&other, schema)
            )))
        }
    })
}

/// `replacement` converted to `value`'s type.
fn replaced(
    value: Value,
    schema: Option<&Schema>,
    replacement: &str,
) -> Result<Value, ConnectError> {
    let class = java_class(&value, schema);
    let not_a_number = || {
        ConnectError::Data(format!(
            "Unable to convert {replacement} (class java.lang.String) to number"
        ))
    };
    // As Kafka's `Values.convertTo...`: an integer, or a number truncated toward zero.
    let integer = || -> Result<i64, ConnectError> {
        let t = replacement.trim();
        t.parse::<i64>()
            .ok()
            .or_else(|| {
                t.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f as i64)
            })
            .ok_or_else(not_a_number)
    };
    let float = || -> Result<f64, ConnectError> {
        replacement
            .trim()
            .parse::<f64>()
            .map_err(|_| not_a_number())
    };
    if class == "java.util.Date" {
        return Err(ConnectError::Data(format!(
            "Cannot mask value of type class {class} with custom replacement."
        )));
    }
    Ok(match value {
        Value::Int8(_) => Value::Int8(integer()? as i8),
        Value::Int16(_) => Value::Int16(integer()? as i16),
        Value::Int32(_) => Value::Int32(integer()? as i32),
        Value::Int64(_) => Value::Int64(integer()?),
        Value::Float32(_) => Value::Float32(float()? as f32),
        Value::Float64(_) => Value::Float64(float()?),
        Value::String(_) => Value::String(replacement.to_string()),
        Value::Bytes(_) if is_decimal(schema) => {
            let scale = schema.map(decimal_scale).unwrap_or(0);
            let unscaled = parse_decimal(replacement, scale).ok_or_else(|| {
                ConnectError::Data(format!(
                    "Unable to convert {replacement} (class java.lang.String) to a Decimal of scale {scale}"
                ))
            })?;
            Value::Bytes(decimal_bytes(unscaled))
        }
        _ => {
            return Err(ConnectError::Data(format!(
                "Cannot mask value of type class {class} with custom replacement."
            )))
        }
    })
}

impl Transformation for MaskField {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        if *self.part.value(&record) == Value::Null {
            return Ok(Some(record));
        }
        let (schema, value) = self.part.take(&mut record);
        match schema {
            None => {
                let mut entries = require_map(value, PURPOSE)?;
                for (k, v) in entries.iter_mut() {
                    if matches!(k, Value::String(name) if self.fields.contains(name)) {
                        *v = self.masked(std::mem::replace(v, Value::Null), None)?;
                    }
                }
                self.part.put(&mut record, None, Value::Map(entries));
            }
            Some(schema) => {
                let s = match value {
                    Value::Struct(s) => s,
                    other => return Err(not_a_struct(&other, PURPOSE)),
                };
                let mut values = Vec::with_capacity(s.schema.fields.len());
                for f in &s.schema.fields {
                    let v = field_value(&s, f);
                    values.push(if self.fields.contains(&f.name) {
                        self.masked(v, Some(&*f.schema))?
                    } else {
                        v
                    });
                }
                let out = Struct {
                    schema: s.schema,
                    values,
                };
                self.part.put(&mut record, Some(schema), Value::Struct(out));
            }
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::tests::{errors_of, map, one, run};
    use super::*;
    use crate::data::Type;

    fn account() -> Arc<Schema> {
        Arc::new(Schema::structure(vec![
            ("id", Schema::of(Type::Int32)),
            ("ssn", Schema::of(Type::String)),
            ("balance", Schema::decimal(2)),
            ("active", Schema::of(Type::Boolean)),
            ("tags", Schema::array(Schema::of(Type::String))),
        ]))
    }

    fn alice() -> Value {
        Value::Struct(Struct {
            schema: account(),
            values: vec![
                Value::Int32(7),
                Value::String("123-45-6789".into()),
                Value::Bytes(decimal_bytes(100_050)),
                Value::Boolean(true),
                Value::Array(vec![Value::String("vip".into())]),
            ],
        })
    }

    #[test]
    fn masks_schemaless_fields_to_empty_values() {
        let chain = one("MaskField$Value", &[("fields", "n,s,b,l,absent")]);
        let r = Record::new("t").with_value(
            None,
            map(vec![
                ("n", Value::Float64(3.5)),
                ("s", Value::String("secret".into())),
                ("b", Value::Boolean(true)),
                ("l", Value::Array(vec![Value::Int8(1)])),
                ("keep", Value::Int8(9)),
            ]),
        );
        assert_eq!(
            run(&chain, r).value,
            map(vec![
                ("n", Value::Float64(0.0)),
                ("s", Value::String(String::new())),
                ("b", Value::Boolean(false)),
                ("l", Value::Array(vec![])),
                ("keep", Value::Int8(9)),
            ])
        );
        let e = chain
            .apply(Record::new("t").with_value(None, map(vec![("s", Value::Bytes(vec![1]))])))
            .unwrap_err();
        assert_eq!(e.to_string(), "Cannot mask value of type: class [B");
    }

    #[test]
    fn masks_struct_fields_keeping_the_schema() {
        let chain = one("MaskField$Value", &[("fields", "ssn,balance,active,tags")]);
        let out = run(
            &chain,
            Record::new("t").with_value(Some(account()), alice()),
        );
        let Value::Struct(s) = &out.value else {
            panic!()
        };
        assert_eq!(
            s.values,
            vec![
                Value::Int32(7),
                Value::String(String::new()),
                Value::Bytes(vec![0]),
                Value::Boolean(false),
                Value::Array(vec![]),
            ]
        );
        assert_eq!(out.value_schema, Some(account()));
        account().validate(&out.value).unwrap();
    }

    #[test]
    fn masks_with_a_replacement_converted_to_the_field_type() {
        let chain = one(
            "MaskField$Value",
            &[("fields", "id,ssn,balance"), ("replacement", "12")],
        );
        let out = run(
            &chain,
            Record::new("t").with_value(Some(account()), alice()),
        );
        let Value::Struct(s) = &out.value else {
            panic!()
        };
        assert_eq!(s.values[0], Value::Int32(12));
        assert_eq!(s.values[1], Value::String("12".into()));
        assert_eq!(s.values[2], Value::Bytes(decimal_bytes(1200)));

        let words = one(
            "MaskField$Value",
            &[("fields", "id"), ("replacement", "xxx")],
        );
        let e = words
            .apply(Record::new("t").with_value(Some(account()), alice()))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Unable to convert xxx (class java.lang.String) to number"
        );
        let flag = one(
            "MaskField$Value",
            &[("fields", "active"), ("replacement", "x")],
        );
        let e = flag
            .apply(Record::new("t").with_value(Some(account()), alice()))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Cannot mask value of type class java.lang.Boolean with custom replacement."
        );
        // The key is masked the same way; a tombstone passes through.
        let key = one("MaskField$Key", &[("fields", "k")]);
        let out = run(
            &key,
            Record::new("t").with_key(None, map(vec![("k", Value::Int64(5))])),
        );
        assert_eq!(out.key, map(vec![("k", Value::Int64(0))]));
        assert_eq!(run(&chain, Record::new("t")), Record::new("t"));
    }

    #[test]
    fn bad_configs_are_refused() {
        assert_eq!(
            errors_of("MaskField$Value", &[("fields", "a"), ("replacement", "")])[0].1,
            "Invalid value  for configuration transforms.t.replacement: String must be non-empty"
        );
        assert_eq!(
            errors_of("MaskField$Value", &[])[0].0,
            "transforms.t.fields"
        );
    }
}
