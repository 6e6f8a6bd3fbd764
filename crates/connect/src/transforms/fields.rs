//! The transforms that add, drop, rename, extract or wrap fields, as Kafka's
//! InsertField, ReplaceField, ValueToKey, ExtractField, HoistField and SetSchemaMetadata:
//! on schemaless maps (string keys) and on structs, whose schema is rebuilt (once per
//! input schema, through a [`SchemaCache`]). A null key or value (a tombstone) passes
//! through unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{
    add_field, copy_basics, field_value, java_list, map_get, map_put, not_a_map, not_a_struct,
    require_map, require_struct, struct_get, timestamp_schema, Part, SchemaCache, Settings,
    Transformation,
};
use crate::data::{Schema, Struct, Type, Value};
use crate::record::Record;
use crate::ConnectError;

// ---------------------------------------------------------------------------------------
// InsertField

/// A field InsertField adds: its name and whether it is optional (`name?`, the default)
/// or required (`name!`).
#[derive(Debug, Clone)]
struct Insertion {
    name: String,
    optional: bool,
}

impl Insertion {
    fn parse(spec: Option<String>) -> Option<Insertion> {
        let spec = spec?;
        if let Some(name) = spec.strip_suffix('!') {
            return Some(Insertion {
                name: name.to_string(),
                optional: false,
            });
        }
        let name = spec.strip_suffix('?').unwrap_or(&spec);
        Some(Insertion {
            name: name.to_string(),
            optional: true,
        })
    }

    fn schema(&self, s: Schema) -> Schema {
        if self.optional {
            s.optional()
        } else {
            s
        }
    }
}

/// `InsertField$Key` / `$Value`: adds the record's topic, partition, timestamp and a
/// static string as fields (`topic.field`, `partition.field`, `timestamp.field`,
/// `static.field` with `static.value`). `offset.field` is accepted, but a [`Record`] has
/// no Kafka offset (Kafka fills it only for sink records, from `SinkRecord.kafkaOffset`),
/// so the offset field is added to a struct schema and left null, and is absent from a
/// schemaless map.
pub struct InsertField {
    part: Part,
    topic: Option<Insertion>,
    partition: Option<Insertion>,
    offset: Option<Insertion>,
    timestamp: Option<Insertion>,
    static_field: Option<Insertion>,
    static_value: Option<String>,
    cache: SchemaCache,
}

/// Builds InsertField from its settings.
pub fn build_insert_field(s: &mut Settings, part: Part) -> Option<Box<dyn Transformation>> {
    Some(Box::new(InsertField {
        part,
        topic: Insertion::parse(s.string("topic.field")),
        partition: Insertion::parse(s.string("partition.field")),
        offset: Insertion::parse(s.string("offset.field")),
        timestamp: Insertion::parse(s.string("timestamp.field")),
        static_field: Insertion::parse(s.string("static.field")),
        static_value: s.string("static.value"),
        cache: SchemaCache::default(),
    }))
}

const INSERT_PURPOSE: &str = "field insertion";

impl InsertField {
    fn updated_schema(&self, schema: &Schema) -> Result<Schema, ConnectError> {
        let mut out = copy_basics(schema, Type::Struct);
        for f in &schema.fields {
            add_field(&mut out, &f.name, (*f.schema).clone())?;
        }
        let added = [
            (&self.topic, Schema::of(Type::String)),
            (&self.partition, Schema::of(Type::Int32)),
            (&self.offset, Schema::of(Type::Int64)),
            (&self.timestamp, timestamp_schema()),
            (&self.static_field, Schema::of(Type::String)),
        ];
        for (insertion, field_schema) in added {
            if let Some(i) = insertion {
                add_field(&mut out, &i.name, i.schema(field_schema))?;
            }
        }
        Ok(out)
    }

    /// The (field, value) pairs to insert into this record.
    fn inserted(&self, r: &Record) -> Vec<(&str, Value)> {
        let mut out = Vec::new();
        if let Some(i) = &self.topic {
            out.push((i.name.as_str(), Value::String(r.topic.clone())));
        }
        if let (Some(i), Some(p)) = (&self.partition, r.partition) {
            out.push((i.name.as_str(), Value::Int32(p)));
        }
        if let (Some(i), Some(ts)) = (&self.timestamp, r.timestamp) {
            out.push((i.name.as_str(), Value::Int64(ts)));
        }
        if let (Some(i), Some(v)) = (&self.static_field, &self.static_value) {
            out.push((i.name.as_str(), Value::String(v.clone())));
        }
        out
    }
}

