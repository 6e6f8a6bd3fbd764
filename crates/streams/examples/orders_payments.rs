//! A stream-stream join: orders meet their payments. Reads `orders` (key: order id,
//! value: a JSON order) and `payments` (key: order id, value: a JSON payment); an order
//! and a payment of the same order id at most 5 minutes apart (either way round) give a
//! JSON paid order on `paid-orders`. An order no payment joined within those 5 minutes
//! is written as it came to `unpaid-orders`, once its window has closed (a left join:
//! the join's stream time, the latest timestamp it has seen on either topic, must pass
//! the order's time plus 5 minutes). A payment more than 5 minutes away from its order
//! joins nothing.
//!
//! ```text
//! cargo run --release -p strom-streams --example orders_payments -- BOOTSTRAP [key=value ...]
//! ```
//!
//! Extra `key=value` arguments are Streams properties (`state.dir`,
//! `processing.guarantee=exactly_once_v2`, ...). Runs until interrupted (Ctrl-C or
//! SIGTERM), then closes cleanly: commits and checkpoints its stores.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use strom_streams::{
    Consumed, JoinWindows, Json, KafkaStreams, Produced, StreamJoined, StreamsBuilder, StringSerde,
    Topology,
};

/// The orders topic: key order id, value [`Order`].
pub const ORDERS: &str = "orders";
/// The payments topic: key order id, value [`Payment`].
pub const PAYMENTS: &str = "payments";
/// Orders joined with a payment: key order id, value [`PaidOrder`].
pub const PAID: &str = "paid-orders";
/// Orders no payment joined in time: key order id, value [`Order`].
pub const UNPAID: &str = "unpaid-orders";
/// How far apart an order and its payment may be.
pub const PAYMENT_WINDOW: Duration = Duration::from_secs(5 * 60);

/// An order, as JSON: `{"customer":"alice","amount_cents":2500}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub customer: String,
    pub amount_cents: u64,
}

/// A payment, as JSON: `{"amount_cents":2500,"method":"card"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub amount_cents: u64,
    pub method: String,
}

/// An order with its payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaidOrder {
    pub customer: String,
    pub amount_cents: u64,
    pub paid_cents: u64,
    pub method: String,
}

impl PaidOrder {
    fn of(order: &Order, payment: &Payment) -> PaidOrder {
        PaidOrder {
            customer: order.customer.clone(),
            amount_cents: order.amount_cents,
            paid_cents: payment.amount_cents,
            method: payment.method.clone(),
        }
    }
}

fn joined() -> StreamJoined<String, Order, Payment> {
    StreamJoined::with(StringSerde, Json::new(), Json::new())
}

/// The orders-payments topology.
pub fn topology() -> Topology {
    let builder = StreamsBuilder::new();
    let orders = builder.stream(ORDERS, Consumed::with(StringSerde, Json::<Order>::new()));
    let payments = builder.stream(
        PAYMENTS,
        Consumed::with(StringSerde, Json::<Payment>::new()),
    );
    let window = JoinWindows::of_time_difference_with_no_grace(PAYMENT_WINDOW);

    orders
        .join(
            &payments,
            PaidOrder::of,
            window,
            joined().with_name("paid").with_store_name("paid"),
        )
        .to(PAID, Produced::with(StringSerde, Json::new()));

    // A left join gives `None` for an order no payment joined, when its window closes;
    // joined orders are already on `paid-orders`.
    orders
        .left_join(
            &payments,
            |order: &Order, payment: Option<&Payment>| match payment {
                None => Some(order.clone()),
                Some(_) => None,
            },
            window,
            joined().with_name("unpaid").with_store_name("unpaid"),
        )
        .flat_map_values(|unpaid: Option<Order>| unpaid)
        .to(UNPAID, Produced::with(StringSerde, Json::new()));
    builder.build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "localhost:9092".into());
    let mut props = vec![
        (
            "application.id".to_string(),
            "streams-orders-payments".to_string(),
        ),
        ("bootstrap.servers".to_string(), bootstrap),
    ];
    for arg in args {
        let Some((k, v)) = arg.split_once('=') else {
            return Err(format!("expected key=value, got {arg}").into());
        };
        props.push((k.to_string(), v.to_string()));
    }

    let topology = topology();
    println!("{}", topology.describe());
    let mut streams = KafkaStreams::new(topology, props)?;
    streams.start()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    streams.close().await;
    Ok(())
}
