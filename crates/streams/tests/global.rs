//! Global tables: stream-globaltable joins by a computed key on the test driver, and
//! against a real broker the bootstrap (the whole topic, every partition, is in the store
//! before the first stream record is processed), live updates, and a clean restart from
//! the global checkpoint.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{props, wait_until, Broker};
use strom_streams::{
    Consumed, KafkaStreams, Materialized, Produced, StreamsBuilder, StringSerde, TopologyTestDriver,
};

/// Orders (key: order id, value: "<product>:<qty>") joined with the `products` global
/// table by product id.
fn topology(left: bool) -> strom_streams::Topology {
    let b = StreamsBuilder::new();
    let products = b.global_table(
        "products",
        Consumed::with(StringSerde, StringSerde),
        Materialized::named("products-store"),
    );
    let orders = b.stream("orders", Consumed::with(StringSerde, StringSerde));
    let product_of = |_: &String, v: &String| v.split(':').next().unwrap_or("").to_string();
    let out = if left {
        orders.left_join_global(&products, product_of, |o, p| {
            format!("{o} {}", p.map(String::as_str).unwrap_or("?"))
        })
    } else {
        orders.join_global(&products, product_of, |o, p| format!("{o} {p}"))
    };
    out.to("enriched", Produced::with(StringSerde, StringSerde));
    b.build()
}

#[test]
fn a_stream_joins_a_global_table_by_a_computed_key() {
    let driver = TopologyTestDriver::new(topology(false), [("application.id", "g")]).unwrap();
    let products = driver.input_topic("products", StringSerde, StringSerde);
    let orders = driver.input_topic("orders", StringSerde, StringSerde);
    let out = driver.output_topic("enriched", StringSerde, StringSerde);
    products.pipe(&"p1".into(), &"apple".into(), 1).unwrap();
    orders.pipe(&"o1".into(), &"p1:3".into(), 10).unwrap();
    orders.pipe(&"o2".into(), &"p2:1".into(), 11).unwrap(); // no such product: dropped
    products
        .pipe(&"p1".into(), &"green apple".into(), 12)
        .unwrap();
    products.pipe(&"p2".into(), &"pear".into(), 12).unwrap();
    orders.pipe(&"o3".into(), &"p1:1".into(), 13).unwrap();
    orders.pipe(&"o4".into(), &"p2:2".into(), 14).unwrap();
    products.pipe_null(&"p2".into(), 15).unwrap();
    orders.pipe(&"o5".into(), &"p2:2".into(), 16).unwrap(); // deleted: dropped
    assert_eq!(
        out.read_records().unwrap(),
        vec![
            ("o1".into(), "p1:3 apple".into(), 10),
            ("o3".into(), "p1:1 green apple".into(), 13),
            ("o4".into(), "p2:2 pear".into(), 14),
        ]
    );
    let store = driver.key_value_store("products-store", StringSerde, StringSerde);
    assert_eq!(
        store.get(&"p1".into()).unwrap().as_deref(),
        Some("green apple")
    );
    assert_eq!(store.all().unwrap().len(), 1);
}

#[test]
fn a_left_join_keeps_records_without_a_match() {
    let driver = TopologyTestDriver::new(topology(true), [("application.id", "g")]).unwrap();
    let orders = driver.input_topic("orders", StringSerde, StringSerde);
    orders.pipe(&"o1".into(), &"p9:1".into(), 10).unwrap();
    let out = driver.output_topic("enriched", StringSerde, StringSerde);
    assert_eq!(
        out.read_key_values().unwrap(),
        vec![("o1".into(), "p9:1 ?".into())]
    );
}

#[test]
fn a_global_table_is_described_in_a_sub_topology_of_its_own() {
    let text = topology(false).describe().to_string();
    assert!(
        text.contains("Sub-topology: 0 for global store (will not generate tasks)"),
        "{text}"
    );
    assert!(
        text.contains("Processor: KTABLE-SOURCE-0000000001 (stores: [products-store])"),
        "{text}"
    );
    // Kafka prints no blank line after a global store's sub-topology.
    assert!(
        text.contains("      <-- KSTREAM-SOURCE-0000000000\n  Sub-topology: 1\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_table_is_bootstrapped_kept_current_and_restored_from_its_checkpoint() {
    let broker = Broker::start().await;
    broker.create("products", 3).await;
    broker.create("orders", 2).await;
    broker.create("enriched", 2).await;
    let kv = |k: String, v: String| (Some(Bytes::from(k)), Some(Bytes::from(v)), 1);
    // Every partition of the global topic holds products before the application starts.
    let products: Vec<_> = (0..300)
        .map(|i| kv(format!("p{i}"), format!("name{i}")))
        .collect();
    broker.produce("products", &products).await;
    let orders: Vec<_> = (0..300)
        .map(|i| kv(format!("o{i}"), format!("p{i}:1")))
        .collect();
    broker.produce("orders", &orders).await;
    let state = tempfile::tempdir().unwrap();
    let mut p = props(&broker, "global-app");
    p.push(("state.dir".into(), state.path().display().to_string()));
    let mut streams = KafkaStreams::new(topology(false), p.clone()).unwrap();
    streams.start().unwrap();
    // Inner join: every order finds its product, so the bootstrap came first.
    let out = broker
        .read("enriched", 2, 300, Duration::from_secs(60), Duration::ZERO)
        .await;
    assert_eq!(out.len(), 300);
    // An update while running is seen by later records.
    broker
        .produce("products", &[kv("p0".into(), "renamed".into())])
        .await;
    let store = streams
        .store("products-store", StringSerde, StringSerde)
        .unwrap();
    wait_until(
        "the update reached the global store",
        Duration::from_secs(30),
        || store.get(&"p0".to_string()).unwrap().as_deref() == Some("renamed"),
    )
    .await;
    assert_eq!(store.all().unwrap().len(), 300);
    drop(store);
    broker
        .produce("orders", &[kv("o-late".into(), "p0:1".into())])
        .await;
    let out = broker
        .read("enriched", 2, 301, Duration::from_secs(60), Duration::ZERO)
        .await;
    let late = out
        .iter()
        .find(|r| r.key.as_deref() == Some(&b"o-late"[..]))
        .unwrap();
    assert_eq!(late.value.as_deref(), Some(&b"p0:1 renamed"[..]));
    streams.close().await;
    let checkpoint =
        std::fs::read_to_string(state.path().join("global-app/global/.checkpoint")).unwrap();
    assert!(checkpoint.starts_with("0\n3\nproducts 0 "), "{checkpoint}");

    // Restart on the same state directory: the store is as it was.
    let mut streams = KafkaStreams::new(topology(false), p).unwrap();
    streams.start().unwrap();
    wait_until("running again", Duration::from_secs(30), || {
        streams.state() == strom_streams::State::Running
    })
    .await;
    let store = streams
        .store("products-store", StringSerde, StringSerde)
        .unwrap();
    assert_eq!(store.all().unwrap().len(), 300);
    assert_eq!(
        store.get(&"p0".to_string()).unwrap().as_deref(),
        Some("renamed")
    );
    drop(store);
    streams.close().await;
}
