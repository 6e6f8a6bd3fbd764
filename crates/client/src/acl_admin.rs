//! ACLs, as Kafka's Admin client and `kafka-acls.sh` manage them: CreateAcls, DescribeAcls,
//! DeleteAcls.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

use crate::admin::{s, Admin};
use crate::error::{ClientError, Result};

pub use strom_types::acl::{
    AclBinding, AclFilter, AclOperation, AclPermission, PatternType, ResourceType, CLUSTER_NAME,
    WILDCARD,
};

fn acl_error(code: i16, message: Option<StrBytes>) -> ClientError {
    let e = ClientError::kafka(code);
    match message.filter(|m| !m.is_empty()) {
        Some(m) => ClientError::Protocol(format!("{e}: {m}")),
        None => e,
    }
}

/// The binding a response describes, if its codes are ones Strom knows.
fn binding(
    (resource_type, name, pattern): (i8, &StrBytes, i8),
    (principal, host, operation, permission): (&StrBytes, &StrBytes, i8, i8),
) -> Result<AclBinding> {
    let unknown =
        |what: &str, code: i8| ClientError::Protocol(format!("unknown {what} code {code}"));
    Ok(AclBinding {
        resource_type: ResourceType::from_code(resource_type)
            .ok_or_else(|| unknown("resource type", resource_type))?,
        name: name.to_string(),
        pattern: PatternType::from_code(pattern).ok_or_else(|| unknown("pattern type", pattern))?,
        principal: principal.to_string(),
        host: host.to_string(),
        operation: AclOperation::from_code(operation)
            .ok_or_else(|| unknown("operation", operation))?,
        permission: AclPermission::from_code(permission)
            .ok_or_else(|| unknown("permission type", permission))?,
    })
}

impl Admin {
    /// Creates `acls` (one that exists already is left as it is).
    pub async fn create_acls(&self, acls: &[AclBinding]) -> Result<()> {
        let creations = acls
            .iter()
            .map(|a| {
                AclCreation::default()
                    .with_resource_type(a.resource_type.code())
                    .with_resource_name(s(&a.name))
                    .with_resource_pattern_type(a.pattern.code())
                    .with_principal(s(&a.principal))
                    .with_host(s(&a.host))
                    .with_operation(a.operation.code())
                    .with_permission_type(a.permission.code())
            })
            .collect();
        let conn = self.cluster.any_connection().await?;
        let r = conn
            .send(&CreateAclsRequest::default().with_creations(creations))
            .await?;
        match r.results.into_iter().find(|r| r.error_code != 0) {
            Some(failed) => Err(acl_error(failed.error_code, failed.error_message)),
            None => Ok(()),
        }
    }

    /// The ACLs `filter` selects.
    pub async fn describe_acls(&self, filter: &AclFilter) -> Result<Vec<AclBinding>> {
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type.code())
            .with_resource_name_filter(filter.name.as_deref().map(s))
            .with_pattern_type_filter(filter.pattern.code())
            .with_principal_filter(filter.principal.as_deref().map(s))
            .with_host_filter(filter.host.as_deref().map(s))
            .with_operation(filter.operation.code())
            .with_permission_type(filter.permission.code());
        let conn = self.cluster.any_connection().await?;
        let r = conn.send(&request).await?;
        if r.error_code != 0 {
            return Err(acl_error(r.error_code, r.error_message));
        }
        let mut out = Vec::new();
        for resource in &r.resources {
            for a in &resource.acls {
                out.push(binding(
                    (
                        resource.resource_type,
                        &resource.resource_name,
                        resource.pattern_type,
                    ),
                    (&a.principal, &a.host, a.operation, a.permission_type),
                )?);
            }
        }
        Ok(out)
    }

    /// Deletes what `filters` select; the ACLs deleted.
    pub async fn delete_acls(&self, filters: &[AclFilter]) -> Result<Vec<AclBinding>> {
        let filters = filters
            .iter()
            .map(|f| {
                DeleteAclsFilter::default()
                    .with_resource_type_filter(f.resource_type.code())
                    .with_resource_name_filter(f.name.as_deref().map(s))
                    .with_pattern_type_filter(f.pattern.code())
                    .with_principal_filter(f.principal.as_deref().map(s))
                    .with_host_filter(f.host.as_deref().map(s))
                    .with_operation(f.operation.code())
                    .with_permission_type(f.permission.code())
            })
            .collect();
        let conn = self.cluster.any_connection().await?;
        let r = conn
            .send(&DeleteAclsRequest::default().with_filters(filters))
            .await?;
        let mut out = Vec::new();
        for result in r.filter_results {
            if result.error_code != 0 {
                return Err(acl_error(result.error_code, result.error_message));
            }
            for a in &result.matching_acls {
                out.push(binding(
                    (a.resource_type, &a.resource_name, a.pattern_type),
                    (&a.principal, &a.host, a.operation, a.permission_type),
                )?);
            }
        }
        Ok(out)
    }
}
