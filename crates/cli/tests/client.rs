//! Strom's native client (`crates/client`) against the real broker: version negotiation,
//! pipelined requests answered to the right caller, typed Kafka errors, and keyed records
//! landing on the partition Kafka's partitioner picks.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::Server;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, FetchRequest, MetadataRequest, ProduceRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_client::{partition_for_key, ClientError, Connection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_pipelining_errors_and_key_placement() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let conn = Connection::connect(&s.addr, "client-test", Duration::from_secs(10))
        .await
        .unwrap();
    // The highest version both sides speak.
    assert_eq!(conn.version::<FetchRequest>().unwrap(), 16);
    assert_eq!(conn.version::<ProduceRequest>().unwrap(), 12);
    assert!(conn.version::<ApiVersionsRequest>().unwrap() >= 3);

    let create = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("keyed")))
            .with_num_partitions(7)
            .with_replication_factor(1)]);
    let r = conn.send(&create).await.unwrap();
    assert_eq!(r.topics[0].error_code, 0);
    let again = conn.send(&create).await.unwrap();
    let e = ClientError::kafka(again.topics[0].error_code);
    assert_eq!(e.to_string(), "broker error TOPIC_ALREADY_EXISTS (36)");

    // 200 requests in flight on one connection, each answered to its own caller.
    let metadata = |all: bool| {
        if all {
            MetadataRequest::default().with_topics(None)
        } else {
            MetadataRequest::default().with_topics(Some(vec![]))
        }
    };
    let futures = (0..200).map(|i| {
        let conn = &conn;
        async move { (i, conn.send(&metadata(i % 2 == 0)).await.unwrap()) }
    });
    for (i, r) in futures_util::future::join_all(futures).await {
        let expected = if i % 2 == 0 { 1 } else { 0 };
        assert_eq!(
            r.topics.len(),
            expected,
            "response {i} went to its own request"
        );
    }

    // Keyed records: the client picks Kafka's partition; the broker stores them there.
    let key = b"user-42";
    let p = partition_for_key(key, 7);
    let mut batch =
        strom_types::record::BatchBuilder::new(strom_types::compression::Compression::None);
    batch.append(0, Some(key), Some(b"v"), &[]);
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            kafka_protocol::messages::produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("keyed")))
                .with_partition_data(vec![
                    kafka_protocol::messages::produce_request::PartitionProduceData::default()
                        .with_index(p)
                        .with_records(Some(bytes::Bytes::from(batch.build(0).unwrap()))),
                ]),
        ]);
    let r = conn.send(&produce).await.unwrap();
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(r.responses[0].partition_responses[0].index, p);

    // The broker going away fails what waits, with a typed error.
    drop(s);
    let err = conn.send(&metadata(true)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Closed | ClientError::Io { .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_batches_compresses_keeps_order_and_kcat_reads_it_back() {
    use strom_client::{Producer, ProducerConfig, ProducerRecord};
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let mut config = ProducerConfig::default();
    for (k, v) in [
        ("bootstrap.servers", s.addr.as_str()),
        ("compression.type", "lz4"),
        ("linger.ms", "10"),
        ("batch.size", "4096"),
        ("acks", "all"),
    ] {
        config.set(k, v).unwrap();
    }
    assert!(config.set("linger.ms", "soon").is_err());
    assert!(config.set("no.such.config", "1").is_err());
    let conn = Connection::connect(&s.addr, "setup", Duration::from_secs(10))
        .await
        .unwrap();
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("prod")))
            .with_num_partitions(5)
            .with_replication_factor(1)]);
    assert_eq!(conn.send(&create).await.unwrap().topics[0].error_code, 0);

    let producer = Producer::new(config);
    let mut pending = Vec::new();
    for i in 0..3000 {
        let key = format!("key-{}", i % 97);
        let record = ProducerRecord {
            topic: "prod".into(),
            key: Some(bytes::Bytes::from(key.clone())),
            value: Some(bytes::Bytes::from(format!("value-{i}"))),
            headers: vec![("h".into(), Some(bytes::Bytes::from_static(b"1")))],
            ..Default::default()
        };
        pending.push((key, i, producer.send(record).await.unwrap()));
    }
    producer.flush().await;
    let mut last: std::collections::HashMap<i32, i64> = std::collections::HashMap::new();
    let mut per_partition = vec![0i64; 5];
    for (key, i, fut) in pending {
        let md = fut.await.unwrap();
        assert_eq!(
            md.partition,
            partition_for_key(key.as_bytes(), 5),
            "record {i}"
        );
        // Offsets follow send order within a partition, with no gaps.
        let prev = last.insert(md.partition, md.offset);
        assert_eq!(md.offset, prev.map_or(0, |p| p + 1), "record {i}");
        per_partition[md.partition as usize] += 1;
    }
    // Keyless records stick to a partition per batch, so they do not all land in one.
    let mut keyless = Vec::new();
    for i in 0..2000 {
        let record = ProducerRecord {
            topic: "prod".into(),
            value: Some(bytes::Bytes::from(vec![b'x'; 100 + i % 7])),
            ..Default::default()
        };
        keyless.push(producer.send(record).await.unwrap());
    }
    producer.flush().await;
    let mut used = std::collections::HashSet::new();
    for f in keyless {
        let md = f.await.unwrap();
        used.insert(md.partition);
        per_partition[md.partition as usize] += 1;
    }
    assert!(used.len() > 1, "sticky partitions move on after each batch");
    producer.close().await;

    // kcat (librdkafka) reads back what Strom's producer wrote: counts, keys and values.
    let out = Command::new("kcat")
        .args([
            "-b",
            &s.addr,
            "-C",
            "-t",
            "prod",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%p %k %s\n",
        ])
        .output()
        .expect("kcat is installed by scripts/test");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts = vec![0i64; 5];
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let p: usize = parts.next().unwrap().parse().unwrap();
        counts[p] += 1;
        let key = parts.next().unwrap();
        if let Some(n) = key.strip_prefix("key-") {
            assert_eq!(partition_for_key(key.as_bytes(), 5) as usize, p);
            assert!(n.parse::<u32>().unwrap() < 97);
            assert!(parts.next().unwrap().starts_with("value-"));
        }
    }
    assert_eq!(counts, per_partition);
    assert_eq!(counts.iter().sum::<i64>(), 5000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_reads_what_kcat_wrote_from_any_starting_point() {
    use std::io::Write;
    use strom_client::consumer::{Consumer, ConsumerConfig, StartAt};
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    // kcat (librdkafka) writes 300 keyed records with headers, zstd-compressed.
    let mut kcat = Command::new("kcat")
        .args([
            "-b", &s.addr, "-P", "-t", "cons", "-p", "0", "-K", ":", "-z", "zstd", "-H", "h=1",
            "-H", "h=2",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("kcat is installed by scripts/test");
    {
        let stdin = kcat.stdin.as_mut().unwrap();
        for i in 0..300 {
            writeln!(stdin, "k{i}:v{i}").unwrap();
        }
    }
    assert!(kcat.wait().unwrap().success());

    let mut config = ConsumerConfig::default();
    config.set("bootstrap.servers", &s.addr).unwrap();
    config.set("fetch.max.wait.ms", "100").unwrap();
    config.set("max.partition.fetch.bytes", "1024").unwrap();
    config.set("auto.offset.reset", "earliest").unwrap();
    let mut c = Consumer::new(config);
    c.assign(&[("cons".into(), 0, StartAt::Earliest)])
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 300 {
        got.extend(c.poll().await.unwrap());
    }
    assert_eq!(got.len(), 300);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
        assert_eq!(r.value.as_deref(), Some(format!("v{i}").as_bytes()));
        assert_eq!(r.headers.len(), 2, "duplicate header keys kept");
    }
    assert_eq!(c.position("cons", 0), Some(300));

    // Latest: nothing until something new arrives; an explicit offset; a timestamp.
    c.seek("cons", 0, StartAt::Latest).await.unwrap();
    assert!(c.poll().await.unwrap().is_empty());
    c.seek("cons", 0, StartAt::Offset(250)).await.unwrap();
    let mut tail = Vec::new();
    while tail.len() < 50 {
        tail.extend(c.poll().await.unwrap());
    }
    assert_eq!(tail[0].offset, 250);
    let ts = got[120].timestamp;
    let at = c.resolve("cons", 0, StartAt::Timestamp(ts)).await.unwrap();
    assert!(at <= 120 && got[at as usize].timestamp >= ts);
    let future = c
        .resolve("cons", 0, StartAt::Timestamp(i64::MAX / 2))
        .await
        .unwrap();
    assert_eq!(future, 300, "no record that late: the end");

    // Out of range: auto.offset.reset=earliest takes it back to the start.
    c.seek("cons", 0, StartAt::Offset(10_000)).await.unwrap();
    let mut again = Vec::new();
    while again.is_empty() {
        again.extend(c.poll().await.unwrap());
    }
    assert_eq!(again[0].offset, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_client_manages_topics_configs_records_and_describes_the_cluster() {
    use strom_client::Admin;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let admin = Admin::new(vec![s.addr.clone()], "admin-test", Duration::from_secs(10));
    admin
        .create_topic("adm", 2, 1, &[("retention.ms".into(), "3600000".into())])
        .await
        .unwrap();
    let e = admin.create_topic("adm", 2, 1, &[]).await.unwrap_err();
    // The code's name, and the broker's own words.
    assert_eq!(
        e.to_string(),
        "broker error TOPIC_ALREADY_EXISTS (36): topic 'adm' already exists"
    );
    let e = admin.create_topic("rf3", 1, 3, &[]).await.unwrap_err();
    assert!(e.to_string().contains("INVALID_REPLICATION_FACTOR"), "{e}");

    admin.add_partitions("adm", 4).await.unwrap();
    let d = admin.describe_topics(&["adm".into()]).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].partitions.len(), 4);
    assert_eq!(
        (d[0].partitions[3].leader, d[0].partitions[3].isr.clone()),
        (1, vec![1])
    );

    let configs = admin.describe_topic_configs("adm").await.unwrap();
    let retention = configs.iter().find(|c| c.name == "retention.ms").unwrap();
    assert_eq!(
        (retention.value.as_deref(), retention.source),
        (Some("3600000"), 1)
    );
    admin
        .alter_topic_configs(
            "adm",
            &[
                ("retention.ms".into(), None),
                ("segment.bytes".into(), Some("1048576".into())),
            ],
        )
        .await
        .unwrap();
    let configs = admin.describe_topic_configs("adm").await.unwrap();
    let get = |n: &str| configs.iter().find(|c| c.name == n).unwrap().clone();
    assert_eq!(get("retention.ms").source, 5, "back to the default");
    assert_eq!(get("segment.bytes").value.as_deref(), Some("1048576"));

    // Records: produce ten with the native producer, delete below 6.
    let mut config = strom_client::ProducerConfig::default();
    config.set("bootstrap.servers", &s.addr).unwrap();
    let p = strom_client::Producer::new(config);
    let mut fs = Vec::new();
    for _ in 0..10 {
        let r = strom_client::ProducerRecord {
            topic: "adm".into(),
            partition: Some(0),
            value: Some(bytes::Bytes::from_static(b"x")),
            ..Default::default()
        };
        fs.push(p.send(r).await.unwrap());
    }
    p.flush().await;
    for f in fs {
        f.await.unwrap();
    }
    assert_eq!(admin.delete_records("adm", 0, 6).await.unwrap(), 6);

    let c = admin.describe_cluster().await.unwrap();
    assert_eq!(c.controller, 1);
    assert_eq!(c.cluster_id.len(), 22);
    assert_eq!(c.brokers, vec![(1, s.addr.clone())]);

    admin.delete_topic("adm").await.unwrap();
    let e = admin.delete_topic("adm").await.unwrap_err();
    assert!(e.to_string().contains("UNKNOWN_TOPIC_OR_PARTITION"), "{e}");
}

/// Sends every record to the partition named by its value's first byte.
struct ByFirstByte;

impl strom_client::Partitioner for ByFirstByte {
    fn partition(&self, _: &str, _: Option<&[u8]>, value: Option<&[u8]>, count: i32) -> i32 {
        value
            .and_then(|v| v.first())
            .map_or(0, |b| i32::from(b - b'0'))
            % (count + 1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_partitioner_decides_and_an_explicit_partition_wins() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let admin = strom_client::Admin::new(vec![s.addr.clone()], "t", Duration::from_secs(10));
    admin.create_topic("custom", 3, 1, &[]).await.unwrap();
    let mut config = strom_client::ProducerConfig::default();
    config.set("bootstrap.servers", &s.addr).unwrap();
    let p = strom_client::Producer::with_partitioner(config, std::sync::Arc::new(ByFirstByte));
    let send = |value: &'static [u8], partition: Option<i32>| {
        let p = &p;
        async move {
            let r = strom_client::ProducerRecord {
                topic: "custom".into(),
                key: Some(bytes::Bytes::from_static(b"same-key")),
                value: Some(bytes::Bytes::from_static(value)),
                partition,
                ..Default::default()
            };
            p.send(r).await
        }
    };
    let two = send(b"2x", None).await.unwrap();
    let one = send(b"1x", None).await.unwrap();
    let explicit = send(b"2x", Some(0)).await.unwrap();
    // The partitioner says 3 of 3 partitions: refused before anything is queued.
    let Err(e) = send(b"3x", None).await else {
        panic!("partition 3 of 3 accepted")
    };
    assert!(e.to_string().contains("UNKNOWN_TOPIC_OR_PARTITION"), "{e}");
    p.flush().await;
    assert_eq!(two.await.unwrap().partition, 2);
    assert_eq!(one.await.unwrap().partition, 1);
    assert_eq!(explicit.await.unwrap().partition, 0);
}
