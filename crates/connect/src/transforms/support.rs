//! What the transforms share: which part of a record a `$Key` / `$Value` transform works
//! on, a transform's settings read as Kafka's `ConfigDef` reads them (errors in Kafka's
//! words, against the full property name), Kafka's `Requirements` errors, schemaless-map
//! and struct access, schema building, and the per-transform schema cache.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::data::{logical, Field, Schema, Struct, Type, Value};
use crate::record::Record;
use crate::ConnectError;

/// Which part of a record a `$Key` / `$Value` transform works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The key (`$Key`).
    Key,
    /// The value (`$Value`).
    Value,
}

impl Part {
    /// The part's schema.
    pub fn schema(self, r: &Record) -> Option<&Arc<Schema>> {
        match self {
            Part::Key => r.key_schema.as_ref(),
            Part::Value => r.value_schema.as_ref(),
        }
    }

    /// The part's value.
    pub fn value(self, r: &Record) -> &Value {
        match self {
            Part::Key => &r.key,
            Part::Value => &r.value,
        }
    }

    /// Takes the schema and value out of `r` (leaving a schemaless null).
    pub fn take(self, r: &mut Record) -> (Option<Arc<Schema>>, Value) {
        match self {
            Part::Key => (
                r.key_schema.take(),
                std::mem::replace(&mut r.key, Value::Null),
            ),
            Part::Value => (
                r.value_schema.take(),
                std::mem::replace(&mut r.value, Value::Null),
            ),
        }
    }

