//! Converters between Connect's typed values and a record's key or value bytes, by Kafka's
//! class names: StringConverter, ByteArrayConverter and JsonConverter (with
//! `schemas.enable`, Connect's `{"schema": ..., "payload": ...}` envelope, whose schema
//! JSON is Kafka's, so records written by Kafka Connect read back here and the other way).

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Map as JsonMap, Value as Json};

use crate::data::{Schema, Struct, Type, Value};
use crate::ConnectError;

/// A value with its schema (`None`: schemaless).
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaAndValue {
    /// The schema, when the data carries one.
    pub schema: Option<Arc<Schema>>,
    /// The value.
    pub value: Value,
}

/// Turns Connect values into bytes and back, for keys or values of one topic.
pub trait Converter: Send + Sync {
    /// The bytes of `value` (`None`: a null record part, a tombstone's value); Kafka's
    /// `fromConnectData`.
    fn encode(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConnectError>;

    /// The value in `bytes` (`None`: null); Kafka's `toConnectData`.
    fn decode(&self, topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue, ConnectError>;
}

/// The converter a `key.converter` or `value.converter` names, with its settings
/// (`schemas.enable` for JSON, default true as in Kafka).
pub fn by_class(class: &str, schemas_enable: bool) -> Result<Box<dyn Converter>, ConnectError> {
    let short = class.rsplit('.').next().unwrap_or(class);
    Ok(match short {
        "StringConverter" => Box::new(StringConverter),
        "ByteArrayConverter" => Box::new(ByteArrayConverter),
        "JsonConverter" => Box::new(JsonConverter { schemas_enable }),
        _ => {
            return Err(ConnectError::Config(format!(
                "converter class {class} is not one Strom has (StringConverter, ByteArrayConverter, JsonConverter)"
            )))
        }
    })
}

/// `org.apache.kafka.connect.storage.StringConverter`: UTF-8 text.
#[derive(Debug, Clone, Copy)]
pub struct StringConverter;

impl Converter for StringConverter {
    fn encode(
        &self,
        _topic: &str,
        _schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConnectError> {
        Ok(match value {
            Value::Null => None,
            Value::String(s) => Some(s.clone().into_bytes()),
            other => Some(display(other).into_bytes()),
        })
    }

    fn decode(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue, ConnectError> {
        let value = match bytes {
            None => Value::Null,
            Some(b) => Value::String(
                std::str::from_utf8(b)
                    .map_err(|e| ConnectError::Data(format!("not UTF-8 text: {e}")))?
                    .to_string(),
            ),
        };
        Ok(SchemaAndValue {
            schema: Some(Arc::new(Schema::of(Type::String).optional())),
            value,
        })
    }
}

/// `org.apache.kafka.connect.converters.ByteArrayConverter`: the bytes as they are.
#[derive(Debug, Clone, Copy)]
pub struct ByteArrayConverter;

impl Converter for ByteArrayConverter {
    fn encode(
        &self,
        _topic: &str,
        _schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConnectError> {
        match value {
            Value::Null => Ok(None),
            Value::Bytes(b) => Ok(Some(b.clone())),
            other => Err(ConnectError::Data(format!(
                "ByteArrayConverter takes bytes, not {}",
                other.describe()
            ))),
        }
    }

    fn decode(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue, ConnectError> {
        Ok(SchemaAndValue {
            schema: Some(Arc::new(Schema::of(Type::Bytes).optional())),
            value: bytes.map_or(Value::Null, |b| Value::Bytes(b.to_vec())),
        })
    }
}

/// `org.apache.kafka.connect.json.JsonConverter`.
#[derive(Debug, Clone, Copy)]
pub struct JsonConverter {
    /// `schemas.enable`: write and expect the schema-and-payload envelope.
    pub schemas_enable: bool,
}

impl Converter for JsonConverter {
    fn encode(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConnectError> {
        if schema.is_none() && *value == Value::Null {
            return Ok(None);
        }
        if let Some(s) = schema {
            s.validate(value)?;
        }
        let payload = value_json(value);
        let doc = if self.schemas_enable {
            json!({ "schema": schema.map(schema_json), "payload": payload })
        } else {
            payload
        };
        serde_json::to_vec(&doc)
            .map(Some)
            .map_err(|e| ConnectError::Data(e.to_string()))
    }

    fn decode(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue, ConnectError> {
        let Some(bytes) = bytes else {
            return Ok(SchemaAndValue {
                schema: None,
                value: Value::Null,
            });
        };
        let doc: Json = serde_json::from_slice(bytes)
            .map_err(|e| ConnectError::Data(format!("not JSON: {e}")))?;
        if !self.schemas_enable {
            return Ok(SchemaAndValue {
                schema: None,
                value: schemaless(&doc),
            });
        }
        let envelope = doc
            .as_object()
            .filter(|o| o.len() == 2 && o.contains_key("schema") && o.contains_key("payload"))
            .ok_or_else(|| {
                ConnectError::Data(
                    "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not contain additional fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter configuration.".into(),
                )
            })?;
        match &envelope["schema"] {
            Json::Null => Ok(SchemaAndValue {
                schema: None,
                value: schemaless(&envelope["payload"]),
            }),
            s => {
                let schema = Arc::new(parse_schema(s)?);
                let value = typed(&schema, &envelope["payload"], "payload")?;
                Ok(SchemaAndValue {
                    schema: Some(schema),
                    value,
                })
            }
        }
    }
}

/// A value as text (StringConverter of a non-string value).
fn display(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Int8(x) => x.to_string(),
        Value::Int16(x) => x.to_string(),
        Value::Int32(x) => x.to_string(),
        Value::Int64(x) => x.to_string(),
        Value::Float32(x) => x.to_string(),
        Value::Float64(x) => x.to_string(),
        Value::Boolean(x) => x.to_string(),
        Value::String(s) => s.clone(),
        other => value_json(other).to_string(),
    }
}

/// Kafka's JSON form of a schema.
pub fn schema_json(s: &Schema) -> Json {
    let mut o = JsonMap::new();
    o.insert("type".into(), json!(s.kind.name()));
    o.insert("optional".into(), json!(s.optional));
    match s.kind {
        Type::Struct => {
            let fields: Vec<Json> = s
                .fields
                .iter()
                .map(|f| {
                    let mut j = schema_json(&f.schema);
                    if let Some(m) = j.as_object_mut() {
                        m.insert("field".into(), json!(f.name));
                    }
                    j
                })
                .collect();
            o.insert("fields".into(), Json::Array(fields));
        }
        Type::Array => {
            if let Some(items) = &s.value {
                o.insert("items".into(), schema_json(items));
            }
        }
        Type::Map => {
            if let (Some(k), Some(v)) = (&s.key, &s.value) {
                o.insert("keys".into(), schema_json(k));
                o.insert("values".into(), schema_json(v));
            }
        }
        _ => {}
    }
    if let Some(n) = &s.name {
        o.insert("name".into(), json!(n));
    }
    if let Some(v) = s.version {
        o.insert("version".into(), json!(v));
    }
    if let Some(d) = &s.doc {
        o.insert("doc".into(), json!(d));
    }
    if !s.parameters.is_empty() {
        let p: JsonMap<String, Json> = s
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        o.insert("parameters".into(), Json::Object(p));
    }
    if let Some(d) = &s.default {
        o.insert("default".into(), value_json(d));
    }
    Json::Object(o)
}

/// A schema from Kafka's JSON form.
pub fn parse_schema(j: &Json) -> Result<Schema, ConnectError> {
    let bad = |why: &str| ConnectError::Data(format!("schema {j}: {why}"));
    let o = j.as_object().ok_or_else(|| bad("not an object"))?;
    let kind = o
        .get("type")
        .and_then(Json::as_str)
        .and_then(Type::from_name)
        .ok_or_else(|| bad("no known \"type\""))?;
    let mut s = Schema::of(kind);
    s.optional = o.get("optional").and_then(Json::as_bool).unwrap_or(false);
    s.name = o.get("name").and_then(Json::as_str).map(str::to_string);
    s.version = o
        .get("version")
        .and_then(Json::as_i64)
        .and_then(|v| i32::try_from(v).ok());
    s.doc = o.get("doc").and_then(Json::as_str).map(str::to_string);
    if let Some(p) = o.get("parameters").and_then(Json::as_object) {
        s.parameters = p
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect();
    }
    match kind {
        Type::Struct => {
            let fields = o
                .get("fields")
                .and_then(Json::as_array)
                .ok_or_else(|| bad("a struct needs \"fields\""))?;
            for (index, f) in fields.iter().enumerate() {
                let name = f
                    .get("field")
                    .and_then(Json::as_str)
                    .ok_or_else(|| bad("a field needs \"field\""))?;
                s.fields.push(crate::data::Field {
                    name: name.to_string(),
                    index,
                    schema: Arc::new(parse_schema(f)?),
                });
            }
        }
        Type::Array => {
            let items = o
                .get("items")
                .ok_or_else(|| bad("an array needs \"items\""))?;
            s.value = Some(Arc::new(parse_schema(items)?));
        }
        Type::Map => {
            let (k, v) = match (o.get("keys"), o.get("values")) {
                (Some(k), Some(v)) => (k, v),
                _ => return Err(bad("a map needs \"keys\" and \"values\"")),
            };
            s.key = Some(Arc::new(parse_schema(k)?));
            s.value = Some(Arc::new(parse_schema(v)?));
        }
        _ => {}
    }
    if let Some(d) = o.get("default").filter(|d| !d.is_null()) {
        let default = typed(&s, d, "default")?;
        s.default = Some(default);
    }
    Ok(s)
}

/// Kafka's JSON form of a value: bytes as base64, maps with string keys as objects and
/// others as `[key, value]` pairs.
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Int8(x) => json!(x),
        Value::Int16(x) => json!(x),
        Value::Int32(x) => json!(x),
        Value::Int64(x) => json!(x),
        Value::Float32(x) => json!(x),
        Value::Float64(x) => json!(x),
        Value::Boolean(x) => json!(x),
        Value::String(s) => json!(s),
        Value::Bytes(b) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Array(items) => Json::Array(items.iter().map(value_json).collect()),
        Value::Map(entries) if entries.iter().all(|(k, _)| matches!(k, Value::String(_))) => {
            Json::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let Value::String(k) = k else {
                            unreachable!("checked above")
                        };
                        (k.clone(), value_json(v))
                    })
                    .collect(),
            )
        }
        Value::Map(entries) => Json::Array(
            entries
                .iter()
                .map(|(k, v)| json!([value_json(k), value_json(v)]))
                .collect(),
        ),
        Value::Struct(s) => Json::Object(
            s.schema
                .fields
                .iter()
                .zip(&s.values)
                .map(|(f, v)| (f.name.clone(), value_json(v)))
                .collect(),
        ),
    }
}

/// A schemaless value from JSON, as Kafka's converter reads one: objects become maps with
/// string keys, whole numbers int64, others float64.
fn schemaless(j: &Json) -> Value {
    match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int64(i),
            None => Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(schemaless).collect()),
        Json::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (Value::String(k.clone()), schemaless(v)))
                .collect(),
        ),
    }
}

