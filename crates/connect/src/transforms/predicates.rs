//! Kafka's predicates (`TopicNameMatches`, `HasHeaderKey`, `RecordIsTombstone`, in
//! `org.apache.kafka.connect.transforms.predicates`) and the transforms that work on
//! whole records or their headers: `Filter` (drops every record it is applied to, so it is
//! used with a predicate), `DropHeaders` and `InsertHeader`.

use bytes::Bytes;
use regex::Regex;

use super::routers::whole_match_regex;
use super::{Part, Predicate, Settings, Transformation};
use crate::record::Record;
use crate::ConnectError;

/// `Filter`: drops the record.
pub struct Filter;

/// Builds Filter (it has no settings).
pub fn build_filter(_s: &mut Settings, _part: Part) -> Option<Box<dyn Transformation>> {
    Some(Box::new(Filter))
}

impl Transformation for Filter {
    fn apply(&self, _record: Record) -> Result<Option<Record>, ConnectError> {
        Ok(None)
    }
}

/// `DropHeaders`: removes every header named in `headers`.
pub struct DropHeaders {
    names: Vec<String>,
}

/// Builds DropHeaders from its settings.
pub fn build_drop_headers(s: &mut Settings, _part: Part) -> Option<Box<dyn Transformation>> {
    Some(Box::new(DropHeaders {
        names: s.non_empty_list("headers")?,
    }))
}

impl Transformation for DropHeaders {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        record.headers.retain(|(k, _)| !self.names.contains(k));
        Ok(Some(record))
    }
}

/// `InsertHeader`: adds the header `header` with the text `value.literal` (its UTF-8
/// bytes, as Kafka's default SimpleHeaderConverter writes a literal).
pub struct InsertHeader {
    name: String,
    value: Bytes,
}

/// Builds InsertHeader from its settings.
pub fn build_insert_header(s: &mut Settings, _part: Part) -> Option<Box<dyn Transformation>> {
    let name = s.required_string("header");
    let value = s.required_string("value.literal");
    Some(Box::new(InsertHeader {
        name: name?,
        value: Bytes::from(value?.into_bytes()),
    }))
}

impl Transformation for InsertHeader {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        record
            .headers
            .push((self.name.clone(), Some(self.value.clone())));
        Ok(Some(record))
    }
}

/// `TopicNameMatches`: whether `pattern` (a regex) matches the whole topic.
pub struct TopicNameMatches {
    pattern: Regex,
}

/// Builds TopicNameMatches from its settings.
pub fn build_topic_name_matches(s: &mut Settings) -> Option<Box<dyn Predicate>> {
    let pattern = s.non_empty_string("pattern", true)?;
    match whole_match_regex(&pattern) {
        Ok(pattern) => Some(Box::new(TopicNameMatches { pattern })),
        Err(why) => {
            s.invalid("pattern", &pattern, &why);
            None
        }
    }
}

impl Predicate for TopicNameMatches {
    fn test(&self, record: &Record) -> bool {
        self.pattern.is_match(&record.topic)
    }
}

/// `HasHeaderKey`: whether the record has at least one header named `name`. As in
/// Kafka, `name` is optional, and without it no record matches.
pub struct HasHeaderKey {
    name: Option<String>,
}

/// Builds HasHeaderKey from its settings.
pub fn build_has_header_key(s: &mut Settings) -> Option<Box<dyn Predicate>> {
    let name = s.non_empty_string("name", false);
    if !s.errors().is_empty() {
        return None;
    }
    Some(Box::new(HasHeaderKey { name }))
}

impl Predicate for HasHeaderKey {
    fn test(&self, record: &Record) -> bool {
        self.name
            .as_ref()
            .is_some_and(|n| record.headers.iter().any(|(k, _)| k == n))
    }
}

/// `RecordIsTombstone`: whether the value is null.
pub struct RecordIsTombstone;

/// Builds RecordIsTombstone (it has no settings).
pub fn build_record_is_tombstone(_s: &mut Settings) -> Option<Box<dyn Predicate>> {
    Some(Box::new(RecordIsTombstone))
}

impl Predicate for RecordIsTombstone {
    fn test(&self, record: &Record) -> bool {
        record.is_tombstone()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{errors_of, one, props, run};
    use super::super::validate;
    use super::*;
    use crate::data::Value;

    fn predicate(class: &str, settings: &[(&str, &str)]) -> Box<dyn Predicate> {
        let mut p = props(&[("predicates.p.type", class)]);
        for (k, v) in settings {
            p.insert(format!("predicates.p.{k}"), v.to_string());
        }
        let mut s = Settings::new(&p, "predicates.p.".into());
        let built = match class {
            "TopicNameMatches" => build_topic_name_matches(&mut s),
            "HasHeaderKey" => build_has_header_key(&mut s),
            _ => build_record_is_tombstone(&mut s),
        };
        assert!(s.errors().is_empty(), "{:?}", s.errors());
        built.unwrap()
    }

    #[test]
    fn topic_name_matches_the_whole_topic() {
        let p = predicate("TopicNameMatches", &[("pattern", "orders|payments")]);
        assert!(p.test(&Record::new("orders")));
        assert!(!p.test(&Record::new("orders-dlq")));
        let e = validate(&props(&[
            ("predicates", "p"),
            ("predicates.p.type", "TopicNameMatches"),
            ("predicates.p.pattern", ""),
        ]));
        assert_eq!(
            e,
            vec![(
                "predicates.p.pattern".into(),
                "Invalid value  for configuration predicates.p.pattern: String must be non-empty"
                    .into()
            )]
        );
        let e = validate(&props(&[
            ("predicates", "p"),
            ("predicates.p.type", "TopicNameMatches"),
        ]));
        assert_eq!(
            e[0].1,
            "Missing required configuration \"predicates.p.pattern\" which has no default value."
        );
    }

    #[test]
    fn has_header_key_and_record_is_tombstone() {
        let p = predicate("HasHeaderKey", &[("name", "trace")]);
        let mut r = Record::new("t");
        assert!(!p.test(&r));
        r.headers
            .push(("trace".into(), Some(Bytes::from_static(b"1"))));
        assert!(p.test(&r));
        assert!(!predicate("HasHeaderKey", &[]).test(&r));

        let t = predicate("RecordIsTombstone", &[]);
        assert!(t.test(&Record::new("t")));
        assert!(!t.test(&Record::new("t").with_value(None, Value::Boolean(false))));
    }

    #[test]
    fn header_transforms() {
        let insert = one(
            "InsertHeader",
            &[("header", "source"), ("value.literal", "strom")],
        );
        let out = run(&insert, Record::new("t"));
        assert_eq!(
            out.headers,
            vec![("source".to_string(), Some(Bytes::from_static(b"strom")))]
        );
        let drop = one("DropHeaders", &[("headers", "source, other")]);
        let mut r = out;
        r.headers.push(("keep".into(), None));
        r.headers.push(("other".into(), None));
        assert_eq!(run(&drop, r).headers, vec![("keep".to_string(), None)]);
        assert_eq!(
            errors_of("InsertHeader", &[("header", "h")])[0].1,
            "Missing required configuration \"transforms.t.value.literal\" which has no default value."
        );
    }
}