    /// Puts a schema and value into `r`.
    pub fn put(self, r: &mut Record, schema: Option<Arc<Schema>>, value: Value) {
        match self {
            Part::Key => {
                r.key_schema = schema;
                r.key = value;
            }
            Part::Value => {
                r.value_schema = schema;
                r.value = value;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Settings, read as Kafka's ConfigDef reads them.

/// One transform's or predicate's settings (`transforms.<alias>.*`), read with Kafka's
/// parsing and collecting errors in Kafka's words against the full property name.
pub struct Settings<'a> {
    props: &'a BTreeMap<String, String>,
    prefix: String,
    pub(super) errors: Vec<(String, String)>,
}

impl<'a> Settings<'a> {
    /// The settings under `prefix` (`transforms.<alias>.`).
    pub fn new(props: &'a BTreeMap<String, String>, prefix: String) -> Settings<'a> {
        Settings {
            props,
            prefix,
            errors: Vec::new(),
        }
    }

    /// The full property name of `key`.
    pub fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The value as given, untrimmed.
    pub fn raw(&self, key: &str) -> Option<&'a str> {
        self.props.get(&self.name(key)).map(String::as_str)
    }

    /// The errors so far (property, message).
    pub fn errors(&self) -> &[(String, String)] {
        &self.errors
    }

    /// Records `Invalid value <value> for configuration <property>: <why>`.
    pub fn invalid(&mut self, key: &str, value: &str, why: &str) {
        let name = self.name(key);
        let message = format!("Invalid value {value} for configuration {name}: {why}");
        self.errors.push((name, message));
    }

    fn missing(&mut self, key: &str) {
        let name = self.name(key);
        let message =
            format!("Missing required configuration \"{name}\" which has no default value.");
        self.errors.push((name, message));
    }

    /// A STRING whose default is null: trimmed, `None` when absent.
    pub fn string(&mut self, key: &str) -> Option<String> {
        self.raw(key).map(|v| v.trim().to_string())
    }

    /// A STRING with a default.
    pub fn string_or(&mut self, key: &str, default: &str) -> String {
        self.string(key).unwrap_or_else(|| default.to_string())
    }

    /// A required STRING.
    pub fn required_string(&mut self, key: &str) -> Option<String> {
        let v = self.string(key);
        if v.is_none() {
            self.missing(key);
        }
        v
    }

    /// A STRING that, when given, must not be empty (Kafka's `NonEmptyString`).
    pub fn non_empty_string(&mut self, key: &str, required: bool) -> Option<String> {
        let v = if required {
            self.required_string(key)?
        } else {
            self.string(key)?
        };
        if v.is_empty() {
            self.invalid(key, &v, "String must be non-empty");
            return None;
        }
        Some(v)
    }

    /// A LIST whose default is null or empty: `None` when absent.
    pub fn list(&mut self, key: &str) -> Option<Vec<String>> {
        self.raw(key).map(parse_list)
    }

    /// A required LIST.
    pub fn required_list(&mut self, key: &str) -> Option<Vec<String>> {
        let v = self.list(key);
        if v.is_none() {
            self.missing(key);
        }
        v
    }

    /// A required LIST that must not be empty (Kafka's `NonEmptyListValidator`).
    pub fn non_empty_list(&mut self, key: &str) -> Option<Vec<String>> {
        let v = self.required_list(key)?;
        if v.is_empty() {
            self.invalid(key, "[]", "Empty list");
            return None;
        }
        Some(v)
    }

    /// A BOOLEAN with a default.
    pub fn boolean(&mut self, key: &str, default: bool) -> bool {
        match self.raw(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => default,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(_) => {
                let given = self.raw(key).unwrap_or_default().trim().to_string();
                self.invalid(key, &given, "Expected value to be either true or false");
                default
            }
        }
    }

    /// An INT whose default is null.
    pub fn int(&mut self, key: &str) -> Option<i32> {
        let v = self.string(key)?;
        match v.parse::<i32>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.invalid(key, &v, "Not a number of type INT");
                None
            }
        }
    }

    /// `field.syntax.version` (V1 or V2, case-insensitive, default V1): whether field
    /// names are dotted paths.
    pub fn field_syntax_v2(&mut self) -> bool {
        let v = self.string_or("field.syntax.version", "V1");
        match v.to_ascii_uppercase().as_str() {
            "V1" => false,
            "V2" => true,
            _ => {
                self.invalid(
                    "field.syntax.version",
                    &v,
                    "String must be one of (case insensitive): V1, V2",
                );
                false
            }
        }
    }
}

/// A LIST as Kafka parses it: trimmed, comma-separated, each item trimmed (empty items
/// dropped).
pub fn parse_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A list as Java prints one (`[a, b]`), for error messages.
pub fn java_list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

// ---------------------------------------------------------------------------------------
// Helpers the transforms share.

/// The Java class of a value, as Kafka's error messages name it.
pub fn java_class(value: &Value, schema: Option<&Schema>) -> &'static str {
    let schema_name = schema.and_then(|s| s.name.as_deref());
    match (value, schema_name) {
        (Value::Null, _) => "null",
        (
            Value::Int32(_) | Value::Int64(_),
            Some(logical::DATE | logical::TIME | logical::TIMESTAMP),
        ) => "java.util.Date",
        (Value::Bytes(_), Some(logical::DECIMAL)) => "java.math.BigDecimal",
        (Value::Int8(_), _) => "java.lang.Byte",
        (Value::Int16(_), _) => "java.lang.Short",
        (Value::Int32(_), _) => "java.lang.Integer",
        (Value::Int64(_), _) => "java.lang.Long",
        (Value::Float32(_), _) => "java.lang.Float",
        (Value::Float64(_), _) => "java.lang.Double",
        (Value::Boolean(_), _) => "java.lang.Boolean",
        (Value::String(_), _) => "java.lang.String",
        (Value::Bytes(_), _) => "[B",
        (Value::Array(_), _) => "java.util.ArrayList",
        (Value::Map(_), _) => "java.util.HashMap",
        (Value::Struct(_), _) => "org.apache.kafka.connect.data.Struct",
    }
}

/// Kafka's `requireMap`: the entries of a schemaless map value.
pub fn require_map(value: Value, purpose: &str) -> Result<Vec<(Value, Value)>, ConnectError> {
    match value {
        Value::Map(entries) => Ok(entries),
        other => Err(not_a_map(&other, purpose)),
    }
}

/// Kafka's error for a schemaless value that is not a map.
pub fn not_a_map(value: &Value, purpose: &str) -> ConnectError {
    ConnectError::Data(format!(
        "Only Map objects supported in absence of schema for [{purpose}], found: {}",
        java_class(value, None)
    ))
}