impl Transformation for InsertField {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        if *self.part.value(&record) == Value::Null {
            return Ok(Some(record));
        }
        let (schema, value) = self.part.take(&mut record);
        let inserted: Vec<(String, Value)> = self
            .inserted(&record)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        match schema {
            None => {
                let mut entries = require_map(value, INSERT_PURPOSE)?;
                for (k, v) in inserted {
                    map_put(&mut entries, &k, v);
                }
                self.part.put(&mut record, None, Value::Map(entries));
            }
            Some(schema) => {
                let s = require_struct(value, INSERT_PURPOSE)?;
                let updated = self
                    .cache
                    .get_or(&schema, || self.updated_schema(&schema))?;
                let mut values: Vec<Value> = updated
                    .fields
                    .iter()
                    .map(|f| struct_get(&s, &f.name).unwrap_or(Value::Null))
                    .collect();
                for (k, v) in inserted {
                    if let Some(f) = updated.field(&k) {
                        values[f.index] = v;
                    }
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

// ---------------------------------------------------------------------------------------
// ReplaceField

/// `ReplaceField$Key` / `$Value`: keeps only the `include` fields (when given), drops the
/// `exclude` ones (which win), and renames (`renames`: `old:new,...`). `whitelist` and
/// `blacklist` are Kafka's deprecated names for `include` and `exclude`.
pub struct ReplaceField {
    part: Part,
    include: BTreeSet<String>,
    exclude: BTreeSet<String>,
    renames: BTreeMap<String, String>,
    reverse: BTreeMap<String, String>,
    cache: SchemaCache,
}

/// Builds ReplaceField from its settings.
pub fn build_replace_field(s: &mut Settings, part: Part) -> Option<Box<dyn Transformation>> {
    let exclude = s.list("exclude").or_else(|| s.list("blacklist"));
    let include = s.list("include").or_else(|| s.list("whitelist"));
    let renames = s.list("renames").unwrap_or_default();
    let mut map = BTreeMap::new();
    for mapping in &renames {
        // As Java's `split(":")`: trailing empty parts are dropped.
        let mut parts: Vec<&str> = mapping.split(':').collect();
        while parts.last() == Some(&"") {
            parts.pop();
        }
        if parts.len() != 2 {
            s.invalid(
                "renames",
                &java_list(&renames),
                &format!("Invalid rename mapping: {mapping}"),
            );
            return None;
        }
        map.insert(parts[0].to_string(), parts[1].to_string());
    }
    let reverse = map.iter().map(|(k, v)| (v.clone(), k.clone())).collect();
    Some(Box::new(ReplaceField {
        part,
        include: include.unwrap_or_default().into_iter().collect(),
        exclude: exclude.unwrap_or_default().into_iter().collect(),
        renames: map,
        reverse,
        cache: SchemaCache::default(),
    }))
}

const REPLACE_PURPOSE: &str = "field replacement";

impl ReplaceField {
    fn keep(&self, name: &str) -> bool {
        !self.exclude.contains(name) && (self.include.is_empty() || self.include.contains(name))
    }

    fn renamed<'n>(&'n self, name: &'n str) -> &'n str {
        self.renames.get(name).map(String::as_str).unwrap_or(name)
    }

    fn updated_schema(&self, schema: &Schema) -> Result<Schema, ConnectError> {
        let mut out = copy_basics(schema, Type::Struct);
        for f in schema.fields.iter().filter(|f| self.keep(&f.name)) {
            add_field(&mut out, self.renamed(&f.name), (*f.schema).clone())?;
        }
        Ok(out)
    }
}

impl Transformation for ReplaceField {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        if *self.part.value(&record) == Value::Null {
            return Ok(Some(record));
        }
        let (schema, value) = self.part.take(&mut record);
        match schema {
            None => {
                let entries = require_map(value, REPLACE_PURPOSE)?;
                let mut out: Vec<(Value, Value)> = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    match k {
                        Value::String(name) => {
                            if self.keep(&name) {
                                map_put(&mut out, self.renamed(&name), v);
                            }
                        }
                        other => out.push((other, v)),
                    }
                }
                self.part.put(&mut record, None, Value::Map(out));
            }
            Some(schema) => {
                let s = require_struct(value, REPLACE_PURPOSE)?;
                let updated = self
                    .cache
                    .get_or(&schema, || self.updated_schema(&schema))?;
                let values = updated
                    .fields
                    .iter()
                    .map(|f| {
                        let original = self.reverse.get(&f.name).unwrap_or(&f.name);
                        struct_get(&s, original).unwrap_or(Value::Null)
                    })
                    .collect();
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

// ---------------------------------------------------------------------------------------
// ValueToKey

/// `ValueToKey`: the key becomes a map (schemaless) or a struct of the value's `fields`.
pub struct ValueToKey {
    fields: Vec<String>,
    cache: SchemaCache,
}

/// Builds ValueToKey from its settings.
pub fn build_value_to_key(s: &mut Settings, _part: Part) -> Option<Box<dyn Transformation>> {
    Some(Box::new(ValueToKey {
        fields: s.non_empty_list("fields")?,
        cache: SchemaCache::default(),
    }))
}

const VALUE_TO_KEY_PURPOSE: &str = "copying fields from value to key";

impl Transformation for ValueToKey {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        if record.value == Value::Null {
            return Ok(Some(record));
        }
        match &record.value_schema {
            None => {
                let Value::Map(entries) = &record.value else {
                    return Err(not_a_map(&record.value, VALUE_TO_KEY_PURPOSE));
                };
                let key = self
                    .fields
                    .iter()
                    .map(|f| {
                        let v = map_get(entries, f).cloned().unwrap_or(Value::Null);
                        (Value::String(f.clone()), v)
                    })
                    .collect();
                record.key_schema = None;
                record.key = Value::Map(key);
            }
            Some(schema) => {
                let Value::Struct(s) = &record.value else {
                    return Err(not_a_struct(&record.value, VALUE_TO_KEY_PURPOSE));
                };
                let key_schema = self.cache.get_or(schema, || {
                    let mut out = Schema::of(Type::Struct);
                    for name in &self.fields {
                        let f = s.schema.field(name).ok_or_else(|| {
                            ConnectError::Data(format!("Field does not exist: {name}"))
                        })?;
                        add_field(&mut out, name, (*f.schema).clone())?;
                    }
                    Ok(out)
                })?;
                let values = self
                    .fields
                    .iter()
                    .map(|name| struct_get(s, name).unwrap_or(Value::Null))
                    .collect();
                record.key = Value::Struct(Struct {
                    schema: Arc::clone(&key_schema),
                    values,
                });
                record.key_schema = Some(key_schema);
            }
        }
        Ok(Some(record))
    }
}

// ---------------------------------------------------------------------------------------
// ExtractField

/// `ExtractField$Key` / `$Value`: the key or value becomes one of its fields (`field`;
/// with `field.syntax.version=V2`, a dotted path into nested maps and structs, with
/// backticks around names that contain dots).
pub struct ExtractField {
    part: Part,
    path: Vec<String>,
    original: String,
}

/// Builds ExtractField from its settings.
pub fn build_extract_field(s: &mut Settings, part: Part) -> Option<Box<dyn Transformation>> {
    let field = s.required_string("field");
    let v2 = s.field_syntax_v2();
    let field = field?;
    let path = if v2 {
        match parse_path(&field) {
            Ok(p) => p,
            Err(why) => {
                s.invalid("field", &field, &why);
                return None;
            }
        }
    } else {
        vec![field.clone()]
    };
    Some(Box::new(ExtractField {
        part,
        path,
        original: field,
    }))
}

/// A V2 field path: names split on dots, a name in backticks taken whole (`` `a.b`.c ``).
pub fn parse_path(path: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = path;
    loop {
        if let Some(after) = rest.strip_prefix('`') {
            // A quoted name ends at a backtick followed by a dot or the end.
            let mut end = None;
            for (i, c) in after.char_indices() {
                if c == '`' {
                    let tail = &after[i + 1..];
                    if tail.is_empty() || tail.starts_with('.') {
                        end = Some(i);
                        break;
                    }
                }
            }
            match end {
                Some(i) => {
                    out.push(after[..i].to_string());
                    let tail = &after[i + 1..];
                    match tail.strip_prefix('.') {
                        Some(t) => rest = t,
                        None => break,
                    }
                }
                None => return Err(format!("Incomplete backtick pair in field path: {path}")),
            }
        } else {
            match rest.split_once('.') {
                Some((name, t)) => {
                    out.push(name.to_string());
                    rest = t;
                }
                None => {
                    out.push(rest.to_string());
                    break;
                }
            }
        }
    }
    if out.iter().any(String::is_empty) {
        return Err(format!("Empty field name in field path: {path}"));
    }
    Ok(out)
}

const EXTRACT_PURPOSE: &str = "field extraction";

impl Transformation for ExtractField {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let (schema, value) = self.part.take(&mut record);
        match schema {
            None => {
                let mut current = value;
                for name in &self.path {
                    current = match current {
                        Value::Null => Value::Null,
                        Value::Map(entries) => {
                            map_get(&entries, name).cloned().unwrap_or(Value::Null)
                        }
                        other => return Err(not_a_map(&other, EXTRACT_PURPOSE)),
                    };
                }
                self.part.put(&mut record, None, current);
            }
            Some(schema) => {
                if value != Value::Null && !matches!(value, Value::Struct(_)) {
                    return Err(not_a_struct(&value, EXTRACT_PURPOSE));
                }
                let mut field_schema = schema;
                let mut current = value;
                for name in &self.path {
                    let f = field_schema.field(name).cloned().ok_or_else(|| {
                        ConnectError::Data(format!("Unknown field: {}", self.original))
                    })?;
                    current = match current {
                        Value::Struct(s) => field_value(&s, &f),
                        _ => Value::Null,
                    };
                    field_schema = f.schema;
                }
                self.part.put(&mut record, Some(field_schema), current);
            }
        }
        Ok(Some(record))
    }
}

// ---------------------------------------------------------------------------------------
// HoistField

/// `HoistField$Key` / `$Value`: wraps the key or value in a map or struct of one field
/// (`field`).
pub struct HoistField {
    part: Part,
    field: String,
    cache: SchemaCache,
}

/// Builds HoistField from its settings.
pub fn build_hoist_field(s: &mut Settings, part: Part) -> Option<Box<dyn Transformation>> {
    Some(Box::new(HoistField {
        part,
        field: s.required_string("field")?,
        cache: SchemaCache::default(),
    }))
}

impl Transformation for HoistField {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        if *self.part.value(&record) == Value::Null {
            return Ok(Some(record));
        }
        let (schema, value) = self.part.take(&mut record);
        match schema {
            None => {
                let wrapped = Value::Map(vec![(Value::String(self.field.clone()), value)]);
                self.part.put(&mut record, None, wrapped);
            }
            Some(schema) => {
                let updated = self.cache.get_or(&schema, || {
                    Ok(Schema::structure(vec![(
                        self.field.as_str(),
                        (*schema).clone(),
                    )]))
                })?;
                let out = Struct {
                    schema: Arc::clone(&updated),
                    values: vec![value],
                };
                self.part
                    .put(&mut record, Some(updated), Value::Struct(out));
            }
        }
        Ok(Some(record))
    }
}

// ---------------------------------------------------------------------------------------
// SetSchemaMetadata

/// `SetSchemaMetadata$Key` / `$Value`: sets the schema's name (`schema.name`) and version
/// (`schema.version`); a schema is required.
pub struct SetSchemaMetadata {
    part: Part,
    name: Option<String>,
    version: Option<i32>,
}

/// Builds SetSchemaMetadata from its settings.
pub fn build_set_schema_metadata(s: &mut Settings, part: Part) -> Option<Box<dyn Transformation>> {
    Some(Box::new(SetSchemaMetadata {
        part,
        name: s.string("schema.name"),
        version: s.int("schema.version"),
    }))
}

impl Transformation for SetSchemaMetadata {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let (schema, value) = self.part.take(&mut record);
        let Some(schema) = schema else {
            return Err(ConnectError::Data(
                "Schema required for [updating schema metadata]".into(),
            ));
        };
        let mut updated = (*schema).clone();
        if let Some(n) = &self.name {
            updated.name = Some(n.clone());
        }
        if let Some(v) = self.version {
            updated.version = Some(v);
        }
        let updated = Arc::new(updated);
        let value = match value {
            Value::Struct(s) => Value::Struct(Struct {
                schema: Arc::clone(&updated),
                values: s.values,
            }),
            other => other,
        };
        self.part.put(&mut record, Some(updated), value);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{errors_of, map, one, run};
    use super::*;

    fn person() -> Arc<Schema> {
        Arc::new(
            Schema::structure(vec![
                ("id", Schema::of(Type::Int32)),
                ("name", Schema::of(Type::String).optional()),
                ("email", Schema::of(Type::String).optional()),
            ])
            .named("person"),
        )
    }

    fn alice() -> Value {
        Value::Struct(Struct {
            schema: person(),
            values: vec![
                Value::Int32(1),
                Value::String("alice".into()),
                Value::String("a@example.com".into()),
            ],
        })
    }

    fn record_with(schema: Option<Arc<Schema>>, value: Value) -> Record {
        let mut r = Record::new("orders").with_value(schema, value);
        r.partition = Some(3);
        r.timestamp = Some(1_700_000_000_000);
        r
    }

    fn fields_of(v: &Value) -> Vec<(String, Value)> {
        match v {
            Value::Struct(s) => s
                .schema
                .fields
                .iter()
                .map(|f| (f.name.clone(), s.values[f.index].clone()))
                .collect(),
            other => panic!("not a struct: {other:?}"),
        }
    }

    #[test]
    fn insert_field_schemaless() {
        let chain = one(
            "InsertField$Value",
            &[
                ("topic.field", "t"),
                ("partition.field", "p"),
                ("offset.field", "o"),
                ("timestamp.field", "ts!"),
                ("static.field", "origin"),
                ("static.value", " strom "),
            ],
        );
        let out = run(
            &chain,
            record_with(None, map(vec![("id", Value::Int32(1))])),
        );
        assert_eq!(
            out.value,
            map(vec![
                ("id", Value::Int32(1)),
                ("t", Value::String("orders".into())),
                ("p", Value::Int32(3)),
                ("ts", Value::Int64(1_700_000_000_000)),
                ("origin", Value::String("strom".into())),
            ])
        );
        // A tombstone passes through; a non-map value is refused in Kafka's words.
        let tomb = record_with(None, Value::Null);
        assert_eq!(run(&chain, tomb.clone()), tomb);
        let e = chain
            .apply(record_with(None, Value::String("x".into())))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Only Map objects supported in absence of schema for [field insertion], found: java.lang.String"
        );
    }

    #[test]
    fn insert_field_with_schema_adds_fields_to_the_schema() {
        let chain = one(
            "org.apache.kafka.connect.transforms.InsertField$Value",
            &[
                ("topic.field", "topic!"),
                ("offset.field", "offset"),
                ("timestamp.field", "ts"),
            ],
        );
        let out = run(&chain, record_with(Some(person()), alice()));
        let schema = out.value_schema.clone().unwrap();
        assert_eq!(schema.name.as_deref(), Some("person"));
        let topic = schema.field("topic").unwrap();
        assert!(!topic.schema.optional);
        let offset = schema.field("offset").unwrap();
        assert!(offset.schema.optional && offset.schema.kind == Type::Int64);
        let ts = schema.field("ts").unwrap();
        assert_eq!(
            ts.schema.name.as_deref(),
            Some(crate::data::logical::TIMESTAMP)
        );
        assert!(ts.schema.optional);
        let values = fields_of(&out.value);
        assert_eq!(values[3], ("topic".into(), Value::String("orders".into())));
        assert_eq!(values[4], ("offset".into(), Value::Null));
        assert_eq!(values[5], ("ts".into(), Value::Int64(1_700_000_000_000)));
        schema.validate(&out.value).unwrap();
        // The same input schema gives the same output schema.
        let again = run(&chain, record_with(Some(person()), alice()));
        assert!(Arc::ptr_eq(&schema, again.value_schema.as_ref().unwrap()));
        // A field that is already there is refused.
        let dup = one("InsertField$Value", &[("topic.field", "id")]);
        let e = dup.apply(record_with(Some(person()), alice())).unwrap_err();
        assert!(e.to_string().contains("field name duplication id"), "{e}");
    }

    #[test]
    fn insert_field_into_the_key() {
        let chain = one("InsertField$Key", &[("partition.field", "p")]);
        let mut r = record_with(None, Value::Null);
        r.key = map(vec![]);
        let out = run(&chain, r);
        assert_eq!(out.key, map(vec![("p", Value::Int32(3))]));
        assert_eq!(out.value, Value::Null);
    }

    #[test]
    fn replace_field_schemaless_and_with_schema() {
        let chain = one(
            "ReplaceField$Value",
            &[("exclude", "email"), ("renames", "id:user_id,name:user")],
        );
        let v = map(vec![
            ("id", Value::Int32(1)),
            ("name", Value::String("alice".into())),
            ("email", Value::String("a@x".into())),
        ]);
        let out = run(&chain, record_with(None, v));
        assert_eq!(
            out.value,
            map(vec![
                ("user_id", Value::Int32(1)),
                ("user", Value::String("alice".into())),
            ])
        );
        let out = run(&chain, record_with(Some(person()), alice()));
        let names: Vec<_> = fields_of(&out.value).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["user_id", "user"]);
        assert_eq!(fields_of(&out.value)[0].1, Value::Int32(1));
        out.value_schema.unwrap().validate(&out.value).unwrap();

        // include (and its deprecated name whitelist) keeps only those; exclude wins.
        for key in ["include", "whitelist"] {
            let chain = one(
                "ReplaceField$Value",
                &[(key, "id,email"), ("blacklist", "email")],
            );
            let out = run(&chain, record_with(Some(person()), alice()));
            let names: Vec<_> = fields_of(&out.value).into_iter().map(|(n, _)| n).collect();
            assert_eq!(names, vec!["id"], "{key}");
        }
        let e = errors_of("ReplaceField$Value", &[("renames", "a:b,c")]);
        assert_eq!(
            e,
            vec![(
                "transforms.t.renames".into(),
                "Invalid value [a:b, c] for configuration transforms.t.renames: Invalid rename mapping: c".into()
            )]
        );
    }

    #[test]
    fn value_to_key_schemaless_and_with_schema() {
        let chain = one("ValueToKey", &[("fields", "id,missing")]);
        let out = run(
            &chain,
            record_with(None, map(vec![("id", Value::Int32(7))])),
        );
        assert_eq!(
            out.key,
            map(vec![("id", Value::Int32(7)), ("missing", Value::Null)])
        );
        assert!(out.key_schema.is_none());

        let chain = one("ValueToKey", &[("fields", "name,id")]);
        let out = run(&chain, record_with(Some(person()), alice()));
        let key_schema = out.key_schema.clone().unwrap();
        assert_eq!(key_schema.kind, Type::Struct);
        assert_eq!(
            fields_of(&out.key),
            vec![
                ("name".into(), Value::String("alice".into())),
                ("id".into(), Value::Int32(1))
            ]
        );
        key_schema.validate(&out.key).unwrap();
        assert_eq!(out.value, alice());

        let bad = one("ValueToKey", &[("fields", "nope")]);
        let e = bad.apply(record_with(Some(person()), alice())).unwrap_err();
        assert_eq!(e.to_string(), "Field does not exist: nope");
        assert_eq!(
            errors_of("ValueToKey", &[("fields", "")])[0].1,
            "Invalid value [] for configuration transforms.t.fields: Empty list"
        );
        assert_eq!(
            errors_of("ValueToKey", &[])[0].1,
            "Missing required configuration \"transforms.t.fields\" which has no default value."
        );
    }

    #[test]
    fn extract_field_schemaless_and_with_schema() {
        let chain = one("ExtractField$Value", &[("field", "name")]);
        let out = run(&chain, record_with(Some(person()), alice()));
        assert_eq!(out.value, Value::String("alice".into()));
        assert_eq!(out.value_schema.unwrap().kind, Type::String);
        let out = run(
            &chain,
            record_with(None, map(vec![("name", Value::String("bob".into()))])),
        );
        assert_eq!(out.value, Value::String("bob".into()));
        assert!(out.value_schema.is_none());
        // Null passes through; with a schema, the schema becomes the field's.
        let out = run(&chain, record_with(Some(person()), Value::Null));
        assert_eq!(out.value, Value::Null);
        assert_eq!(out.value_schema.unwrap().kind, Type::String);
        let e = one("ExtractField$Value", &[("field", "age")])
            .apply(record_with(Some(person()), alice()))
            .unwrap_err();
        assert_eq!(e.to_string(), "Unknown field: age");
    }

    #[test]
    fn extract_field_v2_follows_dotted_paths() {
        let inner = Schema::structure(vec![("city", Schema::of(Type::String))]);
        let outer = Arc::new(Schema::structure(vec![("address", inner.clone())]));
        let inner_value = Struct {
            schema: outer.fields[0].schema.clone(),
            values: vec![Value::String("Oslo".into())],
        };
        let value = Value::Struct(Struct {
            schema: Arc::clone(&outer),
            values: vec![Value::Struct(inner_value)],
        });
        let chain = one(
            "ExtractField$Value",
            &[("field", "address.city"), ("field.syntax.version", "v2")],
        );
        let out = run(&chain, record_with(Some(outer), value));
        assert_eq!(out.value, Value::String("Oslo".into()));
        let out = run(
            &chain,
            record_with(
                None,
                map(vec![(
                    "address",
                    map(vec![("city", Value::String("Rome".into()))]),
                )]),
            ),
        );
        assert_eq!(out.value, Value::String("Rome".into()));
        // V1 takes the dotted name whole.
        let v1 = one("ExtractField$Value", &[("field", "a.b")]);
        let out = run(&v1, record_with(None, map(vec![("a.b", Value::Int8(1))])));
        assert_eq!(out.value, Value::Int8(1));
        assert_eq!(parse_path("`a.b`.c").unwrap(), vec!["a.b", "c"]);
        assert_eq!(
            errors_of("ExtractField$Value", &[("field", "x"), ("field.syntax.version", "V3")])[0].1,
            "Invalid value V3 for configuration transforms.t.field.syntax.version: String must be one of (case insensitive): V1, V2"
        );
    }

    #[test]
    fn hoist_field_and_set_schema_metadata() {
        let chain = one("HoistField$Value", &[("field", "line")]);
        let out = run(&chain, record_with(None, Value::String("hello".into())));
        assert_eq!(
            out.value,
            map(vec![("line", Value::String("hello".into()))])
        );
        let out = run(
            &chain,
            record_with(
                Some(Arc::new(Schema::of(Type::String))),
                Value::String("hi".into()),
            ),
        );
        out.value_schema
            .clone()
            .unwrap()
            .validate(&out.value)
            .unwrap();
        assert_eq!(
            fields_of(&out.value),
            vec![("line".into(), Value::String("hi".into()))]
        );

        let chain = one(
            "SetSchemaMetadata$Value",
            &[
                ("schema.name", "com.example.Person"),
                ("schema.version", "3"),
            ],
        );
        let out = run(&chain, record_with(Some(person()), alice()));
        let s = out.value_schema.clone().unwrap();
        assert_eq!(
            (s.name.as_deref(), s.version),
            (Some("com.example.Person"), Some(3))
        );
        match &out.value {
            Value::Struct(v) => assert!(Arc::ptr_eq(&v.schema, &s)),
            other => panic!("{other:?}"),
        }
        let e = chain.apply(record_with(None, map(vec![]))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Schema required for [updating schema metadata]"
        );
        assert_eq!(
            errors_of("SetSchemaMetadata$Value", &[("schema.version", "x")])[0].1,
            "Invalid value x for configuration transforms.t.schema.version: Not a number of type INT"
        );
    }
}
