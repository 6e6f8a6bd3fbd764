//! `strom user create|list|delete`: SCRAM users, as `kafka-configs.sh --entity-type users
//! --alter --add-config 'SCRAM-SHA-512=[password=...]'` manages them. The password is salted
//! and hashed on this side; the broker keeps only the derived keys.

use anyhow::{bail, Context};
use clap::Subcommand;
use strom_client::ScramMechanism;

use crate::tools::{table, Conn, Output};

/// `strom user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a SCRAM user, or set a new password.
    ///
    /// Examples:
    ///   strom user create alice --password alice-secret
    ///   STROM_USER_PASSWORD=s3cret strom user create etl --mechanism SCRAM-SHA-512
    #[command(verbatim_doc_comment)]
    Create {
        /// User name (the principal is User:NAME).
        name: String,
        /// The password.
        #[arg(long, env = "STROM_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512; repeatable (both when omitted).
        #[arg(long = "mechanism")]
        mechanisms: Vec<String>,
        /// PBKDF2 iterations (4096 to 16384).
        #[arg(long, default_value_t = 8192)]
        iterations: i32,
    },
    /// List SCRAM users with their mechanisms and iterations (never a secret).
    ///
    /// Examples:
    ///   strom user list
    ///   strom user list alice --output json
    #[command(verbatim_doc_comment)]
    List {
        /// Only these users.
        names: Vec<String>,
    },
    /// Delete a SCRAM user's credentials.
    ///
    /// Example: strom user delete alice --mechanism SCRAM-SHA-256
    #[command(verbatim_doc_comment)]
    Delete {
        /// User name.
        name: String,
        /// The mechanisms to delete; repeatable (every one the user has when omitted).
        #[arg(long = "mechanism")]
        mechanisms: Vec<String>,
    },
}

fn mechanisms(names: &[String]) -> anyhow::Result<Vec<ScramMechanism>> {
    if names.is_empty() {
        return Ok(ScramMechanism::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            ScramMechanism::from_name(n)
                .with_context(|| format!("--mechanism {n}: SCRAM-SHA-256 or SCRAM-SHA-512"))
        })
        .collect()
}

/// Runs `strom user ...`.
pub async fn user(conn: &Conn, cmd: UserCmd) -> anyhow::Result<()> {
    let admin = conn.admin();
    match cmd {
        UserCmd::Create {
            name,
            password,
            mechanisms: m,
            iterations,
        } => {
            if password.is_empty() {
                bail!("--password must not be empty");
            }
            let m = mechanisms(&m)?;
            admin
                .upsert_scram_user(&name, &password, &m, iterations)
                .await?;
            let names: Vec<&str> = m.iter().map(|m| m.name()).collect();
            eprintln!("user {name}: {} set", names.join(", "));
        }
        UserCmd::Delete {
            name,
            mechanisms: m,
        } => {
            let m = if m.is_empty() {
                let described = admin
                    .describe_scram_users(std::slice::from_ref(&name))
                    .await?;
                described
                    .into_iter()
                    .flat_map(|u| u.credentials.into_iter().map(|(m, _)| m))
                    .collect()
            } else {
                mechanisms(&m)?
            };
            admin.delete_scram_user(&name, &m).await?;
            eprintln!("user {name}: deleted");
        }
        UserCmd::List { names } => {
            let users = admin.describe_scram_users(&names).await?;
            match conn.output {
                Output::Json => {
                    let json: Vec<_> = users
                        .iter()
                        .map(|u| {
                            serde_json::json!({
                                "user": u.user,
                                "credentials": u.credentials.iter().map(|(m, i)| {
                                    serde_json::json!({"mechanism": m.name(), "iterations": i})
                                }).collect::<Vec<_>>(),
                            })
                        })
                        .collect();
                    println!("{}", serde_json::Value::Array(json));
                }
                Output::Table => {
                    let mut rows = vec![vec![
                        "USER".to_string(),
                        "MECHANISM".to_string(),
                        "ITERATIONS".to_string(),
                    ]];
                    for u in &users {
                        for (m, i) in &u.credentials {
                            rows.push(vec![u.user.clone(), m.name().to_string(), i.to_string()]);
                        }
                    }
                    table(&rows);
                }
            }
        }
    }
    Ok(())
}
