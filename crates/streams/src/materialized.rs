//! How grouped data is repartitioned ([`Grouped`]) and how stateful results are kept
//! ([`Materialized`]): Kafka's classes of the same names.

use std::sync::Arc;

use crate::serdes::Serde;
use crate::state::{StoreKind, StoreSpec};

/// The serdes (and optional name) of a grouping (Kafka's `Grouped`): the key and value
/// serdes write the repartition topic when one is needed, and the key serde writes the
/// aggregation's store keys. A name names the repartition topic `<name>-repartition`.
pub struct Grouped<K, V> {
    pub(crate) key: Arc<dyn Serde<K>>,
    pub(crate) value: Arc<dyn Serde<V>>,
    pub(crate) name: Option<String>,
}

impl<K, V> Clone for Grouped<K, V> {
    fn clone(&self) -> Self {
        Grouped {
            key: self.key.clone(),
            value: self.value.clone(),
            name: self.name.clone(),
        }
    }
}

impl<K, V> Grouped<K, V> {
    /// Groups with these serdes.
    pub fn with(key: impl Serde<K>, value: impl Serde<V>) -> Grouped<K, V> {
        Grouped {
            key: Arc::new(key),
            value: Arc::new(value),
            name: None,
        }
    }

    /// Names the grouping (and so its repartition topic, `<name>-repartition`).
    pub fn with_name(mut self, name: &str) -> Grouped<K, V> {
        self.name = Some(name.to_string());
        self
    }
}

/// How a stateful result is stored (Kafka's `Materialized`): the store's name (generated
/// when not given, and then not meant for queries), its serdes (defaults from the
/// operation where it has them), persistent on fjall or in memory, and whether a changelog
/// backs it.
pub struct Materialized<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key: Option<Arc<dyn Serde<K>>>,
    pub(crate) value: Option<Arc<dyn Serde<V>>>,
    pub(crate) persistent: bool,
    pub(crate) logged: bool,
    pub(crate) retention_ms: Option<i64>,
}

impl<K, V> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized {
            name: None,
            key: None,
            value: None,
            persistent: true,
            logged: true,
            retention_ms: None,
        }
    }
}

impl<K, V> Materialized<K, V> {
    /// A store named `name` (Kafka's `Materialized.as`), queryable under that name.
    pub fn named(name: &str) -> Materialized<K, V> {
        Materialized {
            name: Some(name.to_string()),
            ..Materialized::default()
        }
    }

    /// A store with a generated name and these serdes (Kafka's `Materialized.with`).
    pub fn with(key: impl Serde<K>, value: impl Serde<V>) -> Materialized<K, V> {
        Materialized {
            key: Some(Arc::new(key)),
            value: Some(Arc::new(value)),
            ..Materialized::default()
        }
    }

    /// Stores keys with `key`.
    pub fn with_key_serde(mut self, key: impl Serde<K>) -> Materialized<K, V> {
        self.key = Some(Arc::new(key));
        self
    }

    /// Stores values with `value`.
    pub fn with_value_serde(mut self, value: impl Serde<V>) -> Materialized<K, V> {
        self.value = Some(Arc::new(value));
        self
    }

    /// Keeps the store in memory (Kafka's `Stores.inMemoryKeyValueStore`): restored in
    /// full from the changelog whenever its task starts.
    pub fn in_memory(mut self) -> Materialized<K, V> {
        self.persistent = false;
        self
    }

    /// No changelog (Kafka's `withLoggingDisabled`): the state is not restored elsewhere.
    pub fn with_logging_disabled(mut self) -> Materialized<K, V> {
        self.logged = false;
        self
    }

    /// How long a windowed store keeps windows (Kafka's `withRetention`); at least the
    /// window size plus grace.
    pub fn with_retention(mut self, retention: std::time::Duration) -> Materialized<K, V> {
        self.retention_ms = Some(retention.as_millis().min(i64::MAX as u128) as i64);
        self
    }

    /// Whether this is `Materialized::default()` (nothing set), which stands for Kafka's
    /// operations without a `Materialized` argument.
    pub(crate) fn is_default(&self) -> bool {
        self.name.is_none()
            && self.key.is_none()
            && self.value.is_none()
            && self.persistent
            && self.logged
            && self.retention_ms.is_none()
    }

    /// The spec of the store under `name` holding `kind`.
    pub(crate) fn spec(&self, name: &str, kind: StoreKind) -> StoreSpec {
        StoreSpec {
            name: name.to_string(),
            kind,
            persistent: self.persistent,
            logged: self.logged,
        }
    }
}
