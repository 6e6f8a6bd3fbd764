//! Connect's typed record model, as Kafka Connect's `org.apache.kafka.connect.data`:
//! schemas (primitive types, arrays, maps, structs, with names, parameters and the logical
//! types Decimal, Date, Time and Timestamp) and the values they describe. Connectors see
//! typed data; converters turn it into bytes and back.

use std::sync::Arc;

use crate::ConnectError;

/// A schema's type, by Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    /// `int8`.
    Int8,
    /// `int16`.
    Int16,
    /// `int32`.
    Int32,
    /// `int64`.
    Int64,
    /// `float32`.
    Float32,
    /// `float64`.
    Float64,
    /// `boolean`.
    Boolean,
    /// `string`.
    String,
    /// `bytes`.
    Bytes,
    /// `array`.
    Array,
    /// `map`.
    Map,
    /// `struct`.
    Struct,
}

impl Type {
    /// Kafka's name (`int32`, `struct`).
    pub fn name(self) -> &'static str {
        match self {
            Type::Int8 => "int8",
            Type::Int16 => "int16",
            Type::Int32 => "int32",
            Type::Int64 => "int64",
            Type::Float32 => "float32",
            Type::Float64 => "float64",
            Type::Boolean => "boolean",
            Type::String => "string",
            Type::Bytes => "bytes",
            Type::Array => "array",
            Type::Map => "map",
            Type::Struct => "struct",
        }
    }

    /// The type named `name`.
    pub fn from_name(name: &str) -> Option<Type> {
        Some(match name {
            "int8" => Type::Int8,
            "int16" => Type::Int16,
            "int32" => Type::Int32,
            "int64" => Type::Int64,
            "float32" => Type::Float32,
            "float64" => Type::Float64,
            "boolean" => Type::Boolean,
            "string" => Type::String,
            "bytes" => Type::Bytes,
            "array" => Type::Array,
            "map" => Type::Map,
            "struct" => Type::Struct,
            _ => return None,
        })
    }
}

/// Logical type names, Kafka's.
pub mod logical {
    /// Decimal: `bytes` holding a two's-complement unscaled integer, parameter `scale`.
    pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
    /// Date: `int32` days since the epoch.
    pub const DATE: &str = "org.apache.kafka.connect.data.Date";
    /// Time: `int32` milliseconds since midnight.
    pub const TIME: &str = "org.apache.kafka.connect.data.Time";
    /// Timestamp: `int64` milliseconds since the epoch.
    pub const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";
}

/// One field of a struct schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Its position.
    pub index: usize,
    /// Its schema.
    pub schema: Arc<Schema>,
}

/// A schema, as Connect's `Schema`.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// The type.
    pub kind: Type,
    /// Whether null is allowed.
    pub optional: bool,
    /// A name (structs, logical types).
    pub name: Option<String>,
    /// A version.
    pub version: Option<i32>,
    /// Documentation.
    pub doc: Option<String>,
    /// Parameters (a Decimal's `scale`).
    pub parameters: Vec<(String, String)>,
    /// The default value.
    pub default: Option<Value>,
    /// A struct's fields, in order.
    pub fields: Vec<Field>,
    /// A map's key schema.
    pub key: Option<Arc<Schema>>,
    /// A map's value schema or an array's item schema.
    pub value: Option<Arc<Schema>>,
}

impl Schema {
    /// A required schema of a primitive type.
    pub fn of(kind: Type) -> Schema {
        Schema {
            kind,
            optional: false,
            name: None,
            version: None,
            doc: None,
            parameters: Vec::new(),
            default: None,
            fields: Vec::new(),
            key: None,
            value: None,
        }
    }

    /// The same schema with null allowed.
    pub fn optional(mut self) -> Schema {
        self.optional = true;
        self
    }

    /// The same schema with a name.
    pub fn named(mut self, name: &str) -> Schema {
        self.name = Some(name.to_string());
        self
    }

