//! SCRAM users, as Kafka's Admin client and `kafka-configs.sh --entity-type users` manage
//! them: AlterUserScramCredentials (the password is salted and hashed here, PBKDF2 as RFC
//! 5802 says, so it never reaches the broker) and DescribeUserScramCredentials.

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use rand::RngCore;
use rsasl::mechanisms::scram::tools::hash_password;

use crate::admin::{s, Admin};
use crate::error::{ClientError, Result};

pub use strom_types::ScramMechanism;

/// PBKDF2-HMAC of `password` (the SaltedPassword of RFC 5802).
fn salt_password(m: ScramMechanism, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    match m {
        ScramMechanism::Sha256 => {
            let mut out = Default::default();
            hash_password::<sha2::Sha256>(password.as_bytes(), iterations, salt, &mut out);
            out.to_vec()
        }
        ScramMechanism::Sha512 => {
            let mut out = Default::default();
            hash_password::<sha2::Sha512>(password.as_bytes(), iterations, salt, &mut out);
            out.to_vec()
        }
    }
}

/// One user's SCRAM credentials: mechanism and iteration count of each (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredentials {
    /// The user name.
    pub user: String,
    /// Mechanism and iterations.
    pub credentials: Vec<(ScramMechanism, i32)>,
}

fn user_error(user: &str, code: i16, message: Option<String>) -> ClientError {
    let e = ClientError::kafka(code);
    match message {
        Some(m) if !m.is_empty() => ClientError::Protocol(format!("user {user}: {e}: {m}")),
        _ => e,
    }
}

impl Admin {
    /// Sets `user`'s password for each of `mechanisms`, with `iterations` of PBKDF2.
    pub async fn upsert_scram_user(
        &self,
        user: &str,
        password: &str,
        mechanisms: &[ScramMechanism],
        iterations: i32,
    ) -> Result<()> {
        let rounds = u32::try_from(iterations)
            .map_err(|_| ClientError::Config(format!("iterations {iterations}")))?;
        let upsertions = mechanisms
            .iter()
            .map(|m| {
                let mut salt = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut salt);
                let salted = salt_password(*m, password, &salt, rounds);
                ScramCredentialUpsertion::default()
                    .with_name(s(user))
                    .with_mechanism(m.code())
                    .with_iterations(iterations)
                    .with_salt(Bytes::from(salt))
                    .with_salted_password(Bytes::from(salted))
            })
            .collect();
        self.alter_scram(AlterUserScramCredentialsRequest::default().with_upsertions(upsertions))
            .await
    }

    /// Deletes `user`'s credentials for `mechanisms`.
    pub async fn delete_scram_user(&self, user: &str, mechanisms: &[ScramMechanism]) -> Result<()> {
        let deletions = mechanisms
            .iter()
            .map(|m| {
                ScramCredentialDeletion::default()
                    .with_name(s(user))
                    .with_mechanism(m.code())
            })
            .collect();
        self.alter_scram(AlterUserScramCredentialsRequest::default().with_deletions(deletions))
            .await
    }

    async fn alter_scram(&self, request: AlterUserScramCredentialsRequest) -> Result<()> {
        let conn = self.cluster.any_connection().await?;
        let r = conn.send(&request).await?;
        for result in r.results {
            if result.error_code != 0 {
                return Err(user_error(
                    &result.user,
                    result.error_code,
                    result.error_message.map(|m| m.to_string()),
                ));
            }
        }
        Ok(())
    }

    /// The credentials of `users`, or of every user with one when empty.
    pub async fn describe_scram_users(&self, users: &[String]) -> Result<Vec<UserCredentials>> {
        let conn = self.cluster.any_connection().await?;
        let request = DescribeUserScramCredentialsRequest::default().with_users(
            (!users.is_empty()).then(|| {
                users
                    .iter()
                    .map(|u| UserName::default().with_name(s(u)))
                    .collect()
            }),
        );
        let r = conn.send(&request).await?;
        if r.error_code != 0 {
            return Err(user_error(
                "",
                r.error_code,
                r.error_message.map(|m| m.to_string()),
            ));
        }
        r.results
            .into_iter()
            .map(|u| {
                if u.error_code != 0 {
                    return Err(user_error(
                        &u.user,
                        u.error_code,
                        u.error_message.map(|m| m.to_string()),
                    ));
                }
                Ok(UserCredentials {
                    user: u.user.to_string(),
                    credentials: u
                        .credential_infos
                        .iter()
                        .filter_map(|c| {
                            Some((ScramMechanism::from_code(c.mechanism)?, c.iterations))
                        })
                        .collect(),
                })
            })
            .collect()
    }
}
