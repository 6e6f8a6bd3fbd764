//! The authorizer: what each principal may do, from Kafka's ACLs in the metadata log, with
//! the semantics of Kafka's StandardAuthorizer (`authorizer.class.name`).
//!
//! With no authorizer configured every request is allowed, as in Kafka. With one, super
//! users (`super.users`) may do everything, and everyone else what the ACLs allow; a
//! resource no ACL names is allowed only with `allow.everyone.if.no.acl.found=true`.
//! [`Authorizer::access`] gives each request an [`Access`]: the principal, the host, and
//! the ACL index of the current image (rebuilt only when the image's ACLs change). The
//! handlers ask it per resource, following Kafka's per-API table, and fill KIP-430's
//! authorized-operations fields from it.

pub mod index;

use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use strom_metadata::MetadataImage;
use strom_types::acl::{AclOperation, ResourceType, CLUSTER_NAME};

use crate::auth::Principal;
use index::{AclIndex, Decision};

/// The `authorizer.class.name` values that turn the authorizer on: Kafka's KRaft and ZooKeeper
/// authorizers (their ACL semantics are the same) and Strom's own name.
pub const AUTHORIZER_NAMES: &[&str] = &[
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
    "strom.StandardAuthorizer",
];

/// The authorizer's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `super.users` (`User:admin;User:broker`): principals every check allows.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found` (false).
    pub allow_everyone_if_no_acl_found: bool,
}

/// The broker's authorizer, or none.
#[derive(Debug, Default)]
pub struct Authorizer {
    config: Option<AuthorizerConfig>,
    /// The index of the image's ACLs as of `MetadataImage::acls_offset`.
    cache: Mutex<Option<(i64, Arc<AclIndex>)>>,
}

impl Authorizer {
    /// An authorizer with `config`; `None` allows everything.
    pub fn new(config: Option<AuthorizerConfig>) -> Authorizer {
        Authorizer {
            config,
            cache: Mutex::new(None),
        }
    }

    /// Whether ACLs are enforced.
    pub fn enabled(&self) -> bool {
        self.config.is_some()
    }

    /// The index of `image`'s ACLs.
    pub fn index(&self, image: &MetadataImage) -> Arc<AclIndex> {
        let mut cache = self.cache.lock();
        match &*cache {
            Some((offset, index)) if *offset == image.acls_offset => index.clone(),
            _ => {
                let index = Arc::new(AclIndex::new(image.acls.values()));
                *cache = Some((image.acls_offset, index.clone()));
                index
            }
        }
    }

    /// What `principal`, connected from `host`, may do as of `image`.
    pub fn access(&self, principal: &Principal, host: IpAddr, image: &MetadataImage) -> Access {
        let Some(config) = &self.config else {
            return Access::open();
        };
        let principal = principal.to_string();
        let rules = if config.super_users.contains(&principal) {
            Rules::Everything
        } else {
            Rules::Acls {
                index: self.index(image),
                allow_if_no_acl: config.allow_everyone_if_no_acl_found,
            }
        };
        Access {
            principal,
            host: host.to_string(),
            rules,
        }
    }
}

#[derive(Debug, Clone)]
enum Rules {
    /// No authorizer, or a super user.
    Everything,
    /// The ACLs decide.
    Acls {
        index: Arc<AclIndex>,
        allow_if_no_acl: bool,
    },
}

/// What one request's principal may do.
#[derive(Debug, Clone)]
pub struct Access {
    principal: String,
    host: String,
    rules: Rules,
}

impl Access {
    /// Everything allowed (no authorizer; also the broker's own internal calls).
    pub fn open() -> Access {
        Access {
            principal: String::new(),
            host: String::new(),
            rules: Rules::Everything,
        }
    }

    /// May it do `operation` on the resource `resource_type`/`name`?
    pub fn allows(&self, operation: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        let allowed = match &self.rules {
            Rules::Everything => return true,
            Rules::Acls {
                index,
                allow_if_no_acl,
            } => match index.decide(&self.principal, &self.host, operation, resource_type, name) {
                Decision::Allow => true,
                Decision::Deny => false,
                Decision::NoAcl => *allow_if_no_acl,
            },
        };
        if !allowed {
            tracing::debug!(
                principal = %self.principal, host = %self.host, %operation,
                resource = %resource_type, name, "denied"
            );
        }
        allowed
    }

