//! Config definitions with validation, as Kafka's `ConfigDef`: each setting's type,
//! default, importance, documentation and validator, parsed from string properties, and
//! the per-setting results that Connect's `PUT /connector-plugins/{plugin}/config/validate`
//! answers, with Kafka's error messages.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

use crate::ConnectError;

/// A setting's type, by Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `BOOLEAN`.
    Boolean,
    /// `STRING`.
    String,
    /// `INT` (32 bits).
    Int,
    /// `LONG` (64 bits).
    Long,
    /// `DOUBLE`.
    Double,
    /// `LIST`: comma-separated.
    List,
    /// `CLASS`: a class name.
    Class,
    /// `PASSWORD`: never shown back.
    Password,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Boolean => "BOOLEAN",
            Kind::String => "STRING",
            Kind::Int => "INT",
            Kind::Long => "LONG",
            Kind::Double => "DOUBLE",
            Kind::List => "LIST",
            Kind::Class => "CLASS",
            Kind::Password => "PASSWORD",
        }
    }
}

/// How much a setting matters, by Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    /// `HIGH`.
    High,
    /// `MEDIUM`.
    Medium,
    /// `LOW`.
    Low,
}

/// What a valid value is, beyond its type.
#[derive(Debug, Clone, PartialEq)]
pub enum Validator {
    /// A number at least this.
    AtLeast(f64),
    /// A number within these bounds.
    Between(f64, f64),
    /// One of these strings (case-sensitive, as Kafka's `ValidString`).
    OneOf(Vec<String>),
    /// A string that is not empty.
    NonEmpty,
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Setting {
    /// BOOLEAN.
    Boolean(bool),
    /// STRING, CLASS or PASSWORD.
    String(String),
    /// INT or LONG.
    Long(i64),
    /// DOUBLE.
    Double(f64),
    /// LIST.
    List(Vec<String>),
}

/// One setting's definition.
#[derive(Debug, Clone)]
pub struct Key {
    /// Its name.
    pub name: String,
    /// Its type.
    pub kind: Kind,
    /// Its default, as a string; `None`: required.
    pub default: Option<String>,
    /// Its importance.
    pub importance: Importance,
    /// Its documentation.
    pub doc: String,
    /// Its validator.
    pub validator: Option<Validator>,
    /// Whether it may be left out with no default (Kafka's `null` default).
    pub nullable: bool,
}

/// A connector's or a worker's settings.
#[derive(Debug, Clone, Default)]
pub struct ConfigDef {
    keys: Vec<Key>,
}

/// One setting's validation result.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigValue {
    /// The setting.
    pub name: String,
    /// Its value as given or defaulted (`None` for a password or when absent).
    pub value: Option<String>,
    /// What is wrong with it, in Kafka's words.
    pub errors: Vec<String>,
}

impl ConfigDef {
    /// No settings.
    pub fn new() -> ConfigDef {
        ConfigDef::default()
    }

    /// Adds a setting (`default` `None`: required).
    pub fn define(
        mut self,
        name: &str,
        kind: Kind,
        default: Option<&str>,
        importance: Importance,
        doc: &str,
    ) -> ConfigDef {
        self.keys.push(Key {
            name: name.into(),
            kind,
            default: default.map(str::to_string),
            importance,
            doc: doc.into(),
            validator: None,
            nullable: false,
        });
        self
    }

    /// Lets the setting defined last be left out (a `null` default, as Kafka's).
    pub fn nullable(mut self) -> ConfigDef {
        if let Some(k) = self.keys.last_mut() {
            k.nullable = true;
        }
        self
    }

    /// These settings followed by those of `other` it does not define already.
    pub fn merged(mut self, other: ConfigDef) -> ConfigDef {
        for k in other.keys {
            if !self.keys.iter().any(|mine| mine.name == k.name) {
                self.keys.push(k);
            }
        }
        self
    }

    /// Gives the setting defined last a validator.
    pub fn validated(mut self, validator: Validator) -> ConfigDef {
        if let Some(k) = self.keys.last_mut() {
            k.validator = Some(validator);
        }
        self
    }

