//! `strom txn list|describe|producers|abort`: transactions, as kafka-transactions.sh shows
//! and manages them. `abort` ends a transaction left hanging in a partition (its producer
//! and coordinator gone) by writing its ABORT marker at the partition's leader.

use clap::Subcommand;

use crate::tools::{table, Conn, Output};

/// `strom txn ...`.
#[derive(Debug, Subcommand)]
pub enum TxnCmd {
    /// List transactional ids with their producer id and state.
    ///
    /// Examples:
    ///   strom txn list
    ///   strom txn list --state Ongoing --output json
    ///   strom txn list --pattern 'orders-.*'
    #[command(verbatim_doc_comment)]
    List {
        /// Only ids in this state (Empty, Ongoing, PrepareCommit, PrepareAbort,
        /// CompleteCommit, CompleteAbort); repeatable.
        #[arg(long = "state")]
        states: Vec<String>,
        /// Only ids this regular expression matches whole.
        #[arg(long)]
        pattern: Option<String>,
    },
    /// Describe transactional ids: state, producer, timeout, partitions of the open
    /// transaction.
    ///
    /// Example: strom txn describe orders-etl
    #[command(verbatim_doc_comment)]
    Describe {
        /// Transactional ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// The producers a partition's leader knows, with the first offset of any transaction
    /// they have open there.
    ///
    /// Example: strom txn producers orders 0
    #[command(verbatim_doc_comment)]
    Producers {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// Abort the transaction that began at START_OFFSET in a partition and hangs there.
    ///
    /// Example: strom txn abort --topic orders --partition 0 --start-offset 1200
    #[command(verbatim_doc_comment)]
    Abort {
        /// Topic.
        #[arg(long)]
        topic: String,
        /// Partition.
        #[arg(long)]
        partition: i32,
        /// First offset of the hanging transaction (see `strom txn producers`).
        #[arg(long)]
        start_offset: i64,
    },
}

/// Runs `strom txn ...`.
pub async fn txn(conn: &Conn, cmd: TxnCmd) -> anyhow::Result<()> {
    let admin = conn.admin();
    match cmd {
        TxnCmd::List { states, pattern } => {
            let txns = admin.list_transactions(&states, pattern.as_deref()).await?;
            match conn.output {
                Output::Json => println!(
                    "{}",
                    serde_json::json!(txns
                        .iter()
                        .map(|t| serde_json::json!({
                            "transactional_id": t.transactional_id,
                            "producer_id": t.producer_id, "state": t.state,
                        }))
                        .collect::<Vec<_>>())
                ),
                Output::Table => {
                    let mut rows = vec![["TRANSACTIONAL ID", "PRODUCER ID", "STATE"]
                        .map(String::from)
                        .to_vec()];
                    rows.extend(txns.iter().map(|t| {
                        vec![
                            t.transactional_id.clone(),
                            t.producer_id.to_string(),
                            t.state.clone(),
                        ]
                    }));
                    table(&rows);
                }
            }
        }
        TxnCmd::Describe { ids } => {
            let mut out = Vec::new();
            for id in &ids {
                out.push(admin.describe_transaction(id).await?);
            }
            match conn.output {
                Output::Json => println!(
                    "{}",
                    serde_json::json!(out
                        .iter()
                        .map(|d| serde_json::json!({
                            "transactional_id": d.transactional_id, "coordinator": d.coordinator,
                            "state": d.state, "producer_id": d.producer_id,
                            "producer_epoch": d.producer_epoch, "timeout_ms": d.timeout_ms,
                            "start_ms": d.start_ms,
                            "partitions": d.partitions.iter()
                                .map(|(t, p)| format!("{t}-{p}")).collect::<Vec<_>>(),
                        }))
                        .collect::<Vec<_>>())
                ),
                Output::Table => {
                    let mut rows = vec![[
                        "TRANSACTIONAL ID",
                        "COORDINATOR",
                        "STATE",
                        "PRODUCER ID",
                        "EPOCH",
                        "TIMEOUT MS",
                        "START MS",
                        "PARTITIONS",
                    ]
                    .map(String::from)
                    .to_vec()];
                    rows.extend(out.iter().map(|d| {
                        let parts: Vec<String> = d
                            .partitions
                            .iter()
                            .map(|(t, p)| format!("{t}-{p}"))
                            .collect();
                        vec![
                            d.transactional_id.clone(),
                            d.coordinator.to_string(),
                            d.state.clone(),
                            d.producer_id.to_string(),
                            d.producer_epoch.to_string(),
                            d.timeout_ms.to_string(),
                            d.start_ms.to_string(),
                            if parts.is_empty() {
                                "-".into()
                            } else {
                                parts.join(",")
                            },
                        ]
                    }));
                    table(&rows);
                }
            }
        }
        TxnCmd::Producers { topic, partition } => {
            let producers = admin.describe_producers(&topic, partition).await?;
            match conn.output {
                Output::Json => println!(
                    "{}",
                    serde_json::json!(producers
                        .iter()
                        .map(|p| serde_json::json!({
                            "producer_id": p.producer_id, "producer_epoch": p.producer_epoch,
                            "last_sequence": p.last_sequence, "last_timestamp": p.last_timestamp,
                            "coordinator_epoch": p.coordinator_epoch,
                            "current_txn_start_offset": p.current_txn_start_offset,
                        }))
                        .collect::<Vec<_>>())
                ),
                Output::Table => {
                    let mut rows = vec![[
                        "PRODUCER ID",
                        "EPOCH",
                        "LAST SEQUENCE",
                        "LAST TIMESTAMP",
                        "COORDINATOR EPOCH",
                        "TXN START OFFSET",
                    ]
                    .map(String::from)
                    .to_vec()];
                    rows.extend(producers.iter().map(|p| {
                        vec![
                            p.producer_id.to_string(),
                            p.producer_epoch.to_string(),
                            p.last_sequence.to_string(),
                            p.last_timestamp.to_string(),
                            p.coordinator_epoch.to_string(),
                            if p.current_txn_start_offset < 0 {
                                "-".into()
                            } else {
                                p.current_txn_start_offset.to_string()
                            },
                        ]
                    }));
                    table(&rows);
                }
            }
        }
        TxnCmd::Abort {
            topic,
            partition,
            start_offset,
        } => {
            let pid = admin
                .abort_transaction(&topic, partition, start_offset)
                .await?;
            match conn.output {
                Output::Json => println!(
                    "{}",
                    serde_json::json!({"aborted": {"topic": topic, "partition": partition,
                        "start_offset": start_offset, "producer_id": pid}})
                ),
                Output::Table => println!(
                    "aborted the transaction of producer {pid} at {topic}-{partition} offset {start_offset}"
                ),
            }
        }
    }
    Ok(())
}
