//! Client quotas (Kafka's ClientQuotaEntity and quota keys): who a quota applies to and
//! what it limits.

use serde::{Deserialize, Serialize};

/// The entity types a client quota names.
pub const USER: &str = "user";
/// The client id entity type.
pub const CLIENT_ID: &str = "client-id";

/// The quota keys Kafka defines for users and client ids, and what each limits.
pub const KEYS: &[&str] = &[
    PRODUCER_BYTE_RATE,
    CONSUMER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    CONTROLLER_MUTATION_RATE,
];
/// Bytes per second a producer may send.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
/// Bytes per second a consumer may fetch.
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// Percent of one request-handling thread's time (100 is one thread).
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
/// Partitions per second created or deleted (KIP-599).
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";

/// One part of a quota entity: a name, or the default for every name without its own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityName {
    /// Every name that has no quota of its own (`<default>`).
    Default,
    /// This name.
    Named(String),
}

impl EntityName {
    /// The wire form: `None` is the default.
    pub fn from_wire(name: Option<&str>) -> EntityName {
        match name {
            None => EntityName::Default,
            Some(n) => EntityName::Named(n.to_string()),
        }
    }

    /// The wire form.
    pub fn to_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(n) => Some(n),
        }
    }
}

impl std::fmt::Display for EntityName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntityName::Default => f.write_str("<default>"),
            EntityName::Named(n) => f.write_str(n),
        }
    }
}

/// Who a quota applies to: a user, a client id, or a user's client id; each part a name or
/// the default.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    /// The user part.
    pub user: Option<EntityName>,
    /// The client id part.
    pub client_id: Option<EntityName>,
}

impl QuotaEntity {
    /// The entity of wire `(type, name)` pairs, or why it is not one Strom has: only
    /// `user` and `client-id`, each at most once, and at least one.
    pub fn from_parts<'a>(
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<QuotaEntity, String> {
        let mut entity = QuotaEntity {
            user: None,
            client_id: None,
        };
        for (kind, name) in parts {
            let slot = match kind {
                USER => &mut entity.user,
                CLIENT_ID => &mut entity.client_id,
                other => return Err(format!("unknown quota entity type '{other}'")),
            };
            if slot.is_some() {
                return Err(format!("entity type '{kind}' is given twice"));
            }
            *slot = Some(EntityName::from_wire(name));
        }
        if entity.user.is_none() && entity.client_id.is_none() {
            return Err("a quota entity names a user, a client id, or both".into());
        }
        Ok(entity)
    }

    /// The wire `(type, name)` pairs.
    pub fn parts(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut out = Vec::new();
        if let Some(u) = &self.user {
            out.push((USER, u.to_wire()));
        }
        if let Some(c) = &self.client_id {
            out.push((CLIENT_ID, c.to_wire()));
        }
        out
    }
}

impl std::fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .parts()
            .into_iter()
            .map(|(k, n)| format!("{k}={}", n.unwrap_or("<default>")))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A quota's value. Kafka's are doubles; this wrapper compares them by bits so images that
/// hold them stay `Eq`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// Why `value` is not a valid setting of `key`, if it is not (Kafka's checks: a known key,
/// a positive value, a whole number for the byte rates).
pub fn validate(key: &str, value: f64) -> Result<(), String> {
    if !KEYS.contains(&key) {
        return Err(format!("'{key}' is not a quota key of users or client ids"));
    }
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("{key} must be positive, not {value}"));
    }
    if matches!(key, PRODUCER_BYTE_RATE | CONSUMER_BYTE_RATE) && value.fract() != 0.0 {
        return Err(format!(
            "{key} must be a whole number of bytes, not {value}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_from_wire_parts() {
        let e = QuotaEntity::from_parts([(USER, Some("alice")), (CLIENT_ID, None)]);
        assert_eq!(
            e,
            Ok(QuotaEntity {
                user: Some(EntityName::Named("alice".into())),
                client_id: Some(EntityName::Default),
            })
        );
        assert_eq!(
            e.map(|e| e.to_string()),
            Ok("user=alice,client-id=<default>".into())
        );
        assert!(QuotaEntity::from_parts([("ip", Some("1.2.3.4"))]).is_err());
        assert!(QuotaEntity::from_parts([(USER, None), (USER, None)]).is_err());
        assert!(QuotaEntity::from_parts([]).is_err());
    }

    #[test]
    fn values_are_checked() {
        assert!(validate(PRODUCER_BYTE_RATE, 1_048_576.0).is_ok());
        assert!(validate(PRODUCER_BYTE_RATE, 1.5).is_err());
        assert!(validate(REQUEST_PERCENTAGE, 12.5).is_ok());
        assert!(validate(CONSUMER_BYTE_RATE, 0.0).is_err());
        assert!(validate("connection_creation_rate", 10.0).is_err());
    }
}
