//! SCRAM credential changes (AlterUserScramCredentials): checked against the image, returned
//! as the records that make them. The asking broker has already turned passwords' salted
//! forms into stored keys and refused what needs no image to refuse (bad iterations,
//! duplicate users, unknown mechanisms).

use serde::{Deserialize, Serialize};

use super::ControllerError;
use crate::image::MetadataImage;
use crate::records::{MetadataRecord, ScramCredential, ScramMechanism};

/// The changes asked for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserChange {
    /// The user name.
    pub name: String,
    /// Credentials to set.
    pub upsert: Vec<(ScramMechanism, ScramCredential)>,
    /// Mechanisms whose credential is deleted.
    pub delete: Vec<ScramMechanism>,
}

/// The records of `changes`, and each user's outcome in order. A user's changes apply
/// together or not at all.
pub fn alter(
    image: &MetadataImage,
    changes: &[UserChange],
) -> (Vec<MetadataRecord>, Vec<Result<(), ControllerError>>) {
    let mut records = Vec::new();
    let outcomes =
        changes
            .iter()
            .map(|c| {
                if c.delete
                    .iter()
                    .any(|m| image.scram_credential(&c.name, *m).is_none())
                {
                    return Err(ControllerError::ResourceNotFound(
                        "attempt to delete a user credential that does not exist".into(),
                    ));
                }
                records.extend(c.delete.iter().map(|m| {
                    MetadataRecord::RemoveUserScramCredential {
                        name: c.name.clone(),
                        mechanism: *m,
                    }
                }));
                records.extend(c.upsert.iter().map(|(m, credential)| {
                    MetadataRecord::UserScramCredential {
                        name: c.name.clone(),
                        mechanism: *m,
                        credential: credential.clone(),
                    }
                }));
                Ok(())
            })
            .collect();
    (records, outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(iterations: u32) -> ScramCredential {
        ScramCredential {
            salt: vec![1; 16],
            stored_key: vec![2; 32],
            server_key: vec![3; 32],
            iterations,
        }
    }

    fn replay(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            let next = image.offset + 1;
            image.apply(next, r);
        }
    }

    #[test]
    fn upserts_replace_and_deletes_of_missing_credentials_fail_alone() {
        let mut image = MetadataImage::default();
        let alice = UserChange {
            name: "alice".into(),
            upsert: vec![(ScramMechanism::Sha256, credential(4096))],
            delete: vec![],
        };
        let (records, outcomes) = alter(&image, std::slice::from_ref(&alice));
        assert_eq!(outcomes, vec![Ok(())]);
        replay(&mut image, &records);
        assert_eq!(
            image.scram_credential("alice", ScramMechanism::Sha256),
            Some(&credential(4096))
        );

        // Replacing with new iterations, while bob's delete of what he lacks fails and
        // changes nothing of his.
        let again = UserChange {
            upsert: vec![(ScramMechanism::Sha256, credential(8192))],
            ..alice
        };
        let bob = UserChange {
            name: "bob".into(),
            upsert: vec![(ScramMechanism::Sha512, credential(4096))],
            delete: vec![ScramMechanism::Sha256],
        };
        let (records, outcomes) = alter(&image, &[again, bob]);
        assert!(outcomes[0].is_ok());
        assert!(matches!(
            outcomes[1],
            Err(ControllerError::ResourceNotFound(_))
        ));
        replay(&mut image, &records);
        assert_eq!(
            image
                .scram_credential("alice", ScramMechanism::Sha256)
                .map(|c| c.iterations),
            Some(8192)
        );
        assert!(!image.scram_credentials.contains_key("bob"));

        let delete = UserChange {
            name: "alice".into(),
            upsert: vec![],
            delete: vec![ScramMechanism::Sha256],
        };
        let (records, outcomes) = alter(&image, &[delete]);
        assert_eq!(outcomes, vec![Ok(())]);
        replay(&mut image, &records);
        assert!(
            image.scram_credentials.is_empty(),
            "a user with no credential is gone"
        );
    }

    #[test]
    fn records_round_trip_through_json() {
        let r = MetadataRecord::UserScramCredential {
            name: "alice".into(),
            mechanism: ScramMechanism::Sha512,
            credential: credential(4096),
        };
        assert_eq!(MetadataRecord::from_bytes(&r.to_bytes()).ok(), Some(r));
        let mut image = MetadataImage::default();
        image.apply(
            0,
            &MetadataRecord::UserScramCredential {
                name: "alice".into(),
                mechanism: ScramMechanism::Sha512,
                credential: credential(4096),
            },
        );
        let json = serde_json::to_string(&image).unwrap_or_default();
        let back: MetadataImage = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, image, "an image snapshot keeps the credentials");
    }
}