    /// An array of `items`.
    pub fn array(items: Schema) -> Schema {
        Schema {
            value: Some(Arc::new(items)),
            ..Schema::of(Type::Array)
        }
    }

    /// A map from `key` to `value`.
    pub fn map(key: Schema, value: Schema) -> Schema {
        Schema {
            key: Some(Arc::new(key)),
            value: Some(Arc::new(value)),
            ..Schema::of(Type::Map)
        }
    }

    /// A struct of `fields`, in order.
    pub fn structure(fields: Vec<(&str, Schema)>) -> Schema {
        Schema {
            fields: fields
                .into_iter()
                .enumerate()
                .map(|(index, (name, schema))| Field {
                    name: name.to_string(),
                    index,
                    schema: Arc::new(schema),
                })
                .collect(),
            ..Schema::of(Type::Struct)
        }
    }

    /// A Decimal with `scale` digits after the point.
    pub fn decimal(scale: i32) -> Schema {
        Schema {
            parameters: vec![("scale".into(), scale.to_string())],
            ..Schema::of(Type::Bytes).named(logical::DECIMAL)
        }
    }

    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// A parameter's value.
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Checks that `value` is one this schema describes, naming the first field that is
    /// not.
    pub fn validate(&self, value: &Value) -> Result<(), ConnectError> {
        self.validate_at(value, "value")
    }

    fn validate_at(&self, value: &Value, at: &str) -> Result<(), ConnectError> {
        let wrong = || {
            ConnectError::Data(format!(
                "{at}: {} does not match a {} schema",
                value.describe(),
                self.kind.name()
            ))
        };
        match (self.kind, value) {
            (_, Value::Null) if self.optional || self.default.is_some() => Ok(()),
            (_, Value::Null) => Err(ConnectError::Data(format!(
                "{at}: null for a required {} field",
                self.kind.name()
            ))),
            (Type::Int8, Value::Int8(_))
            | (Type::Int16, Value::Int16(_))
            | (Type::Int32, Value::Int32(_))
            | (Type::Int64, Value::Int64(_))
            | (Type::Float32, Value::Float32(_))
            | (Type::Float64, Value::Float64(_))
            | (Type::Boolean, Value::Boolean(_))
            | (Type::String, Value::String(_))
            | (Type::Bytes, Value::Bytes(_)) => Ok(()),
            (Type::Array, Value::Array(items)) => {
                let schema = self.value.as_ref().ok_or_else(wrong)?;
                for (i, item) in items.iter().enumerate() {
                    schema.validate_at(item, &format!("{at}[{i}]"))?;
                }
                Ok(())
            }
            (Type::Map, Value::Map(entries)) => {
                let (ks, vs) = match (&self.key, &self.value) {
                    (Some(k), Some(v)) => (k, v),
                    _ => return Err(wrong()),
                };
                for (k, v) in entries {
                    ks.validate_at(k, &format!("{at} key"))?;
                    vs.validate_at(v, &format!("{at}[{}]", k.describe()))?;
                }
                Ok(())
            }
            (Type::Struct, Value::Struct(s)) => {
                if s.schema.fields.len() != self.fields.len()
                    || s.schema
                        .fields
                        .iter()
                        .zip(&self.fields)
                        .any(|(a, b)| a.name != b.name)
                {
                    return Err(ConnectError::Data(format!(
                        "{at}: a struct of another schema"
                    )));
                }
                for (f, v) in self.fields.iter().zip(&s.values) {
                    f.schema.validate_at(v, &format!("{at}.{}", f.name))?;
                }
                Ok(())
            }
            _ => Err(wrong()),
        }
    }
}

/// A value, as Connect's Java objects are.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// null.
    Null,
    /// int8.
    Int8(i8),
    /// int16.
    Int16(i16),
    /// int32 (also Date and Time).
    Int32(i32),
    /// int64 (also Timestamp).
    Int64(i64),
    /// float32.
    Float32(f32),
    /// float64.
    Float64(f64),
    /// boolean.
    Boolean(bool),
    /// string.
    String(String),
    /// bytes (also Decimal's unscaled value).
    Bytes(Vec<u8>),
    /// array.
    Array(Vec<Value>),
    /// map, in its entries' order.
    Map(Vec<(Value, Value)>),
    /// struct.
    Struct(Struct),
}

