//! The authorizer's cost (criterion), with 10,000 ACLs in the metadata image.
//!
//! Run: `cargo bench -p strom-broker --bench authorizer` (about a minute on 2 cores).
//!
//! The ACLs: 6,000 LITERAL topic ACLs (100 users, READ or WRITE), 2,000 PREFIXED topic
//! ACLs of 500 distinct prefix lengths, 1,000 group ACLs, 900 DENY ACLs and 100 wildcard
//! ones.
//!
//! - `check/literal`, `check/prefixed`, `check/denied`, `check/no_acl`: one
//!   `Access::allows`, the question every request asks per resource it names.
//! - `request/produce_5_topics`: what a Produce to five topics costs in checks (the
//!   `Access` built for the request, then five WRITE checks).
//! - `metadata/1000_topics`: listing 1,000 topics, each checked for DESCRIBE (Metadata with
//!   no topic named hides the rest).
//! - `rebuild/10000_acls`: indexing the ACLs again, which happens once per ACL change.

use std::net::IpAddr;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use strom_broker::auth::Principal;
use strom_broker::authz::index::AclIndex;
use strom_broker::authz::{Authorizer, AuthorizerConfig};
use strom_metadata::records::MetadataRecord;
use strom_metadata::MetadataImage;
use strom_types::acl::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType};

fn acls() -> Vec<AclBinding> {
    let acl = |t, name: String, pattern, user: usize, op, permission| AclBinding {
        resource_type: t,
        name,
        pattern,
        principal: format!("User:u{user}"),
        host: "*".into(),
        operation: op,
        permission,
    };
    let mut out = Vec::with_capacity(10_000);
    for i in 0..6_000 {
        let op = if i % 2 == 0 {
            AclOperation::Read
        } else {
            AclOperation::Write
        };
        out.push(acl(
            ResourceType::Topic,
            format!("topic-{i}"),
            PatternType::Literal,
            i % 100,
            op,
            AclPermission::Allow,
        ));
    }
    for i in 0..2_000 {
        // Prefixes of 500 different lengths: the worst case for the per-length lookups.
        let prefix = format!("team{i}.{}", "x".repeat(i % 500));
        out.push(acl(
            ResourceType::Topic,
            prefix,
            PatternType::Prefixed,
            i % 100,
            AclOperation::Write,
            AclPermission::Allow,
        ));
    }
    for i in 0..1_000 {
        out.push(acl(
            ResourceType::Group,
            format!("group-{i}"),
            PatternType::Literal,
            i % 100,
            AclOperation::Read,
            AclPermission::Allow,
        ));
    }
    for i in 0..900 {
        out.push(acl(
            ResourceType::Topic,
            format!("topic-{}", i * 5),
            PatternType::Literal,
            (i + 1) % 100,
            AclOperation::All,
            AclPermission::Deny,
        ));
    }
    for i in 0..100 {
        out.push(acl(
            ResourceType::Topic,
            "*".into(),
            PatternType::Literal,
            i,
            AclOperation::Describe,
            AclPermission::Allow,
        ));
    }
    out
}

fn image(acls: &[AclBinding]) -> MetadataImage {
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

fn bench(c: &mut Criterion) {
    let acls = acls();
    assert_eq!(acls.len(), 10_000);
    let image = image(&acls);
    let authorizer = Authorizer::new(Some(AuthorizerConfig::default()));
    let host: IpAddr = [10, 0, 0, 7].into();
    let u7 = Principal::user("u7");
    let access = authorizer.access(&u7, host, &image);

    let mut g = c.benchmark_group("check");
    g.bench_function("literal", |b| {
        b.iter(|| {
            access.allows(
                AclOperation::Write,
                ResourceType::Topic,
                black_box("topic-107"),
            )
        })
    });
    let prefixed = format!("team7.{}orders", "x".repeat(7));
    assert!(access.allows(AclOperation::Write, ResourceType::Topic, &prefixed));
    g.bench_function("prefixed", |b| {
        b.iter(|| {
            access.allows(
                AclOperation::Write,
                ResourceType::Topic,
                black_box(&prefixed),
            )
        })
    });
    let denied = authorizer.access(&Principal::user("u8"), host, &image);
    assert!(!denied.allows(AclOperation::Read, ResourceType::Topic, "topic-35"));
    g.bench_function("denied", |b| {
        b.iter(|| {
            denied.allows(
                AclOperation::Read,
                ResourceType::Topic,
                black_box("topic-35"),
            )
        })
    });
    g.bench_function("no_acl", |b| {
        b.iter(|| {
            access.allows(
                AclOperation::Read,
                ResourceType::Group,
                black_box("unknown"),
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group("request");
    let topics: Vec<String> = (0..5).map(|i| format!("topic-{}", 7 + i * 200)).collect();
    g.bench_function("produce_5_topics", |b| {
        b.iter(|| {
            let access = authorizer.access(&u7, host, &image);
            topics
                .iter()
                .filter(|t| access.allows(AclOperation::Write, ResourceType::Topic, t))
                .count()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("metadata");
    let names: Vec<String> = (0..1000).map(|i| format!("topic-{i}")).collect();
    g.bench_function("1000_topics", |b| {
        b.iter(|| {
            names
                .iter()
                .filter(|t| access.allows(AclOperation::Describe, ResourceType::Topic, t))
                .count()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("rebuild");
    g.sample_size(20);
    g.bench_function("10000_acls", |b| {
        b.iter(|| AclIndex::new(black_box(&acls)).len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