/// Kafka's error for a schema'd value that is not a struct.
pub fn not_a_struct(value: &Value, purpose: &str) -> ConnectError {
    ConnectError::Data(format!(
        "Only Struct objects supported for [{purpose}], found: {}",
        java_class(value, None)
    ))
}

/// Kafka's `requireStruct`: a struct value.
pub fn require_struct(value: Value, purpose: &str) -> Result<Struct, ConnectError> {
    match value {
        Value::Struct(s) => Ok(s),
        other => Err(not_a_struct(&other, purpose)),
    }
}

/// The value under the string key `key` in a schemaless map.
pub fn map_get<'v>(entries: &'v [(Value, Value)], key: &str) -> Option<&'v Value> {
    entries
        .iter()
        .find(|(k, _)| matches!(k, Value::String(s) if s == key))
        .map(|(_, v)| v)
}

/// Sets the string key `key` in a schemaless map (replacing it in place, or appending).
pub fn map_put(entries: &mut Vec<(Value, Value)>, key: &str, value: Value) {
    match entries
        .iter_mut()
        .find(|(k, _)| matches!(k, Value::String(s) if s == key))
    {
        Some(entry) => entry.1 = value,
        None => entries.push((Value::String(key.to_string()), value)),
    }
}

/// A struct field's value as Kafka's `Struct.get` gives it: the field's default when the
/// value is null.
pub fn field_value(s: &Struct, field: &Field) -> Value {
    match s.values.get(field.index) {
        Some(Value::Null) | None => field.schema.default.clone().unwrap_or(Value::Null),
        Some(v) => v.clone(),
    }
}

/// The field named `name` of `s`, by Kafka's `Struct.get(String)`.
pub fn struct_get(s: &Struct, name: &str) -> Option<Value> {
    s.schema.field(name).map(|f| field_value(s, f))
}

/// A schema of type `kind` with `source`'s name, version, doc and parameters (Kafka's
/// `SchemaUtil.copySchemaBasics`).
pub fn copy_basics(source: &Schema, kind: Type) -> Schema {
    Schema {
        name: source.name.clone(),
        version: source.version,
        doc: source.doc.clone(),
        parameters: source.parameters.clone(),
        ..Schema::of(kind)
    }
}

/// Appends a field to a struct schema, refusing a duplicate name as Kafka's
/// `SchemaBuilder` does.
pub fn add_field(schema: &mut Schema, name: &str, field: Schema) -> Result<(), ConnectError> {
    if schema.field(name).is_some() {
        return Err(ConnectError::Data(format!(
            "Cannot create field because of field name duplication {name}"
        )));
    }
    schema.fields.push(Field {
        name: name.to_string(),
        index: schema.fields.len(),
        schema: Arc::new(field),
    });
    Ok(())
}

/// Kafka's `Timestamp` logical schema (`int64` named
/// `org.apache.kafka.connect.data.Timestamp`, version 1).
pub fn timestamp_schema() -> Schema {
    Schema {
        version: Some(1),
        ..Schema::of(Type::Int64).named(logical::TIMESTAMP)
    }
}

/// The schemas a transform derived from the input schemas it saw last (16 at most, as
/// Kafka's LRU cache), so a schema is rebuilt only when it changes and every record of
/// one input schema shares one output schema.
#[derive(Default)]
pub struct SchemaCache {
    entries: Mutex<Vec<(Arc<Schema>, Arc<Schema>)>>,
}

impl SchemaCache {
    const CAPACITY: usize = 16;

    /// The schema derived from `input`, built with `make` when not cached.
    pub fn get_or(
        &self,
        input: &Arc<Schema>,
        make: impl FnOnce() -> Result<Schema, ConnectError>,
    ) -> Result<Arc<Schema>, ConnectError> {
        {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, out)) = entries
                .iter()
                .find(|(k, _)| Arc::ptr_eq(k, input) || **k == **input)
            {
                return Ok(Arc::clone(out));
            }
        }
        let out = Arc::new(make()?);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.push((Arc::clone(input), Arc::clone(&out)));
        if entries.len() > Self::CAPACITY {
            entries.remove(0);
        }
        Ok(out)
    }
}