impl Value {
    /// A short description for errors: its type, and the value when short.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Int8(v) => format!("int8 {v}"),
            Value::Int16(v) => format!("int16 {v}"),
            Value::Int32(v) => format!("int32 {v}"),
            Value::Int64(v) => format!("int64 {v}"),
            Value::Float32(v) => format!("float32 {v}"),
            Value::Float64(v) => format!("float64 {v}"),
            Value::Boolean(v) => format!("boolean {v}"),
            Value::String(s) if s.len() <= 32 => format!("string {s:?}"),
            Value::String(_) => "a string".into(),
            Value::Bytes(b) => format!("{} bytes", b.len()),
            Value::Array(a) => format!("an array of {}", a.len()),
            Value::Map(m) => format!("a map of {}", m.len()),
            Value::Struct(_) => "a struct".into(),
        }
    }
}

/// A struct value: its schema and a value per field, in the schema's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    /// The struct's schema.
    pub schema: Arc<Schema>,
    /// One value per field.
    pub values: Vec<Value>,
}

impl Struct {
    /// A struct of `schema` with every field null (to be set with [`Struct::put`]).
    pub fn new(schema: Arc<Schema>) -> Struct {
        let values = vec![Value::Null; schema.fields.len()];
        Struct { schema, values }
    }

    /// Sets the field `name`.
    pub fn put(mut self, name: &str, value: Value) -> Result<Struct, ConnectError> {
        let field = self
            .schema
            .field(name)
            .ok_or_else(|| ConnectError::Data(format!("{name} is not a field of the struct")))?;
        field.schema.validate_at(&value, name)?;
        let index = field.index;
        self.values[index] = value;
        Ok(self)
    }

    /// The field `name`'s value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.schema.field(name).map(|f| &self.values[f.index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> Arc<Schema> {
        Arc::new(
            Schema::structure(vec![
                ("id", Schema::of(Type::Int32)),
                ("name", Schema::of(Type::String).optional()),
                ("tags", Schema::array(Schema::of(Type::String))),
            ])
            .named("person"),
        )
    }

    #[test]
    fn structs_are_checked_against_their_schema() {
        let s = Struct::new(person())
            .put("id", Value::Int32(7))
            .unwrap()
            .put("tags", Value::Array(vec![Value::String("a".into())]))
            .unwrap();
        assert_eq!(s.get("id"), Some(&Value::Int32(7)));
        assert_eq!(s.get("name"), Some(&Value::Null));
        person().validate(&Value::Struct(s.clone())).unwrap();
        let e = Struct::new(person())
            .put("id", Value::String("seven".into()))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("id: string \"seven\" does not match a int32 schema"),
            "{e}"
        );
        assert!(Struct::new(person()).put("age", Value::Int32(1)).is_err());
        // A required field left null fails the whole struct.
        let e = person()
            .validate(&Value::Struct(Struct::new(person())))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("value.id: null for a required int32 field"),
            "{e}"
        );
        let e = Schema::array(Schema::of(Type::Int64))
            .validate(&Value::Array(vec![Value::Int64(1), Value::Boolean(true)]))
            .unwrap_err();
        assert!(e.to_string().contains("value[1]"), "{e}");
    }

    #[test]
    fn type_names_are_kafkas() {
        for t in [
            Type::Int8,
            Type::Float64,
            Type::Struct,
            Type::Map,
            Type::Bytes,
        ] {
            assert_eq!(Type::from_name(t.name()), Some(t));
        }
        assert_eq!(Type::from_name("int"), None);
        assert_eq!(Schema::decimal(2).parameter("scale"), Some("2"));
    }
}
