//! Single Message Transforms and predicates, as Kafka Connect's
//! `org.apache.kafka.connect.transforms`: the transformations a connector's config chains
//! (`transforms`, `transforms.<alias>.type`, `transforms.<alias>.<setting>`), the
//! predicates that gate them (`transforms.<alias>.predicate` / `negate`, `predicates`,
//! `predicates.<alias>.type`), their settings with Kafka's names, defaults and error
//! messages, and their behaviour on schemaless (map) and schema'd (struct) keys and values.
//!
//! This module owns the [`Transformation`] and [`Predicate`] traits, the [`Chain`] built
//! from a connector's properties, [`validate`] (per-property errors for Connect's validate
//! answer) and [`plugins`] (the class names `GET /connector-plugins` lists). The transforms
//! themselves live in [`fields`] (InsertField, ReplaceField, ValueToKey, ExtractField,
//! HoistField, SetSchemaMetadata), [`mask`] (MaskField), [`cast`] (Cast), [`routers`]
//! (TimestampRouter, RegexRouter) and [`predicates`] (Filter, the header transforms and
//! the predicates).

pub mod cast;
pub mod fields;
pub mod mask;
pub mod predicates;
pub mod routers;
mod support;

pub use support::*;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::record::Record;
use crate::ConnectError;

/// One transformation (Kafka's `Transformation`).
pub trait Transformation: Send + Sync {
    /// The record transformed, or `None` to drop it.
    fn apply(&self, record: Record) -> Result<Option<Record>, ConnectError>;
}

/// A predicate (Kafka's `Predicate`).
pub trait Predicate: Send + Sync {
    /// Whether `record` satisfies it.
    fn test(&self, record: &Record) -> bool;
}

/// One link of a chain: a transformation and the predicate (negated or not) that gates it.
struct Stage {
    alias: String,
    transform: Box<dyn Transformation>,
    predicate: Option<(Arc<dyn Predicate>, bool)>,
}

