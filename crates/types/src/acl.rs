//! Kafka's access control lists: what an ACL binds (a resource pattern and an entry), the
//! filters CreateAcls/DescribeAcls/DeleteAcls carry, and the wire codes and names of every
//! enum, so broker, controller, client and CLI share one vocabulary.
//!
//! An ACL allows or denies one principal, from one host, one operation on the resources a
//! pattern names: a LITERAL name (or `*`, every resource of the type) or a PREFIXED one.

use serde::{Deserialize, Serialize};

/// Defines a Kafka enum with its wire codes and names (as Kafka's `toString` spells them).
macro_rules! kafka_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal, $text:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire code.
            pub fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code,)+
                }
            }

            /// The value with wire code `code`.
            pub fn from_code(code: i8) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.code() == code)
            }

            /// Kafka's name (`TRANSACTIONAL_ID`).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value named `name`, ignoring case and `-`/`_` (`transactional-id`).
            pub fn from_name(name: &str) -> Option<$name> {
                let wanted = name.replace('-', "_");
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name().eq_ignore_ascii_case(&wanted))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

kafka_enum!(
    /// What kind of resource an ACL protects (Kafka's ResourceType).
    ResourceType {
        /// A filter value: any type.
        Any = 1, "ANY";
        /// A topic.
        Topic = 2, "TOPIC";
        /// A consumer group.
        Group = 3, "GROUP";
        /// The cluster (its name is always `kafka-cluster`).
        Cluster = 4, "CLUSTER";
        /// A transactional id.
        TransactionalId = 5, "TRANSACTIONAL_ID";
        /// A delegation token.
        DelegationToken = 6, "DELEGATION_TOKEN";
        /// A user (quotas and delegation tokens on behalf of others).
        User = 7, "USER";
    }
);

kafka_enum!(
    /// How a pattern's name matches resource names (Kafka's PatternType).
    PatternType {
        /// A filter value: any pattern type, name compared as written.
        Any = 1, "ANY";
        /// A filter value: every pattern that would apply to the named resource.
        Match = 2, "MATCH";
        /// The name itself, or `*` for every resource of the type.
        Literal = 3, "LITERAL";
        /// Every resource whose name starts with the pattern's name.
        Prefixed = 4, "PREFIXED";
    }
);

kafka_enum!(
    /// What an ACL allows or denies (Kafka's AclOperation).
    AclOperation {
        /// A filter value: any operation.
        Any = 1, "ANY";
        /// Every operation.
        All = 2, "ALL";
        /// Read.
        Read = 3, "READ";
        /// Write.
        Write = 4, "WRITE";
        /// Create.
        Create = 5, "CREATE";
        /// Delete.
        Delete = 6, "DELETE";
        /// Alter.
        Alter = 7, "ALTER";
        /// Describe.
        Describe = 8, "DESCRIBE";
        /// A broker's own requests (replication, markers).
        ClusterAction = 9, "CLUSTER_ACTION";
        /// Describe configs.
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        /// Alter configs.
        AlterConfigs = 11, "ALTER_CONFIGS";
        /// Idempotent produce.
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        /// Create delegation tokens.
        CreateTokens = 13, "CREATE_TOKENS";
        /// Describe delegation tokens.
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

kafka_enum!(
    /// Whether an ACL allows or denies (Kafka's AclPermissionType).
    AclPermission {
        /// A filter value: either.
        Any = 1, "ANY";
        /// Deny: wins over any allow.
        Deny = 2, "DENY";
        /// Allow.
        Allow = 3, "ALLOW";
    }
);

/// The name the CLUSTER resource always has.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The literal name (and principal name, and host) that stands for every one.
pub const WILDCARD: &str = "*";

impl ResourceType {
    /// The operations Kafka defines on the type (ALL aside), as authorized-operations
    /// fields report them.
    pub fn operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Delete, Describe, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                Alter,
                Describe,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
            ],
            ResourceType::TransactionalId => &[Write, Describe],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Any => &[],
        }
    }
}

