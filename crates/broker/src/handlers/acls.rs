//! CreateAcls, DescribeAcls and DeleteAcls: the ACLs in the metadata log. Without an
//! authorizer they answer SECURITY_DISABLED, as Kafka does.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_metadata::{ControllerReply, ControllerRequest};
use strom_types::acl::{
    AclBinding, AclFilter, AclOperation, AclPermission, PatternType, ResourceType,
};

use crate::authz::Access;
use crate::broker::{Broker, Refusal};

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Why the request as a whole is refused: no authorizer, or not allowed `operation` on the
/// cluster.
fn refused(broker: &Broker, access: &Access, operation: AclOperation) -> Option<Refusal> {
    if !broker.authorizer.enabled() {
        return Some(Refusal::new(
            ResponseError::SecurityDisabled,
            "no authorizer is configured (authorizer.class.name)",
        ));
    }
    (!access.allows_cluster(operation)).then(|| {
        Refusal::new(
            ResponseError::ClusterAuthorizationFailed,
            "cluster authorization failed",
        )
    })
}

/// The typed value of a wire code, or INVALID_REQUEST naming the field.
fn code<T>(parsed: Option<T>, field: &str, value: i8) -> Result<T, Refusal> {
    parsed.ok_or_else(|| {
        Refusal::new(
            ResponseError::InvalidRequest,
            format!("unknown {field} code {value}"),
        )
    })
}

#[allow(clippy::too_many_arguments)]
fn filter(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, Refusal> {
    let f = AclFilter {
        resource_type: code(
            ResourceType::from_code(resource_type),
            "resource type",
            resource_type,
        )?,
        name: name.map(|n| n.to_string()),
        pattern: code(PatternType::from_code(pattern), "pattern type", pattern)?,
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation: code(AclOperation::from_code(operation), "operation", operation)?,
        permission: code(
            AclPermission::from_code(permission),
            "permission type",
            permission,
        )?,
    };
    f.validate()
        .map_err(|m| Refusal::new(ResponseError::InvalidRequest, m))?;
    Ok(f)
}

pub(super) async fn create(
    broker: &Broker,
    access: &Access,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let failed = |e: &Refusal| {
        AclCreationResult::default()
            .with_error_code(e.code)
            .with_error_message(Some(text(&e.message)))
    };
    if let Some(e) = refused(broker, access, AclOperation::Alter) {
        let results = request.creations.iter().map(|_| failed(&e)).collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let mut outcomes: Vec<Result<(), Refusal>> = Vec::new();
    let (mut acls, mut slots) = (Vec::new(), Vec::new());
    for c in &request.creations {
        let acl = (|| {
            let acl = AclBinding {
                resource_type: code(
                    ResourceType::from_code(c.resource_type),
                    "resource type",
                    c.resource_type,
                )?,
                name: c.resource_name.to_string(),
                pattern: code(
                    PatternType::from_code(c.resource_pattern_type),
                    "pattern type",
                    c.resource_pattern_type,
                )?,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: code(
                    AclOperation::from_code(c.operation),
                    "operation",
                    c.operation,
                )?,
                permission: code(
                    AclPermission::from_code(c.permission_type),
                    "permission type",
                    c.permission_type,
                )?,
            };
            acl.validate()
                .map_err(|m| Refusal::new(ResponseError::InvalidRequest, m))?;
            Ok(acl)
        })();
        match acl {
            Ok(acl) => {
                slots.push(outcomes.len());
                outcomes.push(Ok(()));
                acls.push(acl);
            }
            Err(e) => outcomes.push(Err(e)),
        }
    }
    if !acls.is_empty() {
        let reply = broker.submit(ControllerRequest::CreateAcls { acls }).await;
        super::spread(&mut outcomes, &slots, reply, super::outcomes);
        let created = slots.iter().filter(|i| outcomes[**i].is_ok()).count();
        tracing::info!(acls = created, "ACLs created");
    }
    let results = outcomes
        .iter()
        .map(|o| match o {
            Ok(()) => AclCreationResult::default(),
            Err(e) => failed(e),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub(super) fn describe(
    broker: &Broker,
    access: &Access,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let error = |e: Refusal| {
        DescribeAclsResponse::default()
            .with_error_code(e.code)
            .with_error_message(Some(text(&e.message)))
    };
    if let Some(e) = refused(broker, access, AclOperation::Describe) {
        return error(e);
    }
    let r = &request;
    let wanted = match filter(
        r.resource_type_filter,
        r.resource_name_filter.as_ref(),
        r.pattern_type_filter,
        r.principal_filter.as_ref(),
        r.host_filter.as_ref(),
        r.operation,
        r.permission_type,
    ) {
        Ok(f) => f,
        Err(e) => return error(e),
    };
    let image = broker.image();
    let mut by_resource: BTreeMap<(ResourceType, &str, PatternType), Vec<&AclBinding>> =
        BTreeMap::new();
    for acl in image.acls.values().filter(|a| wanted.matches(a)) {
        by_resource
            .entry((acl.resource_type, &acl.name, acl.pattern))
            .or_default()
            .push(acl);
    }
    let resources = by_resource
        .into_iter()
        .map(|((resource_type, name, pattern), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type.code())
                .with_resource_name(text(name))
                .with_pattern_type(pattern.code())
                .with_acls(
                    acls.into_iter()
                        .map(|a| {
                            AclDescription::default()
                                .with_principal(text(&a.principal))
                                .with_host(text(&a.host))
                                .with_operation(a.operation.code())
                                .with_permission_type(a.permission.code())
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

pub(super) async fn delete(
    broker: &Broker,
    access: &Access,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let failed = |e: &Refusal| {
        DeleteAclsFilterResult::default()
            .with_error_code(e.code)
            .with_error_message(Some(text(&e.message)))
    };
    if let Some(e) = refused(broker, access, AclOperation::Alter) {
        let results = request.filters.iter().map(|_| failed(&e)).collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let mut outcomes: Vec<Result<Vec<AclBinding>, Refusal>> = Vec::new();
    let (mut filters, mut slots) = (Vec::new(), Vec::new());
    for f in &request.filters {
        match filter(
            f.resource_type_filter,
            f.resource_name_filter.as_ref(),
            f.pattern_type_filter,
            f.principal_filter.as_ref(),
            f.host_filter.as_ref(),
            f.operation,
            f.permission_type,
        ) {
            Ok(f) => {
                slots.push(outcomes.len());
                outcomes.push(Ok(Vec::new()));
                filters.push(f);
            }
            Err(e) => outcomes.push(Err(e)),
        }
    }
    if !filters.is_empty() {
        let reply = broker
            .submit(ControllerRequest::DeleteAcls { filters })
            .await;
        super::spread(&mut outcomes, &slots, reply, |r| match r {
            ControllerReply::DeletedAcls { results, .. } => Some(results),
            _ => None,
        });
    }
    let results = outcomes
        .iter()
        .map(|o| match o {
            Ok(deleted) => DeleteAclsFilterResult::default().with_matching_acls(
                deleted
                    .iter()
                    .map(|a| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(a.resource_type.code())
                            .with_resource_name(text(&a.name))
                            .with_pattern_type(a.pattern.code())
                            .with_principal(text(&a.principal))
                            .with_host(text(&a.host))
                            .with_operation(a.operation.code())
                            .with_permission_type(a.permission.code())
                    })
                    .collect(),
            ),
            Err(e) => failed(e),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
