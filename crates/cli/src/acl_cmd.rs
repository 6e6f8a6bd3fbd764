//! `strom acl create|list|delete`: ACLs, with `kafka-acls.sh`'s flags (`--allow-principal`,
//! `--deny-principal`, `--operation`, `--topic`, `--group`, `--cluster`,
//! `--transactional-id`, `--resource-pattern-type`, and the `--producer`/`--consumer`
//! shortcuts).

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use strom_client::acl_admin::{
    AclBinding, AclFilter, AclOperation, AclPermission, PatternType, ResourceType, CLUSTER_NAME,
    WILDCARD,
};

use crate::tools::{table, Conn, Output};

/// The resources a command names.
#[derive(Debug, Args)]
pub struct Resources {
    /// A topic (or prefix, with --resource-pattern-type prefixed; `*` for every topic);
    /// repeatable.
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// A consumer group; repeatable.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// The cluster.
    #[arg(long)]
    cluster: bool,
    /// A transactional id; repeatable.
    #[arg(long = "transactional-id")]
    transactional_ids: Vec<String>,
    /// A delegation token; repeatable.
    #[arg(long = "delegation-token")]
    delegation_tokens: Vec<String>,
    /// literal or prefixed (create; literal when omitted); any or match too (list, delete).
    #[arg(long = "resource-pattern-type")]
    pattern: Option<String>,
}

impl Resources {
    fn named(&self) -> Vec<(ResourceType, String)> {
        let mut out = Vec::new();
        let mut add = |t: ResourceType, names: &[String]| {
            out.extend(names.iter().map(|n| (t, n.clone())));
        };
        add(ResourceType::Topic, &self.topics);
        add(ResourceType::Group, &self.groups);
        add(ResourceType::TransactionalId, &self.transactional_ids);
        add(ResourceType::DelegationToken, &self.delegation_tokens);
        if self.cluster {
            out.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
        }
        out
    }

    fn pattern(&self, default: PatternType) -> anyhow::Result<PatternType> {
        match &self.pattern {
            None => Ok(default),
            Some(p) => PatternType::from_name(p).with_context(|| {
                format!("--resource-pattern-type {p}: literal, prefixed, any or match")
            }),
        }
    }
}

/// Who an ACL is for.
#[derive(Debug, Args)]
pub struct Entries {
    /// A principal to allow (User:alice, User:* for everyone); repeatable.
    #[arg(long = "allow-principal")]
    allow: Vec<String>,
    /// A principal to deny; repeatable.
    #[arg(long = "deny-principal")]
    deny: Vec<String>,
    /// The host the allowed principals may connect from (every host when omitted).
    #[arg(long = "allow-host")]
    allow_hosts: Vec<String>,
    /// The host the denied principals are denied from (every host when omitted).
    #[arg(long = "deny-host")]
    deny_hosts: Vec<String>,
    /// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS,
    /// ALTER_CONFIGS, IDEMPOTENT_WRITE or ALL; repeatable.
    #[arg(long = "operation")]
    operations: Vec<String>,
}

fn operations(names: &[String]) -> anyhow::Result<Vec<AclOperation>> {
    names
        .iter()
        .map(|n| {
            AclOperation::from_name(n)
                .filter(|o| *o != AclOperation::Any)
                .with_context(|| format!("--operation {n}: not a Kafka ACL operation"))
        })
        .collect()
}

