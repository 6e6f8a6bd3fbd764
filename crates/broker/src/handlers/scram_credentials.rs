//! DescribeUserScramCredentials and AlterUserScramCredentials: users' SCRAM credentials,
//! kept in the metadata log. Only mechanisms and iteration counts are ever described.
//! DESCRIBE and ALTER on the cluster, as Kafka checks.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_metadata::controller::scram::UserChange;
use strom_metadata::records::ScramMechanism;
use strom_metadata::ControllerRequest;

use crate::broker::{Broker, Refusal};

/// Kafka's bounds on SCRAM iterations.
const MIN_ITERATIONS: i32 = 4096;
const MAX_ITERATIONS: i32 = 16384;

fn refusal(e: ResponseError, message: &str) -> Refusal {
    Refusal::new(e, message)
}

pub(super) fn describe(
    broker: &Broker,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let image = broker.image();
    let result = |user: &str, outcome: Result<Vec<CredentialInfo>, Refusal>| {
        let r = DescribeUserScramCredentialsResult::default()
            .with_user(StrBytes::from_string(user.to_string()));
        match outcome {
            Ok(infos) => r.with_credential_infos(infos),
            Err(e) => r
                .with_error_code(e.code)
                .with_error_message(Some(StrBytes::from_string(e.message))),
        }
    };
    let infos = |user: &str| {
        image.scram_credentials.get(user).map(|creds| {
            creds
                .iter()
                .map(|(m, c)| {
                    CredentialInfo::default()
                        .with_mechanism(m.code())
                        .with_iterations(c.iterations as i32)
                })
                .collect::<Vec<_>>()
        })
    };
    let results = match request.users.filter(|u| !u.is_empty()) {
        None => image
            .scram_credentials
            .keys()
            .map(|user| result(user, Ok(infos(user).unwrap_or_default())))
            .collect(),
        Some(users) => {
            let mut seen = BTreeMap::new();
            for u in &users {
                *seen.entry(u.name.as_str()).or_insert(0) += 1;
            }
            let mut done = std::collections::BTreeSet::new();
            users
                .iter()
                .filter(|u| done.insert(u.name.as_str()))
                .map(|u| {
                    let name = u.name.as_str();
                    let outcome = if seen[name] > 1 {
                        Err(refusal(
                            ResponseError::DuplicateResource,
                            "Cannot describe SCRAM credentials for the same user twice in a single request",
                        ))
                    } else {
                        infos(name).ok_or_else(|| {
                            refusal(
                                ResponseError::ResourceNotFound,
                                "Attempt to describe a user credential that does not exist",
                            )
                        })
                    };
                    result(name, outcome)
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// One user's changes as the request asks them, before they are checked.
#[derive(Default)]
struct Asked {
    upsert: Vec<(i8, i32, bytes::Bytes, bytes::Bytes)>,
    delete: Vec<i8>,
}

/// The stateless checks of one user's changes, and the change they make.
fn check(name: &str, asked: &Asked) -> Result<UserChange, Refusal> {
    if name.is_empty() {
        return Err(refusal(
            ResponseError::UnacceptableCredential,
            "Username must not be empty",
        ));
    }
    let mechanism = |code: i8| {
        ScramMechanism::from_code(code).ok_or_else(|| {
            refusal(
                ResponseError::UnsupportedSaslMechanism,
                "Unknown SCRAM mechanism",
            )
        })
    };
    let mut touched = Vec::new();
    let mut change = UserChange {
        name: name.to_string(),
        upsert: Vec::new(),
        delete: Vec::new(),
    };
    for code in &asked.delete {
        let m = mechanism(*code)?;
        touched.push(m);
        change.delete.push(m);
    }
    for (code, iterations, salt, salted_password) in &asked.upsert {
        let m = mechanism(*code)?;
        if *iterations < MIN_ITERATIONS {
            return Err(refusal(
                ResponseError::UnacceptableCredential,
                "Too few iterations",
            ));
        }
        if *iterations > MAX_ITERATIONS {
            return Err(refusal(
                ResponseError::UnacceptableCredential,
                "Too many iterations",
            ));
        }
        if salt.is_empty() || salted_password.is_empty() {
            return Err(refusal(
                ResponseError::UnacceptableCredential,
                "The salt and the salted password must not be empty",
            ));
        }
        touched.push(m);
        change.upsert.push((
            m,
            crate::auth::scram::credential(m, salted_password, salt, *iterations as u32),
        ));
    }
    let mut distinct = touched.clone();
    distinct.sort();
    distinct.dedup();
    if distinct.len() != touched.len() {
        return Err(refusal(
            ResponseError::DuplicateResource,
            "A user credential cannot be altered twice in the same request",
        ));
    }
    Ok(change)
}

/// The changes asked of `name`, noting where it first appeared.
fn user<'a>(
    order: &mut Vec<String>,
    asked: &'a mut BTreeMap<String, Asked>,
    name: &StrBytes,
) -> &'a mut Asked {
    let name = name.to_string();
    if !asked.contains_key(&name) {
        order.push(name.clone());
    }
    asked.entry(name).or_default()
}

pub(super) async fn alter(
    broker: &Broker,
    access: &crate::authz::Access,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let allowed = access.allows_cluster(strom_types::acl::AclOperation::Alter);
    // Users in the order they first appear, each with everything asked of it.
    let mut order: Vec<String> = Vec::new();
    let mut asked: BTreeMap<String, Asked> = BTreeMap::new();
    for d in &request.deletions {
        user(&mut order, &mut asked, &d.name)
            .delete
            .push(d.mechanism);
    }
    for u in &request.upsertions {
        user(&mut order, &mut asked, &u.name).upsert.push((
            u.mechanism,
            u.iterations,
            u.salt.clone(),
            u.salted_password.clone(),
        ));
    }
    let mut outcomes: Vec<Result<(), Refusal>> = Vec::with_capacity(order.len());
    let mut changes = Vec::new();
    let mut slots = Vec::new();
    for name in &order {
        if !allowed {
            outcomes.push(Err(refusal(
                ResponseError::ClusterAuthorizationFailed,
                "cluster authorization failed",
            )));
            continue;
        }
        match check(name, &asked[name]) {
            Ok(change) => {
                slots.push(outcomes.len());
                outcomes.push(Ok(()));
                changes.push(change);
            }
            Err(e) => outcomes.push(Err(e)),
        }
    }
    if !changes.is_empty() {
        let reply = broker
            .submit(ControllerRequest::AlterScramCredentials { users: changes })
            .await;
        super::spread(&mut outcomes, &slots, reply, super::outcomes);
    }
    let results = order
        .iter()
        .zip(outcomes)
        .map(|(name, outcome)| {
            let r = AlterUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(name.clone()));
            match outcome {
                Ok(()) => r,
                Err(e) => r
                    .with_error_code(e.code)
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