impl AclOperation {
    /// The operations an ALLOW of `self` also allows: Kafka lets READ, WRITE, DELETE and
    /// ALTER imply DESCRIBE, and ALTER_CONFIGS imply DESCRIBE_CONFIGS.
    pub fn allowed_by(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            Describe => &[Describe, Read, Write, Delete, Alter, All],
            DescribeConfigs => &[DescribeConfigs, AlterConfigs, All],
            Read => &[Read, All],
            Write => &[Write, All],
            Create => &[Create, All],
            Delete => &[Delete, All],
            Alter => &[Alter, All],
            ClusterAction => &[ClusterAction, All],
            AlterConfigs => &[AlterConfigs, All],
            IdempotentWrite => &[IdempotentWrite, All],
            CreateTokens => &[CreateTokens, All],
            DescribeTokens => &[DescribeTokens, All],
            All => &[All],
            Any => &[],
        }
    }
}

/// One ACL: on the resources `resource_type`/`name`/`pattern` name, `principal` from `host`
/// is allowed or denied `operation`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// The resource type.
    pub resource_type: ResourceType,
    /// The resource name or prefix (`*` with LITERAL: every resource of the type).
    pub name: String,
    /// LITERAL or PREFIXED.
    pub pattern: PatternType,
    /// `User:alice`, or `User:*` for every principal.
    pub principal: String,
    /// The client's IP address, or `*`.
    pub host: String,
    /// The operation.
    pub operation: AclOperation,
    /// Allow or deny.
    pub permission: AclPermission,
}

impl AclBinding {
    /// Why this binding cannot be stored, if it cannot (Kafka refuses such a creation with
    /// INVALID_REQUEST).
    pub fn validate(&self) -> Result<(), String> {
        if matches!(self.resource_type, ResourceType::Any) {
            return Err("the resource type of an ACL cannot be ANY".into());
        }
        if !matches!(self.pattern, PatternType::Literal | PatternType::Prefixed) {
            return Err(format!(
                "the pattern type of an ACL must be LITERAL or PREFIXED, not {}",
                self.pattern
            ));
        }
        if matches!(self.operation, AclOperation::Any) {
            return Err("the operation of an ACL cannot be ANY".into());
        }
        if matches!(self.permission, AclPermission::Any) {
            return Err("the permission type of an ACL cannot be ANY".into());
        }
        if self.name.is_empty() {
            return Err("the resource name of an ACL cannot be empty".into());
        }
        if self.pattern == PatternType::Prefixed && self.name == WILDCARD {
            return Err("a PREFIXED pattern cannot be the wildcard".into());
        }
        if self.resource_type == ResourceType::Cluster && self.name != CLUSTER_NAME {
            return Err(format!("the CLUSTER resource is named {CLUSTER_NAME}"));
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return Err(format!("could not parse principal '{}'", self.principal)),
        }
        if self.host.is_empty() {
            return Err("the host of an ACL cannot be empty".into());
        }
        Ok(())
    }
}

/// What DescribeAcls and DeleteAcls select: `None` and the ANY values match everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    /// The resource type, or ANY.
    pub resource_type: ResourceType,
    /// The resource name, or any.
    pub name: Option<String>,
    /// A pattern type, ANY (the name as written), or MATCH (every pattern that applies to
    /// the name).
    pub pattern: PatternType,
    /// The principal, or any.
    pub principal: Option<String>,
    /// The host, or any.
    pub host: Option<String>,
    /// The operation, or ANY.
    pub operation: AclOperation,
    /// The permission, or ANY.
    pub permission: AclPermission,
}