/// `strom acl ...`.
#[derive(Debug, Subcommand)]
pub enum AclCmd {
    /// Create ACLs: each principal, host and operation on each resource.
    ///
    /// Examples:
    ///   strom acl create --allow-principal User:alice --operation WRITE \
    ///       --topic orders. --resource-pattern-type prefixed
    ///   strom acl create --allow-principal User:etl --producer --topic orders
    ///   strom acl create --allow-principal User:app --consumer --topic orders --group app
    ///   strom acl create --deny-principal User:mallory --operation ALL --topic '*'
    #[command(verbatim_doc_comment)]
    Create {
        #[command(flatten)]
        resources: Resources,
        #[command(flatten)]
        entries: Entries,
        /// What a producer needs: WRITE, DESCRIBE and CREATE on the topics, WRITE and
        /// DESCRIBE on the transactional ids, IDEMPOTENT_WRITE on the cluster.
        #[arg(long)]
        producer: bool,
        /// What a consumer needs: READ and DESCRIBE on the topics, READ on the groups.
        #[arg(long)]
        consumer: bool,
    },
    /// List ACLs, of the resources named (every ACL when none is).
    ///
    /// Examples:
    ///   strom acl list
    ///   strom acl list --topic orders.eu --resource-pattern-type match
    ///   strom acl list --principal User:alice --output json
    #[command(verbatim_doc_comment)]
    List {
        #[command(flatten)]
        resources: Resources,
        /// Only this principal's ACLs.
        #[arg(long)]
        principal: Option<String>,
    },
    /// Delete the ACLs that match: of the resources named, and the principals and
    /// operations given (every ACL of the resource when none is).
    ///
    /// Examples:
    ///   strom acl delete --topic orders. --resource-pattern-type prefixed
    ///   strom acl delete --allow-principal User:alice --operation WRITE --topic orders
    #[command(verbatim_doc_comment)]
    Delete {
        #[command(flatten)]
        resources: Resources,
        #[command(flatten)]
        entries: Entries,
    },
}

