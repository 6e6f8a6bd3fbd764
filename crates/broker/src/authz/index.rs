//! The ACLs of one metadata image, indexed for the authorizer's question: may this principal,
//! from this host, do this operation on this resource?
//!
//! LITERAL patterns are found by one hash lookup of the name (and one of `*`); PREFIXED ones
//! by one lookup per distinct prefix length of the type, so a check costs a handful of hash
//! lookups however many ACLs there are. The decision is Kafka's StandardAuthorizer's: a
//! matching DENY wins, then a matching ALLOW (of the operation, ALL, or one that implies
//! it), else deny; a resource no ACL names at all falls to `allow.everyone.if.no.acl.found`.

use std::collections::{BTreeSet, HashMap};

use strom_types::acl::{
    AclBinding, AclOperation, AclPermission, PatternType, ResourceType, WILDCARD,
};

/// An ACL's entry: who, from where, what, allowed or denied.
#[derive(Debug, Clone)]
struct Entry {
    principal: String,
    host: String,
    operation: AclOperation,
    permission: AclPermission,
}

/// What [`AclIndex::decide`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An ACL allows it.
    Allow,
    /// An ACL denies it, or ACLs name the resource and none allows it.
    Deny,
    /// No ACL names the resource: `allow.everyone.if.no.acl.found` decides.
    NoAcl,
}

/// The ACLs of one image.
#[derive(Debug, Default)]
pub struct AclIndex {
    literal: HashMap<ResourceType, HashMap<String, Vec<Entry>>>,
    prefixed: HashMap<ResourceType, HashMap<String, Vec<Entry>>>,
    /// The distinct prefix lengths (bytes) of each type's PREFIXED patterns.
    prefix_lengths: HashMap<ResourceType, Vec<usize>>,
    /// Each type's ALLOW entries, for "may it do this to any resource of the type".
    allows_by_type: HashMap<ResourceType, Vec<Entry>>,
    len: usize,
}

impl AclIndex {
    /// Indexes `acls`.
    pub fn new<'a>(acls: impl IntoIterator<Item = &'a AclBinding>) -> AclIndex {
        let mut index = AclIndex::default();
        let mut lengths: HashMap<ResourceType, BTreeSet<usize>> = HashMap::new();
        for acl in acls {
            let entry = Entry {
                principal: acl.principal.clone(),
                host: acl.host.clone(),
                operation: acl.operation,
                permission: acl.permission,
            };
            if acl.permission == AclPermission::Allow {
                index
                    .allows_by_type
                    .entry(acl.resource_type)
                    .or_default()
                    .push(entry.clone());
            }
            let by_name = match acl.pattern {
                PatternType::Prefixed => {
                    lengths
                        .entry(acl.resource_type)
                        .or_default()
                        .insert(acl.name.len());
                    &mut index.prefixed
                }
                _ => &mut index.literal,
            };
            by_name
                .entry(acl.resource_type)
                .or_default()
                .entry(acl.name.clone())
                .or_default()
                .push(entry);
            index.len += 1;
        }
        index.prefix_lengths = lengths
            .into_iter()
            .map(|(t, l)| (t, l.into_iter().collect()))
            .collect();
        index
    }

    /// How many ACLs it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries of every pattern that applies to `name`.
    fn entries<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        let literal = self.literal.get(&resource_type);
        let prefixed = self.prefixed.get(&resource_type);
        let literal = [name, WILDCARD]
            .into_iter()
            .filter_map(move |n| literal?.get(n));
        let prefixed = self
            .prefix_lengths
            .get(&resource_type)
            .into_iter()
            .flatten()
            .filter(move |l| **l <= name.len() && name.is_char_boundary(**l))
            .filter_map(move |l| prefixed?.get(&name[..*l]));
        literal.chain(prefixed).flatten()
    }

    /// May `principal` from `host` do `operation` on the resource?
    pub fn decide(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> Decision {
        let mut named = false;
        let mut allowed = false;
        for e in self.entries(resource_type, name) {
            named = true;
            if !applies_to(e, principal, host) {
                continue;
            }
            match e.permission {
                AclPermission::Deny
                    if e.operation == operation || e.operation == AclOperation::All =>
                {
                    return Decision::Deny;
                }
                AclPermission::Allow if operation.allowed_by().contains(&e.operation) => {
                    allowed = true;
                }
                _ => {}
            }
        }
        match (named, allowed) {
            (false, _) => Decision::NoAcl,
            (true, true) => Decision::Allow,
            (true, false) => Decision::Deny,
        }
    }

    /// Whether some ACL allows `principal` from `host` `operation` on some resource of the
    /// type (Kafka's authorizeByResourceType, which lets WRITE on any topic stand for
    /// IDEMPOTENT_WRITE, KIP-679). A DENY of the operation on every resource (`*`) wins.
    pub fn allows_on_some(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        let denied_everywhere = self
            .literal
            .get(&resource_type)
            .and_then(|names| names.get(WILDCARD))
            .into_iter()
            .flatten()
            .any(|e| {
                e.permission == AclPermission::Deny
                    && (e.operation == operation || e.operation == AclOperation::All)
                    && applies_to(e, principal, host)
            });
        !denied_everywhere
            && self
                .allows_by_type
                .get(&resource_type)
                .into_iter()
                .flatten()
                .any(|e| {
                    operation.allowed_by().contains(&e.operation) && applies_to(e, principal, host)
                })
    }

    /// Whether any ACL names a resource of the type.
    pub fn has_type(&self, resource_type: ResourceType) -> bool {
        self.literal.contains_key(&resource_type) || self.prefixed.contains_key(&resource_type)
    }
}