    /// May it do `operation` on the cluster?
    pub fn allows_cluster(&self, operation: AclOperation) -> bool {
        self.allows(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// May it do `operation` on at least one resource of the type (Kafka's
    /// authorizeByResourceType)?
    pub fn allows_on_some(&self, operation: AclOperation, resource_type: ResourceType) -> bool {
        match &self.rules {
            Rules::Everything => true,
            Rules::Acls {
                index,
                allow_if_no_acl,
            } => {
                (*allow_if_no_acl && !index.has_type(resource_type))
                    || index.allows_on_some(&self.principal, &self.host, operation, resource_type)
            }
        }
    }

    /// May it produce idempotently: IDEMPOTENT_WRITE on the cluster, or WRITE on some topic
    /// (KIP-679)?
    pub fn allows_idempotent_write(&self) -> bool {
        self.allows_cluster(AclOperation::IdempotentWrite)
            || self.allows_on_some(AclOperation::Write, ResourceType::Topic)
    }

    /// KIP-430's authorized-operations bit field for a resource: bit n set when operation
    /// code n is allowed.
    pub fn operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        resource_type
            .operations()
            .iter()
            .filter(|op| self.allows(**op, resource_type, name))
            .fold(0i32, |bits, op| bits | (1 << op.code()))
    }
}

/// The value an authorized-operations field carries when the client did not ask (Kafka's
/// INT32_MIN).
pub const NOT_REQUESTED: i32 = i32::MIN;

#[cfg(test)]
mod tests {
    use super::*;
    use strom_metadata::records::MetadataRecord;
    use strom_types::acl::{AclBinding, AclPermission, PatternType};

    #[test]
    fn open_bit_fields_match_kafkas_operation_codes() {
        let open = Access::open();
        // READ(3) WRITE(4) CREATE(5) DELETE(6) ALTER(7) DESCRIBE(8) DESCRIBE_CONFIGS(10)
        // ALTER_CONFIGS(11).
        assert_eq!(open.operations(ResourceType::Topic, "t"), 0b1101_1111_1000);
        // READ DELETE DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS.
        assert_eq!(open.operations(ResourceType::Group, "g"), 0b1101_0100_1000);
        // CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE_CONFIGS ALTER_CONFIGS IDEMPOTENT_WRITE
        // (Kafka's operations of the cluster; the token ones belong to USER).
        assert_eq!(
            open.operations(ResourceType::Cluster, CLUSTER_NAME),
            0b1_1111_1010_0000
        );
    }

    fn image_with(acls: &[AclBinding]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (i, acl) in acls.iter().enumerate() {
            image.apply(
                i as i64,
                &MetadataRecord::AccessControlEntry {
                    id: uuid::Uuid::from_u128(i as u128),
                    acl: acl.clone(),
                },
            );
        }
        image
    }

    #[test]
    fn default_deny_super_users_and_the_cached_index() {
        let host: IpAddr = [127, 0, 0, 1].into();
        let authorizer = Authorizer::new(Some(AuthorizerConfig {
            super_users: vec!["User:admin".into()],
            allow_everyone_if_no_acl_found: false,
        }));
        let mut image = MetadataImage::default();
        let alice = authorizer.access(&Principal::user("alice"), host, &image);
        assert!(!alice.allows(AclOperation::Read, ResourceType::Topic, "t"));
        assert!(!alice.allows_idempotent_write());
        let admin = authorizer.access(&Principal::user("admin"), host, &image);
        assert!(admin.allows_cluster(AclOperation::Alter));

        image = image_with(&[AclBinding {
            resource_type: ResourceType::Topic,
            name: "t".into(),
            pattern: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Write,
            permission: AclPermission::Allow,
        }]);
        let alice = authorizer.access(&Principal::user("alice"), host, &image);
        assert!(alice.allows(AclOperation::Write, ResourceType::Topic, "t"));
        assert!(
            alice.allows_idempotent_write(),
            "WRITE on a topic is enough (KIP-679)"
        );
        assert_eq!(
            alice.operations(ResourceType::Topic, "t"),
            (1 << 4) | (1 << 8),
            "WRITE, and the DESCRIBE it implies"
        );
        assert!(Arc::ptr_eq(
            &authorizer.index(&image),
            &authorizer.index(&image)
        ));

        let lenient = Authorizer::new(Some(AuthorizerConfig {
            super_users: vec![],
            allow_everyone_if_no_acl_found: true,
        }));
        let bob = lenient.access(&Principal::user("bob"), host, &image);
        assert!(
            bob.allows(AclOperation::Read, ResourceType::Group, "g"),
            "no ACL names g"
        );
        assert!(
            !bob.allows(AclOperation::Read, ResourceType::Topic, "t"),
            "an ACL names t"
        );
    }
}