/// The bindings `strom acl create` makes.
fn bindings(
    resources: &Resources,
    entries: &Entries,
    producer: bool,
    consumer: bool,
) -> anyhow::Result<Vec<AclBinding>> {
    let pattern = resources.pattern(PatternType::Literal)?;
    let named = resources.named();
    if named.is_empty() {
        bail!("name a resource: --topic, --group, --cluster, --transactional-id or --delegation-token");
    }
    if entries.allow.is_empty() && entries.deny.is_empty() {
        bail!("name a principal: --allow-principal or --deny-principal");
    }
    let ops = operations(&entries.operations)?;
    if ops.is_empty() && !producer && !consumer {
        bail!("name an --operation (or --producer / --consumer)");
    }
    // (resource, name, operations) triples.
    let mut wanted: Vec<(ResourceType, String, Vec<AclOperation>)> = named
        .iter()
        .filter(|_| !ops.is_empty())
        .map(|(t, n)| (*t, n.clone(), ops.clone()))
        .collect();
    use AclOperation::*;
    for (t, n) in &named {
        let extra: &[AclOperation] = match t {
            ResourceType::Topic if producer && consumer => &[Write, Describe, Create, Read],
            ResourceType::Topic if producer => &[Write, Describe, Create],
            ResourceType::Topic if consumer => &[Read, Describe],
            ResourceType::Group if consumer => &[Read],
            ResourceType::TransactionalId if producer => &[Write, Describe],
            _ => &[],
        };
        if !extra.is_empty() {
            wanted.push((*t, n.clone(), extra.to_vec()));
        }
    }
    if producer && !resources.cluster {
        wanted.push((
            ResourceType::Cluster,
            CLUSTER_NAME.to_string(),
            vec![IdempotentWrite],
        ));
    }
    let hosts = |h: &[String]| {
        if h.is_empty() {
            vec![WILDCARD.to_string()]
        } else {
            h.to_vec()
        }
    };
    let mut out = Vec::new();
    for (permission, principals, hosts) in [
        (
            AclPermission::Allow,
            &entries.allow,
            hosts(&entries.allow_hosts),
        ),
        (
            AclPermission::Deny,
            &entries.deny,
            hosts(&entries.deny_hosts),
        ),
    ] {
        for principal in principals {
            for host in &hosts {
                for (t, name, ops) in &wanted {
                    let pattern = if *t == ResourceType::Cluster {
                        PatternType::Literal
                    } else {
                        pattern
                    };
                    for op in ops {
                        let acl = AclBinding {
                            resource_type: *t,
                            name: name.clone(),
                            pattern,
                            principal: principal.clone(),
                            host: host.clone(),
                            operation: *op,
                            permission,
                        };
                        acl.validate().map_err(anyhow::Error::msg)?;
                        if !out.contains(&acl) {
                            out.push(acl);
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The filters `list` and `delete` send: one per resource named (or one for all), crossed
/// with the principals and operations given.
fn filters(
    resources: &Resources,
    entries: Option<&Entries>,
    principal: Option<&String>,
) -> anyhow::Result<Vec<AclFilter>> {
    let pattern = resources.pattern(PatternType::Any)?;
    let mut base: Vec<AclFilter> = resources
        .named()
        .into_iter()
        .map(|(t, n)| AclFilter {
            resource_type: t,
            name: Some(n),
            pattern: if t == ResourceType::Cluster {
                PatternType::Any
            } else {
                pattern
            },
            ..AclFilter::any()
        })
        .collect();
    if base.is_empty() {
        base.push(AclFilter {
            pattern,
            ..AclFilter::any()
        });
    }
    let mut principals: Vec<(Option<String>, AclPermission)> = Vec::new();
    if let Some(p) = principal {
        principals.push((Some(p.clone()), AclPermission::Any));
    }
    let mut ops = vec![AclOperation::Any];
    if let Some(e) = entries {
        principals.extend(
            e.allow
                .iter()
                .map(|p| (Some(p.clone()), AclPermission::Allow)),
        );
        principals.extend(
            e.deny
                .iter()
                .map(|p| (Some(p.clone()), AclPermission::Deny)),
        );
        let named = operations(&e.operations)?;
        if !named.is_empty() {
            ops = named;
        }
    }
    if principals.is_empty() {
        principals.push((None, AclPermission::Any));
    }
    let mut out = Vec::new();
    for f in &base {
        for (principal, permission) in &principals {
            for op in &ops {
                out.push(AclFilter {
                    principal: principal.clone(),
                    permission: *permission,
                    operation: *op,
                    ..f.clone()
                });
            }
        }
    }
    Ok(out)
}

fn print(conn: &Conn, acls: &[AclBinding]) {
    match conn.output {
        Output::Json => {
            let json: Vec<_> = acls
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "resource_type": a.resource_type.name(),
                        "name": a.name,
                        "pattern_type": a.pattern.name(),
                        "principal": a.principal,
                        "host": a.host,
                        "operation": a.operation.name(),
                        "permission_type": a.permission.name(),
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(json));
        }
        Output::Table => {
            let mut rows = vec![[
                "RESOURCE",
                "NAME",
                "PATTERN",
                "PRINCIPAL",
                "HOST",
                "OPERATION",
                "PERMISSION",
            ]
            .map(String::from)
            .to_vec()];
            for a in acls {
                rows.push(vec![
                    a.resource_type.name().to_string(),
                    a.name.clone(),
                    a.pattern.name().to_string(),
                    a.principal.clone(),
                    a.host.clone(),
                    a.operation.name().to_string(),
                    a.permission.name().to_string(),
                ]);
            }
            table(&rows);
        }
    }
}

/// Runs `strom acl ...`.
pub async fn acl(conn: &Conn, cmd: AclCmd) -> anyhow::Result<()> {
    let admin = conn.admin();
    match cmd {
        AclCmd::Create {
            resources,
            entries,
            producer,
            consumer,
        } => {
            let acls = bindings(&resources, &entries, producer, consumer)?;
            admin.create_acls(&acls).await?;
            eprintln!("{} ACLs created", acls.len());
        }
        AclCmd::List {
            resources,
            principal,
        } => {
            let mut acls = Vec::new();
            for f in filters(&resources, None, principal.as_ref())? {
                for a in admin.describe_acls(&f).await? {
                    if !acls.contains(&a) {
                        acls.push(a);
                    }
                }
            }
            acls.sort();
            print(conn, &acls);
        }
        AclCmd::Delete { resources, entries } => {
            let deleted = admin
                .delete_acls(&filters(&resources, Some(&entries), None)?)
                .await?;
            eprintln!("{} ACLs deleted", deleted.len());
            print(conn, &deleted);
        }
    }
    Ok(())
}