/// Whether an entry speaks of this principal (or `User:*`) and host (or `*`).
fn applies_to(e: &Entry, principal: &str, host: &str) -> bool {
    (e.principal == principal || e.principal == "User:*") && (e.host == WILDCARD || e.host == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        name: &str,
        pattern: PatternType,
        principal: &str,
        operation: AclOperation,
        permission: AclPermission,
    ) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            name: name.into(),
            pattern,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission,
        }
    }

    const ALICE: &str = "User:alice";
    const HOST: &str = "127.0.0.1";

    fn decide(index: &AclIndex, op: AclOperation, topic: &str) -> Decision {
        index.decide(ALICE, HOST, op, ResourceType::Topic, topic)
    }

    #[test]
    fn prefixed_write_allows_there_and_implies_describe_only() {
        use AclOperation::*;
        let index = AclIndex::new(&[acl(
            "orders.",
            PatternType::Prefixed,
            ALICE,
            Write,
            AclPermission::Allow,
        )]);
        assert_eq!(decide(&index, Write, "orders.eu"), Decision::Allow);
        assert_eq!(decide(&index, Describe, "orders.eu"), Decision::Allow);
        assert_eq!(decide(&index, Read, "orders.eu"), Decision::Deny);
        assert_eq!(decide(&index, Write, "orders"), Decision::NoAcl);
        assert_eq!(decide(&index, Write, "payments"), Decision::NoAcl);
        assert_eq!(
            index.decide("User:bob", HOST, Write, ResourceType::Topic, "orders.eu"),
            Decision::Deny,
            "an ACL for someone else names the resource: no fallback to the default"
        );
        assert!(index.allows_on_some(ALICE, HOST, Write, ResourceType::Topic));
        assert!(!index.allows_on_some("User:bob", HOST, Write, ResourceType::Topic));
    }

    #[test]
    fn deny_wins_over_allow_and_all() {
        use AclOperation::*;
        let index = AclIndex::new(&[
            acl(
                "*",
                PatternType::Literal,
                "User:*",
                All,
                AclPermission::Allow,
            ),
            acl(
                "secret",
                PatternType::Literal,
                ALICE,
                Read,
                AclPermission::Deny,
            ),
            acl(
                "vault",
                PatternType::Prefixed,
                ALICE,
                All,
                AclPermission::Deny,
            ),
        ]);
        assert_eq!(decide(&index, Read, "public"), Decision::Allow);
        assert_eq!(decide(&index, Read, "secret"), Decision::Deny);
        assert_eq!(
            decide(&index, Write, "secret"),
            Decision::Allow,
            "a DENY of READ leaves WRITE alone"
        );
        assert_eq!(decide(&index, Describe, "vault.keys"), Decision::Deny);
        assert_eq!(
            decide(&index, Describe, "secret"),
            Decision::Allow,
            "a DENY of READ does not deny what READ implies"
        );
    }

    #[test]
    fn hosts_and_multibyte_names() {
        use AclOperation::*;
        let mut from_elsewhere = acl("t", PatternType::Literal, ALICE, Read, AclPermission::Allow);
        from_elsewhere.host = "10.0.0.1".into();
        let index = AclIndex::new(&[
            from_elsewhere,
            acl(
                "é",
                PatternType::Prefixed,
                ALICE,
                Read,
                AclPermission::Allow,
            ),
        ]);
        assert_eq!(decide(&index, Read, "t"), Decision::Deny);
        assert_eq!(
            index.decide(ALICE, "10.0.0.1", Read, ResourceType::Topic, "t"),
            Decision::Allow
        );
        assert_eq!(decide(&index, Read, "éa"), Decision::Allow);
        assert_eq!(decide(&index, Read, "e"), Decision::NoAcl);
    }
}