/// The chain a connector's config names.
pub struct Chain {
    stages: Vec<Stage>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field(
                "transforms",
                &self.stages.iter().map(|s| &s.alias).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Chain {
    /// From a connector's properties: `transforms` (comma list of aliases),
    /// `transforms.<alias>.type` (class name), `transforms.<alias>.<setting>`,
    /// `transforms.<alias>.predicate` and `transforms.<alias>.negate`, `predicates` and
    /// `predicates.<alias>.type` / settings. The first error, in Kafka's words, naming
    /// the property.
    pub fn from_config(props: &BTreeMap<String, String>) -> Result<Chain, ConnectError> {
        let (chain, errors) = build(props);
        match errors.into_iter().next() {
            Some((_, message)) => Err(ConnectError::Config(message)),
            None => Ok(chain),
        }
    }

    /// Applies each transformation in order (skipping one whose predicate, negated or
    /// not, says no); `None` once one drops the record.
    pub fn apply(&self, record: Record) -> Result<Option<Record>, ConnectError> {
        let mut record = record;
        for stage in &self.stages {
            if let Some((predicate, negate)) = &stage.predicate {
                if predicate.test(&record) == *negate {
                    continue;
                }
            }
            match stage.transform.apply(record)? {
                Some(r) => record = r,
                None => return Ok(None),
            }
        }
        Ok(Some(record))
    }

    /// Whether the chain is empty.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// The transforms' aliases, in order.
    pub fn aliases(&self) -> Vec<&str> {
        self.stages.iter().map(|s| s.alias.as_str()).collect()
    }
}

/// Per-property validation errors for Connect's validate answer (property name,
/// message), so a bad transform config shows up against `transforms.<alias>.<setting>`.
pub fn validate(props: &BTreeMap<String, String>) -> Vec<(String, String)> {
    build(props).1
}

/// Kafka class names of the transforms and predicates (for
/// `GET /connector-plugins?connectorsOnly=false`): (class, "transformation" | "predicate").
pub fn plugins() -> Vec<(&'static str, &'static str)> {
    PLUGINS
        .iter()
        .map(|p| {
            let kind = match p.build {
                Build::Transform(_) => "transformation",
                Build::Predicate(_) => "predicate",
            };
            (p.class, kind)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The registry of classes.

type TransformBuilder = fn(&mut Settings, Part) -> Option<Box<dyn Transformation>>;
type PredicateBuilder = fn(&mut Settings) -> Option<Box<dyn Predicate>>;

#[derive(Clone, Copy)]
enum Build {
    Transform(TransformBuilder),
    Predicate(PredicateBuilder),
}

struct Plugin {
    class: &'static str,
    part: Part,
    build: Build,
}

const fn transform(class: &'static str, part: Part, build: TransformBuilder) -> Plugin {
    Plugin {
        class,
        part,
        build: Build::Transform(build),
    }
}

const fn predicate(class: &'static str, build: PredicateBuilder) -> Plugin {
    Plugin {
        class,
        part: Part::Value,
        build: Build::Predicate(build),
    }
}

const PACKAGE: &str = "org.apache.kafka.connect.transforms.";

static PLUGINS: &[Plugin] = &[
    transform(
        "org.apache.kafka.connect.transforms.Cast$Key",
        Part::Key,
        cast::build,
    ),
    transform(
        "org.apache.kafka.connect.transforms.Cast$Value",
        Part::Value,
        cast::build,
    ),
    transform(
        "org.apache.kafka.connect.transforms.DropHeaders",
        Part::Value,
        predicates::build_drop_headers,
    ),
    transform(
        "org.apache.kafka.connect.transforms.ExtractField$Key",
        Part::Key,
        fields::build_extract_field,
    ),
    transform(
        "org.apache.kafka.connect.transforms.ExtractField$Value",
        Part::Value,
        fields::build_extract_field,
    ),
    transform(
        "org.apache.kafka.connect.transforms.Filter",
        Part::Value,
        predicates::build_filter,
    ),
    transform(
        "org.apache.kafka.connect.transforms.HoistField$Key",
        Part::Key,
        fields::build_hoist_field,
    ),
    transform(
        "org.apache.kafka.connect.transforms.HoistField$Value",
        Part::Value,
        fields::build_hoist_field,
    ),
    transform(
        "org.apache.kafka.connect.transforms.InsertField$Key",
        Part::Key,
        fields::build_insert_field,
    ),
    transform(
        "org.apache.kafka.connect.transforms.InsertField$Value",
        Part::Value,
        fields::build_insert_field,
    ),
    transform(
        "org.apache.kafka.connect.transforms.InsertHeader",
        Part::Value,
        predicates::build_insert_header,
    ),
    transform(
        "org.apache.kafka.connect.transforms.MaskField$Key",
        Part::Key,
        mask::build,
    ),
    transform(
        "org.apache.kafka.connect.transforms.MaskField$Value",
        Part::Value,
        mask::build,
    ),
    transform(
        "org.apache.kafka.connect.transforms.RegexRouter",
        Part::Value,
        routers::build_regex_router,
    ),
    transform(
        "org.apache.kafka.connect.transforms.ReplaceField$Key",
        Part::Key,
        fields::build_replace_field,
    ),
    transform(
        "org.apache.kafka.connect.transforms.ReplaceField$Value",
        Part::Value,
        fields::build_replace_field,
    ),
    transform(
        "org.apache.kafka.connect.transforms.SetSchemaMetadata$Key",
        Part::Key,
        fields::build_set_schema_metadata,
    ),
    transform(
        "org.apache.kafka.connect.transforms.SetSchemaMetadata$Value",
        Part::Value,
        fields::build_set_schema_metadata,
    ),
    transform(
        "org.apache.kafka.connect.transforms.TimestampRouter",
        Part::Value,
        routers::build_timestamp_router,
    ),
    transform(
        "org.apache.kafka.connect.transforms.ValueToKey",
        Part::Value,
        fields::build_value_to_key,
    ),
    predicate(
        "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
        predicates::build_has_header_key,
    ),
    predicate(
        "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
        predicates::build_record_is_tombstone,
    ),
    predicate(
        "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        predicates::build_topic_name_matches,
    ),
];

/// The class's simple name, after its package (`InsertField$Value`).
fn simple_name(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

/// The plugin `class` names, by full name or by simple name.
fn lookup(class: &str) -> Option<&'static Plugin> {
    PLUGINS
        .iter()
        .find(|p| p.class == class || (!class.contains('.') && simple_name(p.class) == class))
}

/// The concrete `$Key` / `$Value` classes when `class` names an abstract one
/// (`InsertField`).
fn concrete_children(class: &str) -> Vec<&'static str> {
    let full = if class.contains('.') {
        class.to_string()
    } else {
        format!("{PACKAGE}{class}")
    };
    PLUGINS
        .iter()
        .filter(|p| {
            p.class
                .strip_prefix(full.as_str())
                .is_some_and(|rest| rest == "$Key" || rest == "$Value")
        })
        .map(|p| p.class)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Building a chain.

/// The chain from `props`, and every error found on the way (property, message).
fn build(props: &BTreeMap<String, String>) -> (Chain, Vec<(String, String)>) {
    let mut errors = Vec::new();
    let transform_aliases = aliases(props, "transforms", &mut errors);
    let predicate_aliases = aliases(props, "predicates", &mut errors);

    let mut built_predicates: BTreeMap<String, Arc<dyn Predicate>> = BTreeMap::new();
    for alias in &predicate_aliases {
        let mut settings = Settings::new(props, format!("predicates.{alias}."));
        if let Some(p) = plugin_for(&mut settings, "Predicate") {
            if let Build::Predicate(make) = p.build {
                if let Some(pred) = make(&mut settings) {
                    if settings.errors.is_empty() {
                        built_predicates.insert(alias.clone(), Arc::from(pred));
                    }
                }
            }
        }
        errors.append(&mut settings.errors);
    }

    let mut stages = Vec::new();
    for alias in &transform_aliases {
        let mut settings = Settings::new(props, format!("transforms.{alias}."));
        let predicate_alias = settings.string("predicate");
        let negate_given = settings.raw("negate").is_some();
        let negate = settings.boolean("negate", false);
        if negate_given && predicate_alias.is_none() {
            let (n, p) = (settings.name("negate"), settings.name("predicate"));
            settings.errors.push((
                n.clone(),
                format!(
                    "Config '{n}' was provided but there is no config '{p}' defining a predicate to be negated."
                ),
            ));
        }
        let mut gate = None;
        if let Some(pa) = predicate_alias.filter(|a| !a.is_empty()) {
            if !predicate_aliases.contains(&pa) {
                settings.invalid(
                    "predicate",
                    &pa,
                    &format!("no predicate with alias {pa} is listed in 'predicates'"),
                );
            } else if let Some(p) = built_predicates.get(&pa) {
                gate = Some((Arc::clone(p), negate));
            }
        }
        if let Some(p) = plugin_for(&mut settings, "Transformation") {
            if let Build::Transform(make) = p.build {
                if let Some(t) = make(&mut settings, p.part) {
                    if settings.errors.is_empty() {
                        stages.push(Stage {
                            alias: alias.clone(),
                            transform: t,
                            predicate: gate,
                        });
                    }
                }
            }
        }
        errors.append(&mut settings.errors);
    }
    (Chain { stages }, errors)
}

/// The aliases listed in `transforms` or `predicates`; duplicates are refused.
fn aliases(
    props: &BTreeMap<String, String>,
    key: &str,
    errors: &mut Vec<(String, String)>,
) -> Vec<String> {
    let list = props
        .get(key)
        .map(String::as_str)
        .map(parse_list)
        .unwrap_or_default();
    let unique: BTreeSet<&String> = list.iter().collect();
    if unique.len() < list.len() {
        errors.push((
            key.to_string(),
            format!(
                "Invalid value {} for configuration {key}: Duplicate alias provided.",
                java_list(&list)
            ),
        ));
        let mut seen = BTreeSet::new();
        return list
            .into_iter()
            .filter(|a| seen.insert(a.clone()))
            .collect();
    }
    list
}

/// The plugin `<prefix>type` names, if it is one of `kind` ("Transformation" or
/// "Predicate"); otherwise records Kafka's error against `<prefix>type`.
fn plugin_for(settings: &mut Settings, kind: &str) -> Option<&'static Plugin> {
    let class = settings.required_string("type")?;
    let wanted = |p: &Plugin| match p.build {
        Build::Transform(_) => kind == "Transformation",
        Build::Predicate(_) => kind == "Predicate",
    };
    match lookup(&class) {
        Some(p) if wanted(p) => Some(p),
        Some(p) => {
            settings.invalid(
                "type",
                &format!("class {}", p.class),
                &format!("Not a {kind}"),
            );
            None
        }
        None => {
            let children = concrete_children(&class);
            if children.is_empty() {
                settings.invalid(
                    "type",
                    &class,
                    &format!("Class {class} could not be found."),
                );
            } else {
                let full = children[0]
                    .trim_end_matches("$Key")
                    .trim_end_matches("$Value");
                settings.invalid(
                    "type",
                    &format!("class {full}"),
                    &format!(
                        "{kind} is abstract and cannot be created. Did you mean {}?",
                        children.join(", ")
                    ),
                );
            }
            None
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::Value;

    /// Properties from pairs.
    pub(crate) fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A chain of one transform `t` of `class` with `settings` (names without the
    /// `transforms.t.` prefix).
    pub(crate) fn one(class: &str, settings: &[(&str, &str)]) -> Chain {
        let mut p = props(&[("transforms", "t"), ("transforms.t.type", class)]);
        for (k, v) in settings {
            p.insert(format!("transforms.t.{k}"), v.to_string());
        }
        Chain::from_config(&p).unwrap()
    }

    /// The errors for one transform `t` of `class` with `settings`.
    pub(crate) fn errors_of(class: &str, settings: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut p = props(&[("transforms", "t"), ("transforms.t.type", class)]);
        for (k, v) in settings {
            p.insert(format!("transforms.t.{k}"), v.to_string());
        }
        validate(&p)
    }

    /// A schemaless map of string keys.
    pub(crate) fn map(pairs: Vec<(&str, Value)>) -> Value {
        Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Value::String(k.into()), v))
                .collect(),
        )
    }

    /// Applies a chain that must keep the record.
    pub(crate) fn run(chain: &Chain, r: Record) -> Record {
        chain.apply(r).unwrap().expect("record kept")
    }

    #[test]
    fn an_empty_config_is_an_empty_chain() {
        let chain = Chain::from_config(&props(&[])).unwrap();
        assert!(chain.is_empty());
        let r = Record::new("t").with_value(None, Value::Int32(1));
        assert_eq!(chain.apply(r.clone()).unwrap(), Some(r));
        assert!(validate(&props(&[("transforms", "")])).is_empty());
    }

    #[test]
    fn transforms_run_in_order_and_a_filter_drops() {
        let chain = Chain::from_config(&props(&[
            ("transforms", "route, insert"),
            ("transforms.route.type", "RegexRouter"),
            ("transforms.route.regex", "(.*)"),
            ("transforms.route.replacement", "x-$1"),
            ("transforms.insert.type", "InsertField$Value"),
            ("transforms.insert.topic.field", "topic"),
        ]))
        .unwrap();
        assert_eq!(chain.aliases(), vec!["route", "insert"]);
        let out = run(&chain, Record::new("orders").with_value(None, map(vec![])));
        assert_eq!(out.topic, "x-orders");
        // InsertField saw the topic RegexRouter wrote.
        assert_eq!(
            out.value,
            map(vec![("topic", Value::String("x-orders".into()))])
        );

        let drop_all = one("org.apache.kafka.connect.transforms.Filter", &[]);
        assert_eq!(drop_all.apply(Record::new("t")).unwrap(), None);
    }

    #[test]
    fn a_predicate_gates_a_transform_and_negate_inverts_it() {
        let config = |negate: Option<&str>| {
            let mut p = props(&[
                ("transforms", "drop"),
                ("transforms.drop.type", "Filter"),
                ("transforms.drop.predicate", "isTest"),
                ("predicates", "isTest"),
                (
                    "predicates.isTest.type",
                    "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
                ),
                ("predicates.isTest.pattern", "test-.*"),
            ]);
            if let Some(n) = negate {
                p.insert("transforms.drop.negate".into(), n.into());
            }
            Chain::from_config(&p).unwrap()
        };
        let plain = config(None);
        assert_eq!(plain.apply(Record::new("test-1")).unwrap(), None);
        assert!(plain.apply(Record::new("prod-1")).unwrap().is_some());
        // The pattern must match the whole topic.
        assert!(plain.apply(Record::new("a-test-1")).unwrap().is_some());
        let negated = config(Some("true"));
        assert!(negated.apply(Record::new("test-1")).unwrap().is_some());
        assert_eq!(negated.apply(Record::new("prod-1")).unwrap(), None);
        assert_eq!(
            config(Some("false")).apply(Record::new("test-1")).unwrap(),
            None
        );
    }

    #[test]
    fn tombstones_and_headers_as_predicates() {
        let chain = Chain::from_config(&props(&[
            ("transforms", "dropTombstones,dropMarked"),
            ("transforms.dropTombstones.type", "Filter"),
            ("transforms.dropTombstones.predicate", "tomb"),
            ("transforms.dropMarked.type", "Filter"),
            ("transforms.dropMarked.predicate", "marked"),
            ("predicates", "tomb,marked"),
            ("predicates.tomb.type", "RecordIsTombstone"),
            ("predicates.marked.type", "HasHeaderKey"),
            ("predicates.marked.name", "skip"),
        ]))
        .unwrap();
        assert_eq!(chain.apply(Record::new("t")).unwrap(), None);
        let live = Record::new("t").with_value(None, Value::Int32(1));
        assert!(chain.apply(live.clone()).unwrap().is_some());
        let mut marked = live;
        marked.headers.push(("skip".into(), None));
        assert_eq!(chain.apply(marked).unwrap(), None);
    }

    #[test]
    fn bad_chain_configs_are_refused_in_kafkas_words() {
        let err =
            |pairs: &[(&str, &str)]| Chain::from_config(&props(pairs)).unwrap_err().to_string();
        assert_eq!(
            err(&[("transforms", "a")]),
            "Missing required configuration \"transforms.a.type\" which has no default value."
        );
        assert_eq!(
            err(&[("transforms", "a"), ("transforms.a.type", "com.example.Nope")]),
            "Invalid value com.example.Nope for configuration transforms.a.type: Class com.example.Nope could not be found."
        );
        assert_eq!(
            err(&[("transforms", "a,a"), ("transforms.a.type", "Filter")]),
            "Invalid value [a, a] for configuration transforms: Duplicate alias provided."
        );
        assert_eq!(
            err(&[("transforms", "a"), ("transforms.a.type", "InsertField")]),
            "Invalid value class org.apache.kafka.connect.transforms.InsertField for configuration transforms.a.type: \
             Transformation is abstract and cannot be created. Did you mean \
             org.apache.kafka.connect.transforms.InsertField$Key, org.apache.kafka.connect.transforms.InsertField$Value?"
        );
        assert_eq!(
            err(&[("transforms", "a"), ("transforms.a.type", "TopicNameMatches")]),
            "Invalid value class org.apache.kafka.connect.transforms.predicates.TopicNameMatches for configuration \
             transforms.a.type: Not a Transformation"
        );
        assert_eq!(
            err(&[("transforms", "a"), ("transforms.a.type", "Filter"), ("transforms.a.negate", "true")]),
            "Config 'transforms.a.negate' was provided but there is no config 'transforms.a.predicate' defining a predicate to be negated."
        );
        assert_eq!(
            err(&[("transforms", "a"), ("transforms.a.type", "Filter"), ("transforms.a.predicate", "p")]),
            "Invalid value p for configuration transforms.a.predicate: no predicate with alias p is listed in 'predicates'"
        );
        assert_eq!(
            err(&[
                ("transforms", "a"),
                ("transforms.a.type", "Filter"),
                ("transforms.a.predicate", "p"),
                ("transforms.a.negate", "maybe"),
                ("predicates", "p"),
                ("predicates.p.type", "RecordIsTombstone"),
            ]),
            "Invalid value maybe for configuration transforms.a.negate: Expected value to be either true or false"
        );
        assert_eq!(
            err(&[("predicates", "p")]),
            "Missing required configuration \"predicates.p.type\" which has no default value."
        );
        assert_eq!(
            err(&[("predicates", "p"), ("predicates.p.type", "Filter")]),
            "Invalid value class org.apache.kafka.connect.transforms.Filter for configuration predicates.p.type: Not a Predicate"
        );
    }

    #[test]
    fn validate_names_each_bad_property() {
        let errors = validate(&props(&[
            ("transforms", "a,b,c"),
            ("transforms.a.type", "ExtractField$Value"),
            (
                "transforms.b.type",
                "org.apache.kafka.connect.transforms.Cast$Key",
            ),
            ("transforms.b.spec", "x:decimal"),
            ("transforms.c.type", "ValueToKey"),
            ("transforms.c.fields", "id"),
            ("predicates", "p"),
            ("predicates.p.type", "TopicNameMatches"),
            ("predicates.p.pattern", "("),
        ]));
        let names: Vec<&str> = errors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "predicates.p.pattern",
                "transforms.a.field",
                "transforms.b.spec"
            ],
            "{errors:?}"
        );
        assert!(errors[0].1.starts_with(
            "Invalid value ( for configuration predicates.p.pattern: Invalid regex: "
        ));
        assert_eq!(
            errors[1].1,
            "Missing required configuration \"transforms.a.field\" which has no default value."
        );
        assert_eq!(
            errors[2].1,
            "Invalid value x:decimal for configuration transforms.b.spec: Invalid type found in casting spec: decimal"
        );
    }

    #[test]
    fn plugins_are_listed_by_kafkas_class_names() {
        let all = plugins();
        assert!(all.contains(&(
            "org.apache.kafka.connect.transforms.InsertField$Value",
            "transformation"
        )));
        assert!(all.contains(&(
            "org.apache.kafka.connect.transforms.Filter",
            "transformation"
        )));
        assert!(all.contains(&(
            "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
            "predicate"
        )));
        assert_eq!(all.iter().filter(|(_, k)| *k == "predicate").count(), 3);
        // Every listed class builds from its short name too (with no settings where none are needed).
        assert!(lookup("Cast$Value").is_some());
        assert!(lookup("predicates.HasHeaderKey").is_none());
    }
}
