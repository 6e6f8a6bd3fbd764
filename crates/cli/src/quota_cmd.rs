//! `strom quota set|describe`: client quotas by user, client id or both, with defaults, as
//! `kafka-configs.sh --entity-type users|clients --alter --add-config` manages them.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use strom_client::quota_admin::{EntityName, QuotaEntity};

use crate::tools::{table, Conn, Output};

/// Who a quota is for.
#[derive(Debug, Args)]
pub struct Entity {
    /// A user (the principal's name: alice for User:alice).
    #[arg(long, conflicts_with = "user_default")]
    user: Option<String>,
    /// The default user: every user without a quota of their own.
    #[arg(long)]
    user_default: bool,
    /// A client id.
    #[arg(long, conflicts_with = "client_id_default")]
    client_id: Option<String>,
    /// The default client id.
    #[arg(long)]
    client_id_default: bool,
}

impl Entity {
    fn parts(&self) -> (Option<EntityName>, Option<EntityName>) {
        let part = |name: &Option<String>, default: bool| match (name, default) {
            (Some(n), _) => Some(EntityName::Named(n.clone())),
            (None, true) => Some(EntityName::Default),
            (None, false) => None,
        };
        (
            part(&self.user, self.user_default),
            part(&self.client_id, self.client_id_default),
        )
    }
}

/// `strom quota ...`.
#[derive(Debug, Subcommand)]
pub enum QuotaCmd {
    /// Set or remove quotas of a user, a client id, or a user's client id.
    ///
    /// Keys: producer_byte_rate, consumer_byte_rate (bytes/s), request_percentage (100 is
    /// one request thread), controller_mutation_rate (partitions/s).
    ///
    /// Examples:
    ///   strom quota set --user alice --add-config producer_byte_rate=1048576
    ///   strom quota set --user-default --add-config consumer_byte_rate=10485760
    ///   strom quota set --user alice --client-id etl --delete-config producer_byte_rate
    #[command(verbatim_doc_comment)]
    Set {
        #[command(flatten)]
        entity: Entity,
        /// KEY=VALUE; repeatable, or comma-separated.
        #[arg(long = "add-config", value_delimiter = ',')]
        add: Vec<String>,
        /// A key to remove; repeatable, or comma-separated.
        #[arg(long = "delete-config", value_delimiter = ',')]
        delete: Vec<String>,
    },
    /// Show quotas: of the entity named, or every one.
    ///
    /// Examples:
    ///   strom quota describe
    ///   strom quota describe --user alice --output json
    #[command(verbatim_doc_comment)]
    Describe {
        #[command(flatten)]
        entity: Entity,
    },
}

/// Runs `strom quota ...`.
pub async fn quota(conn: &Conn, cmd: QuotaCmd) -> anyhow::Result<()> {
    let admin = conn.admin();
    match cmd {
        QuotaCmd::Set {
            entity,
            add,
            delete,
        } => {
            let (user, client_id) = entity.parts();
            if user.is_none() && client_id.is_none() {
                bail!("name a --user, --user-default, --client-id or --client-id-default");
            }
            let mut ops = Vec::new();
            for item in &add {
                let (key, value) = item
                    .split_once('=')
                    .with_context(|| format!("--add-config {item}: KEY=VALUE"))?;
                let value: f64 = value
                    .trim()
                    .parse()
                    .with_context(|| format!("--add-config {item}: not a number"))?;
                ops.push((key.trim().to_string(), Some(value)));
            }
            ops.extend(delete.iter().map(|k| (k.trim().to_string(), None)));
            if ops.is_empty() {
                bail!("give --add-config KEY=VALUE or --delete-config KEY");
            }
            let entity = QuotaEntity { user, client_id };
            admin.alter_client_quotas(&entity, &ops).await?;
            eprintln!("quotas of {entity} updated");
        }
        QuotaCmd::Describe { entity } => {
            let (user, client_id) = entity.parts();
            let found = admin
                .describe_client_quotas(user.as_ref(), client_id.as_ref())
                .await?;
            match conn.output {
                Output::Json => {
                    let json: Vec<_> = found
                        .iter()
                        .map(|(e, values)| {
                            let name = |p: &Option<EntityName>| {
                                p.as_ref().map(|n| n.to_string())
                            };
                            serde_json::json!({
                                "user": name(&e.user),
                                "client_id": name(&e.client_id),
                                "quotas": values.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
                            })
                        })
                        .collect();
                    println!("{}", serde_json::Value::Array(json));
                }
                Output::Table => {
                    let mut rows = vec![vec![
                        "ENTITY".to_string(),
                        "KEY".to_string(),
                        "VALUE".to_string(),
                    ]];
                    for (e, values) in &found {
                        for (k, v) in values {
                            rows.push(vec![e.to_string(), k.clone(), v.to_string()]);
                        }
                    }
                    table(&rows);
                }
            }
        }
    }
    Ok(())
}
