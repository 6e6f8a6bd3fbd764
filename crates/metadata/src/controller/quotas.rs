//! Client quota changes (AlterClientQuotas) as the records that make them. The asking
//! broker has already checked entities, keys and values.

use serde::{Deserialize, Serialize};

use super::ControllerError;
use crate::image::MetadataImage;
use crate::records::{MetadataRecord, QuotaEntity, QuotaValue};

/// The changes asked for one entity: each key set to a value, or removed (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaChange {
    /// Who.
    pub entity: QuotaEntity,
    /// Key and new value.
    pub ops: Vec<(String, Option<QuotaValue>)>,
}

/// The records of `changes` (a removal of a key the entity lacks writes nothing), and each
/// entity's outcome.
pub fn alter(
    image: &MetadataImage,
    changes: &[QuotaChange],
) -> (Vec<MetadataRecord>, Vec<Result<(), ControllerError>>) {
    let mut records = Vec::new();
    let outcomes = changes
        .iter()
        .map(|c| {
            let current = image.client_quotas.get(&c.entity);
            for (key, value) in &c.ops {
                let now = current.and_then(|q| q.get(key));
                if now != value.as_ref() {
                    records.push(MetadataRecord::ClientQuota {
                        entity: c.entity.clone(),
                        key: key.clone(),
                        value: *value,
                    });
                }
            }
            Ok(())
        })
        .collect();
    (records, outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_types::quota::{EntityName, PRODUCER_BYTE_RATE};

    #[test]
    fn set_replace_remove_and_snapshot() {
        let alice = QuotaEntity {
            user: Some(EntityName::Named("alice".into())),
            client_id: None,
        };
        let mut image = MetadataImage::default();
        let set = |v: Option<f64>| QuotaChange {
            entity: alice.clone(),
            ops: vec![(PRODUCER_BYTE_RATE.into(), v.map(QuotaValue))],
        };
        for (change, want) in [
            (set(Some(1024.0)), Some(1024.0)),
            (set(Some(2048.0)), Some(2048.0)),
            (set(None), None),
        ] {
            let (records, outcomes) = alter(&image, &[change]);
            assert_eq!(outcomes, vec![Ok(())]);
            for r in &records {
                let next = image.offset + 1;
                image.apply(next, r);
            }
            let got = image
                .client_quotas
                .get(&alice)
                .and_then(|q| q.get(PRODUCER_BYTE_RATE))
                .map(|v| v.0);
            assert_eq!(got, want);
            let json = serde_json::to_string(&image).unwrap_or_default();
            let back: MetadataImage = serde_json::from_str(&json).unwrap_or_default();
            assert_eq!(back, image, "a snapshot keeps the quotas");
        }
        let (records, _) = alter(&image, &[set(None)]);
        assert!(
            records.is_empty(),
            "removing what is not set writes nothing"
        );
    }
}