/// A value of `schema` from JSON; `at` names where, for errors.
fn typed(schema: &Schema, j: &Json, at: &str) -> Result<Value, ConnectError> {
    let wrong = || ConnectError::Data(format!("{at}: {j} is not a {} value", schema.kind.name()));
    if j.is_null() {
        return match (&schema.default, schema.optional) {
            (Some(d), _) => Ok(d.clone()),
            (None, true) => Ok(Value::Null),
            (None, false) => Err(ConnectError::Data(format!(
                "{at}: null for a required {} value",
                schema.kind.name()
            ))),
        };
    }
    let int = || j.as_i64().ok_or_else(wrong);
    Ok(match schema.kind {
        Type::Int8 => Value::Int8(i8::try_from(int()?).map_err(|_| wrong())?),
        Type::Int16 => Value::Int16(i16::try_from(int()?).map_err(|_| wrong())?),
        Type::Int32 => Value::Int32(i32::try_from(int()?).map_err(|_| wrong())?),
        Type::Int64 => Value::Int64(int()?),
        Type::Float32 => Value::Float32(j.as_f64().ok_or_else(wrong)? as f32),
        Type::Float64 => Value::Float64(j.as_f64().ok_or_else(wrong)?),
        Type::Boolean => Value::Boolean(j.as_bool().ok_or_else(wrong)?),
        Type::String => Value::String(j.as_str().ok_or_else(wrong)?.to_string()),
        Type::Bytes => Value::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(j.as_str().ok_or_else(wrong)?)
                .map_err(|_| wrong())?,
        ),
        Type::Array => {
            let items = schema.value.as_ref().ok_or_else(wrong)?;
            Value::Array(
                j.as_array()
                    .ok_or_else(wrong)?
                    .iter()
                    .enumerate()
                    .map(|(i, x)| typed(items, x, &format!("{at}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Map => {
            let (ks, vs) = match (&schema.key, &schema.value) {
                (Some(k), Some(v)) => (k, v),
                _ => return Err(wrong()),
            };
            match j {
                Json::Object(o) if ks.kind == Type::String => Value::Map(
                    o.iter()
                        .map(|(k, v)| {
                            Ok((
                                Value::String(k.clone()),
                                typed(vs, v, &format!("{at}.{k}"))?,
                            ))
                        })
                        .collect::<Result<_, ConnectError>>()?,
                ),
                Json::Array(pairs) => Value::Map(
                    pairs
                        .iter()
                        .map(|p| match p.as_array().map(Vec::as_slice) {
                            Some([k, v]) => Ok((typed(ks, k, at)?, typed(vs, v, at)?)),
                            _ => Err(wrong()),
                        })
                        .collect::<Result<_, ConnectError>>()?,
                ),
                _ => return Err(wrong()),
            }
        }
        Type::Struct => {
            let o = j.as_object().ok_or_else(wrong)?;
            let mut s = Struct::new(Arc::new(schema.clone()));
            for f in &schema.fields {
                let v = typed(
                    &f.schema,
                    o.get(&f.name).unwrap_or(&Json::Null),
                    &format!("{at}.{}", f.name),
                )?;
                s.values[f.index] = v;
            }
            Value::Struct(s)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::logical;

    fn order_schema() -> Arc<Schema> {
        Arc::new(
            Schema::structure(vec![
                ("id", Schema::of(Type::Int64)),
                ("item", Schema::of(Type::String).optional()),
                ("qty", Schema::of(Type::Int32)),
                ("price", Schema::decimal(2)),
                ("at", Schema::of(Type::Int64).named(logical::TIMESTAMP)),
                (
                    "tags",
                    Schema::map(Schema::of(Type::String), Schema::of(Type::Int16)),
                ),
            ])
            .named("shop.Order"),
        )
    }

    fn order() -> Value {
        Value::Struct(
            Struct::new(order_schema())
                .put("id", Value::Int64(42))
                .and_then(|s| s.put("qty", Value::Int32(3)))
                .and_then(|s| s.put("price", Value::Bytes(vec![0x04, 0xd2])))
                .and_then(|s| s.put("at", Value::Int64(1_700_000_000_000)))
                .and_then(|s| {
                    s.put(
                        "tags",
                        Value::Map(vec![(Value::String("gift".into()), Value::Int16(1))]),
                    )
                })
                .unwrap(),
        )
    }

    #[test]
    fn json_with_schemas_writes_kafkas_envelope_and_reads_it_back() {
        let c = JsonConverter {
            schemas_enable: true,
        };
        let bytes = c
            .encode("t", Some(&order_schema()), &order())
            .unwrap()
            .unwrap();
        let doc: Json = serde_json::from_slice(&bytes).unwrap();
        // Kafka's shape: the struct's schema with each field's type and name, then the payload.
        assert_eq!(doc["schema"]["type"], "struct");
        assert_eq!(doc["schema"]["name"], "shop.Order");
        assert_eq!(
            doc["schema"]["fields"][0],
            json!({"type": "int64", "optional": false, "field": "id"})
        );
        assert_eq!(
            doc["schema"]["fields"][3],
            json!({"type": "bytes", "optional": false, "field": "price",
                   "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}})
        );
        assert_eq!(doc["schema"]["fields"][5]["keys"]["type"], "string");
        assert_eq!(
            doc["payload"],
            json!({"id": 42, "item": null, "qty": 3, "price": "BNI=",
                   "at": 1_700_000_000_000i64, "tags": {"gift": 1}})
        );
        let back = c.decode("t", Some(&bytes)).unwrap();
        assert_eq!(back.value, order());
        assert_eq!(back.schema.as_deref(), Some(&*order_schema()));
    }

    #[test]
    fn json_reads_what_kafka_connect_writes() {
        // As Kafka's JsonConverter writes an optional int32 and a string array.
        let written = br#"{"schema":{"type":"struct","fields":[{"type":"int32","optional":true,"field":"n"},{"type":"array","items":{"type":"string","optional":false},"optional":false,"field":"xs"}],"optional":false,"name":"rec"},"payload":{"n":null,"xs":["a","b"]}}"#;
        let c = JsonConverter {
            schemas_enable: true,
        };
        let r = c.decode("t", Some(written)).unwrap();
        let Value::Struct(s) = &r.value else {
            panic!("{r:?}")
        };
        assert_eq!(s.get("n"), Some(&Value::Null));
        assert_eq!(
            s.get("xs"),
            Some(&Value::Array(vec![
                Value::String("a".into()),
                Value::String("b".into())
            ]))
        );
        // Plain JSON under schemas.enable=true is refused with Kafka's words.
        let e = c.decode("t", Some(br#"{"a":1}"#)).unwrap_err();
        assert!(e.to_string().contains("set schemas.enable=false"), "{e}");
        // A payload that does not fit its schema names where.
        let e = c
            .decode(
                "t",
                Some(br#"{"schema":{"type":"struct","fields":[{"type":"int8","optional":false,"field":"b"}],"optional":false},"payload":{"b":300}}"#),
            )
            .unwrap_err();
        assert!(e.to_string().contains("payload.b"), "{e}");
    }

    #[test]
    fn json_without_schemas_is_plain_json() {
        let c = JsonConverter {
            schemas_enable: false,
        };
        let r = c
            .decode("t", Some(br#"{"a":1,"b":[true,2.5],"c":null}"#))
            .unwrap();
        assert_eq!(r.schema, None);
        assert_eq!(
            r.value,
            Value::Map(vec![
                (Value::String("a".into()), Value::Int64(1)),
                (
                    Value::String("b".into()),
                    Value::Array(vec![Value::Boolean(true), Value::Float64(2.5)])
                ),
                (Value::String("c".into()), Value::Null),
            ])
        );
        let bytes = c.encode("t", None, &r.value).unwrap().unwrap();
        assert_eq!(bytes, br#"{"a":1,"b":[true,2.5],"c":null}"#);
        // A tombstone stays a tombstone.
        assert_eq!(c.encode("t", None, &Value::Null).unwrap(), None);
        assert_eq!(c.decode("t", None).unwrap().value, Value::Null);
    }

    #[test]
    fn string_and_byte_array_converters_and_class_names() {
        let s = by_class("org.apache.kafka.connect.storage.StringConverter", true).unwrap();
        assert_eq!(
            s.encode("t", None, &Value::Int32(5)).unwrap(),
            Some(b"5".to_vec())
        );
        assert_eq!(
            s.decode("t", Some(b"hi")).unwrap().value,
            Value::String("hi".into())
        );
        assert!(s.decode("t", Some(&[0xff, 0xfe])).is_err());
        let b = by_class(
            "org.apache.kafka.connect.converters.ByteArrayConverter",
            true,
        )
        .unwrap();
        assert_eq!(
            b.encode("t", None, &Value::Bytes(vec![1, 2])).unwrap(),
            Some(vec![1, 2])
        );
        assert!(b.encode("t", None, &Value::String("x".into())).is_err());
        assert!(by_class("org.apache.kafka.connect.json.JsonConverter", false).is_ok());
        assert!(by_class("io.confluent.connect.avro.AvroConverter", true).is_err());
    }
}
