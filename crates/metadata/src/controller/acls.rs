//! ACL changes (CreateAcls, DeleteAcls) as the records that make them. The asking broker
//! has already refused bindings and filters that need no image to refuse.

use super::ControllerError;
use crate::image::MetadataImage;
use crate::records::MetadataRecord;
use strom_types::acl::{AclBinding, AclFilter};

/// The records that create `acls`, and each one's outcome. An ACL that exists already is
/// not created twice (Kafka answers success for it too).
pub fn create(
    image: &MetadataImage,
    acls: &[AclBinding],
) -> (Vec<MetadataRecord>, Vec<Result<(), ControllerError>>) {
    let mut records: Vec<MetadataRecord> = Vec::new();
    let mut fresh: Vec<&AclBinding> = Vec::new();
    let outcomes = acls
        .iter()
        .map(|acl| {
            acl.validate().map_err(ControllerError::InvalidRequest)?;
            if !image.acls.values().any(|a| a == acl) && !fresh.contains(&acl) {
                fresh.push(acl);
                records.push(MetadataRecord::AccessControlEntry {
                    id: uuid::Uuid::new_v4(),
                    acl: acl.clone(),
                });
            }
            Ok(())
        })
        .collect();
    (records, outcomes)
}

/// The records that delete what `filters` select, and per filter the ACLs it deleted. An
/// ACL two filters select is deleted once, and reported by the first.
pub fn delete(
    image: &MetadataImage,
    filters: &[AclFilter],
) -> (
    Vec<MetadataRecord>,
    Vec<Result<Vec<AclBinding>, ControllerError>>,
) {
    let mut gone = std::collections::BTreeSet::new();
    let mut records = Vec::new();
    let outcomes = filters
        .iter()
        .map(|filter| {
            filter.validate().map_err(ControllerError::InvalidRequest)?;
            let mut deleted = Vec::new();
            for (id, acl) in &image.acls {
                if filter.matches(acl) && gone.insert(*id) {
                    records.push(MetadataRecord::RemoveAccessControlEntry { id: *id });
                    deleted.push(acl.clone());
                }
            }
            Ok(deleted)
        })
        .collect();
    (records, outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_types::acl::{AclOperation, AclPermission, PatternType, ResourceType};

    fn acl(principal: &str, op: AclOperation) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            name: "orders".into(),
            pattern: PatternType::Literal,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: AclPermission::Allow,
        }
    }

    fn replay(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            let next = image.offset + 1;
            image.offset = next;
            image.apply(next, r);
        }
    }

    #[test]
    fn creates_once_and_deletes_what_filters_select() {
        let mut image = MetadataImage::default();
        let alice = acl("User:alice", AclOperation::Write);
        let bob = acl("User:bob", AclOperation::Read);
        let mut invalid = alice.clone();
        invalid.principal = "alice".into();
        let (records, outcomes) = create(&image, &[alice.clone(), alice.clone(), invalid]);
        assert!(outcomes[0].is_ok() && outcomes[1].is_ok());
        assert!(matches!(
            outcomes[2],
            Err(ControllerError::InvalidRequest(_))
        ));
        assert_eq!(
            records.len(),
            1,
            "a duplicate in one request is created once"
        );
        replay(&mut image, &records);
        let (records, _) = create(&image, &[alice.clone(), bob.clone()]);
        assert_eq!(records.len(), 1, "an existing ACL is not created again");
        replay(&mut image, &records);
        assert_eq!(image.acls.len(), 2);
        let changed_at = image.acls_offset;

        let by_alice = AclFilter {
            principal: Some("User:alice".into()),
            ..AclFilter::any()
        };
        let (records, outcomes) = delete(&image, &[by_alice, AclFilter::any()]);
        let deleted: Vec<_> = outcomes
            .into_iter()
            .map(|o| o.unwrap_or_default())
            .collect();
        assert_eq!(deleted, vec![vec![alice], vec![bob]]);
        replay(&mut image, &records);
        assert!(image.acls.is_empty());
        assert!(image.acls_offset > changed_at);
    }
}