impl AclFilter {
    /// The filter that matches every ACL.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Any,
            name: None,
            pattern: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        }
    }

    /// Whether `acl` is selected.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        self.matches_pattern(acl)
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == AclOperation::Any || self.operation == acl.operation)
            && (self.permission == AclPermission::Any || self.permission == acl.permission)
    }

    fn matches_pattern(&self, acl: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != acl.resource_type {
            return false;
        }
        let Some(name) = &self.name else {
            return matches!(self.pattern, PatternType::Any | PatternType::Match)
                || self.pattern == acl.pattern;
        };
        match self.pattern {
            PatternType::Any => *name == acl.name,
            PatternType::Match => match acl.pattern {
                PatternType::Literal => *name == acl.name || acl.name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&acl.name),
                _ => false,
            },
            exact => exact == acl.pattern && *name == acl.name,
        }
    }

    /// Why this filter cannot select anything meaningful, if so (Kafka answers
    /// INVALID_REQUEST for a filter with an unknown value).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = &self.principal {
            if !p.contains(':') {
                return Err(format!("could not parse principal '{p}'"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(name: &str, pattern: PatternType) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            name: name.into(),
            pattern,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Write,
            permission: AclPermission::Allow,
        }
    }

    #[test]
    fn codes_and_names_are_kafkas() {
        assert_eq!(ResourceType::TransactionalId.code(), 5);
        assert_eq!(
            ResourceType::from_name("transactional-id"),
            Some(ResourceType::TransactionalId)
        );
        assert_eq!(PatternType::from_code(4), Some(PatternType::Prefixed));
        assert_eq!(AclOperation::IdempotentWrite.code(), 12);
        assert_eq!(
            AclOperation::from_name("describe_configs"),
            Some(AclOperation::DescribeConfigs)
        );
        assert_eq!(AclPermission::from_code(2), Some(AclPermission::Deny));
        assert_eq!(
            AclPermission::from_code(0),
            None,
            "UNKNOWN is never accepted"
        );
    }

    #[test]
    fn match_filters_select_every_pattern_that_applies() {
        let literal = acl("orders", PatternType::Literal);
        let wildcard = acl("*", PatternType::Literal);
        let prefix = acl("ord", PatternType::Prefixed);
        let other = acl("payments", PatternType::Literal);
        let filter = AclFilter {
            resource_type: ResourceType::Topic,
            name: Some("orders".into()),
            pattern: PatternType::Match,
            ..AclFilter::any()
        };
        let hits: Vec<_> = [&literal, &wildcard, &prefix, &other]
            .into_iter()
            .filter(|a| filter.matches(a))
            .collect();
        assert_eq!(hits, vec![&literal, &wildcard, &prefix]);

        // ANY compares the name as written; LITERAL also wants the pattern type.
        let any = AclFilter {
            pattern: PatternType::Any,
            ..filter.clone()
        };
        assert!(any.matches(&literal) && !any.matches(&wildcard) && !any.matches(&prefix));
        let prefixed = AclFilter {
            name: Some("ord".into()),
            pattern: PatternType::Prefixed,
            ..filter
        };
        assert!(prefixed.matches(&prefix) && !prefixed.matches(&literal));
        assert!(AclFilter::any().matches(&other));
    }

    #[test]
    fn entry_fields_filter_exactly() {
        let a = acl("orders", PatternType::Literal);
        let by_principal = AclFilter {
            principal: Some("User:bob".into()),
            ..AclFilter::any()
        };
        assert!(!by_principal.matches(&a));
        let by_op = AclFilter {
            operation: AclOperation::Write,
            permission: AclPermission::Allow,
            ..AclFilter::any()
        };
        assert!(by_op.matches(&a));
    }

    #[test]
    fn invalid_bindings_are_refused() {
        assert!(acl("orders", PatternType::Literal).validate().is_ok());
        assert!(acl("*", PatternType::Prefixed).validate().is_err());
        assert!(acl("orders", PatternType::Match).validate().is_err());
        let mut bad = acl("orders", PatternType::Literal);
        bad.principal = "alice".into();
        assert!(bad.validate().is_err());
        let mut cluster = acl("other", PatternType::Literal);
        cluster.resource_type = ResourceType::Cluster;
        assert!(cluster.validate().is_err());
    }

    #[test]
    fn write_implies_describe_but_deny_needs_the_operation() {
        assert!(AclOperation::Describe
            .allowed_by()
            .contains(&AclOperation::Write));
        assert!(!AclOperation::Write
            .allowed_by()
            .contains(&AclOperation::Describe));
        assert!(AclOperation::DescribeConfigs
            .allowed_by()
            .contains(&AclOperation::AlterConfigs));
    }
}