    /// The definitions.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Every setting checked against `props`.
    pub fn validate(&self, props: &BTreeMap<String, String>) -> Vec<ConfigValue> {
        self.keys
            .iter()
            .map(|k| {
                let given = props.get(&k.name).or(k.default.as_ref());
                let errors = match given {
                    None if k.nullable => Vec::new(),
                    None => vec![format!(
                        "Missing required configuration \"{}\" which has no default value.",
                        k.name
                    )],
                    Some(v) => parse(k, v).err().into_iter().collect(),
                };
                ConfigValue {
                    name: k.name.clone(),
                    value: given.filter(|_| k.kind != Kind::Password).cloned(),
                    errors,
                }
            })
            .collect()
    }

    /// The parsed settings, or the first error.
    pub fn parse(
        &self,
        props: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, Setting>, ConnectError> {
        let mut out = BTreeMap::new();
        for k in &self.keys {
            let given = props.get(&k.name).or(k.default.as_ref());
            if given.is_none() && k.nullable {
                continue;
            }
            let v = given.ok_or_else(|| {
                ConnectError::Config(format!(
                    "Missing required configuration \"{}\" which has no default value.",
                    k.name
                ))
            })?;
            out.insert(k.name.clone(), parse(k, v).map_err(ConnectError::Config)?);
        }
        Ok(out)
    }

    /// Connect's answer to a validation request for `plugin` (the JSON of
    /// `PUT /connector-plugins/{plugin}/config/validate`).
    pub fn validation_json(&self, plugin: &str, props: &BTreeMap<String, String>) -> Json {
        self.validation_json_of(plugin, &self.validate(props))
    }

    /// The validate answer for results already computed (settings this definition does
    /// not know, such as a transformation's, get a plain STRING definition).
    pub fn validation_json_of(&self, plugin: &str, values: &[ConfigValue]) -> Json {
        let error_count: usize = values.iter().map(|v| v.errors.len()).sum();
        let configs: Vec<Json> = values
            .iter()
            .enumerate()
            .map(|(order, v)| {
                let k = self.keys.iter().find(|k| k.name == v.name);
                json!({
                    "definition": {
                        "name": v.name,
                        "type": k.map_or("STRING", |k| k.kind.name()),
                        "required": k.is_some_and(|k| k.default.is_none() && !k.nullable),
                        "default_value": k.and_then(|k| k.default.clone()),
                        "importance": match k.map_or(Importance::Low, |k| k.importance) {
                            Importance::High => "HIGH",
                            Importance::Medium => "MEDIUM",
                            Importance::Low => "LOW",
                        },
                        "documentation": k.map_or("", |k| k.doc.as_str()),
                        "group": null,
                        "width": "NONE",
                        "display_name": v.name,
                        "dependents": [],
                        "order": order,
                    },
                    "value": {
                        "name": v.name,
                        "value": v.value,
                        "recommended_values": [],
                        "errors": v.errors,
                        "visible": true,
                    },
                })
            })
            .collect();
        json!({ "name": plugin, "error_count": error_count, "groups": [], "configs": configs })
    }
}

/// `value` as the setting's type, checked by its validator; the error in Kafka's words.
fn parse(k: &Key, value: &str) -> Result<Setting, String> {
    let invalid = |why: &str| format!("Invalid value {value} for configuration {}: {why}", k.name);
    let v = value.trim();
    let setting = match k.kind {
        Kind::Boolean => match v.to_ascii_lowercase().as_str() {
            "true" => Setting::Boolean(true),
            "false" => Setting::Boolean(false),
            _ => return Err(invalid("Expected value to be either true or false")),
        },
        Kind::String | Kind::Class | Kind::Password => Setting::String(v.to_string()),
        Kind::Int => Setting::Long(
            v.parse::<i32>()
                .map_err(|_| invalid("Not a number of type INT"))?
                .into(),
        ),
        Kind::Long => Setting::Long(
            v.parse::<i64>()
                .map_err(|_| invalid("Not a number of type LONG"))?,
        ),
        Kind::Double => Setting::Double(
            v.parse::<f64>()
                .map_err(|_| invalid("Not a number of type DOUBLE"))?,
        ),
        Kind::List => Setting::List(
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        ),
    };
    let number = match &setting {
        Setting::Long(n) => Some(*n as f64),
        Setting::Double(d) => Some(*d),
        _ => None,
    };
    let shown = |n: f64| {
        if n.fract() == 0.0 {
            format!("{}", n as i64)
        } else {
            n.to_string()
        }
    };
    match (&k.validator, number, &setting) {
        (Some(Validator::AtLeast(min)), Some(n), _) if n < *min => {
            Err(invalid(&format!("Value must be at least {}", shown(*min))))
        }
        (Some(Validator::Between(lo, _)), Some(n), _) if n < *lo => {
            Err(invalid(&format!("Value must be at least {}", shown(*lo))))
        }
        (Some(Validator::Between(_, hi)), Some(n), _) if n > *hi => Err(invalid(&format!(
            "Value must be no more than {}",
            shown(*hi)
        ))),
        (Some(Validator::OneOf(allowed)), _, Setting::String(s)) if !allowed.contains(s) => Err(
            invalid(&format!("String must be one of: {}", allowed.join(", "))),
        ),
        (Some(Validator::NonEmpty), _, Setting::String(s)) if s.is_empty() => {
            Err(invalid("String must be non-empty"))
        }
        _ => Ok(setting),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_source() -> ConfigDef {
        ConfigDef::new()
            .define(
                "file",
                Kind::String,
                None,
                Importance::High,
                "Source filename.",
            )
            .validated(Validator::NonEmpty)
            .define(
                "topic",
                Kind::String,
                None,
                Importance::High,
                "The topic to publish to.",
            )
            .define(
                "tasks.max",
                Kind::Int,
                Some("1"),
                Importance::High,
                "Tasks at most.",
            )
            .validated(Validator::AtLeast(1.0))
            .define(
                "batch.size",
                Kind::Int,
                Some("2000"),
                Importance::Low,
                "Records per poll.",
            )
            .validated(Validator::Between(1.0, 100_000.0))
            .define(
                "errors.tolerance",
                Kind::String,
                Some("none"),
                Importance::Medium,
                "none or all.",
            )
            .validated(Validator::OneOf(vec!["none".into(), "all".into()]))
            .define(
                "password",
                Kind::Password,
                Some(""),
                Importance::Low,
                "Never shown.",
            )
    }

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn values_are_parsed_with_defaults_and_refused_in_kafkas_words() {
        let def = file_source();
        let ok = def
            .parse(&props(&[
                ("file", "/tmp/in.txt"),
                ("topic", "lines"),
                ("tasks.max", "3"),
            ]))
            .unwrap();
        assert_eq!(ok["tasks.max"], Setting::Long(3));
        assert_eq!(ok["batch.size"], Setting::Long(2000));
        let errors = |p: &[(&str, &str)]| -> Vec<String> {
            def.validate(&props(p))
                .into_iter()
                .flat_map(|v| v.errors)
                .collect()
        };
        assert_eq!(
            errors(&[("topic", "t")]),
            vec!["Missing required configuration \"file\" which has no default value."]
        );
        assert_eq!(
            errors(&[("file", "f"), ("topic", "t"), ("tasks.max", "many")]),
            vec!["Invalid value many for configuration tasks.max: Not a number of type INT"]
        );
        assert_eq!(
            errors(&[("file", "f"), ("topic", "t"), ("tasks.max", "0")]),
            vec!["Invalid value 0 for configuration tasks.max: Value must be at least 1"]
        );
        assert_eq!(
            errors(&[("file", "f"), ("topic", "t"), ("batch.size", "200000")]),
            vec!["Invalid value 200000 for configuration batch.size: Value must be no more than 100000"]
        );
        assert_eq!(
            errors(&[("file", "f"), ("topic", "t"), ("errors.tolerance", "some")]),
            vec!["Invalid value some for configuration errors.tolerance: String must be one of: none, all"]
        );
        assert_eq!(
            errors(&[("file", ""), ("topic", "t")]),
            vec!["Invalid value  for configuration file: String must be non-empty"]
        );
    }

    #[test]
    fn the_validation_answer_has_connects_shape_and_hides_passwords() {
        let j = file_source().validation_json(
            "FileStreamSourceConnector",
            &props(&[("topic", "t"), ("password", "hunter2")]),
        );
        assert_eq!(j["name"], "FileStreamSourceConnector");
        assert_eq!(j["error_count"], 1);
        let file = &j["configs"][0];
        assert_eq!(file["definition"]["name"], "file");
        assert_eq!(file["definition"]["required"], true);
        assert_eq!(file["definition"]["type"], "STRING");
        assert_eq!(file["value"]["errors"].as_array().unwrap().len(), 1);
        let tasks = &j["configs"][2];
        assert_eq!(tasks["definition"]["default_value"], "1");
        assert_eq!(tasks["value"]["value"], "1");
        assert_eq!(
            j["configs"][5]["value"]["value"],
            Json::Null,
            "a password is never shown"
        );
    }
}
