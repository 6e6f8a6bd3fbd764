//! The native producer's idempotence against the real broker, through a relay that drops
//! every 7th response after the broker has acted on its request and cuts the connection:
//! every send must still succeed, and each partition must hold each record exactly once, in
//! send order, with five requests in flight per partition.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::Server;
use strom_client::{
    Admin, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, StartAt,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Relays client connections to `upstream`; while `cut_every` is not 0, every
/// `cut_every`-th response frame (counted over all connections) is swallowed and both sides
/// are closed.
async fn relay(
    listener: TcpListener,
    upstream: String,
    cut_every: Arc<AtomicUsize>,
    cuts: Arc<AtomicUsize>,
) {
    let frames = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let Ok(server) = TcpStream::connect(&upstream).await else {
            return;
        };
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let up = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut cr, &mut sw).await;
        });
        let frames = frames.clone();
        let cuts = cuts.clone();
        let cut_every = cut_every.clone();
        tokio::spawn(async move {
            while let Ok(size) = sr.read_i32().await {
                let mut body = vec![0u8; size.max(0) as usize];
                if sr.read_exact(&mut body).await.is_err() {
                    break;
                }
                let n = frames.fetch_add(1, Ordering::Relaxed) + 1;
                let every = cut_every.load(Ordering::Relaxed);
                if every > 0 && n.is_multiple_of(every) {
                    cuts.fetch_add(1, Ordering::Relaxed);
                    break; // the broker acted; the client never hears of it
                }
                if cw.write_all(&size.to_be_bytes()).await.is_err()
                    || cw.write_all(&body).await.is_err()
                {
                    break;
                }
            }
            up.abort();
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_lost_responses_write_each_record_once_in_order() {
    // RUST_LOG=strom_client=debug shows each retry when this needs diagnosing.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = listener.local_addr().unwrap().to_string();
    let advertised = format!("advertised.listeners=PLAINTEXT://{relay_addr}");
    let s = Server::start(dir.path(), &[&advertised]);
    let admin = Admin::new(vec![s.addr.clone()], "t", Duration::from_secs(10));
    admin.create_topic("exact", 3, 1, &[]).await.unwrap();
    let cuts = Arc::new(AtomicUsize::new(0));
    let cut_every = Arc::new(AtomicUsize::new(7));
    tokio::spawn(relay(
        listener,
        s.addr.clone(),
        cut_every.clone(),
        cuts.clone(),
    ));

    let mut config = ProducerConfig::default();
    for (k, v) in [
        ("bootstrap.servers", relay_addr.as_str()),
        ("linger.ms", "2"),
        ("batch.size", "2000"),
        ("max.in.flight.requests.per.connection", "5"),
        ("retry.backoff.ms", "10"),
        ("request.timeout.ms", "3000"),
        ("enable.idempotence", "true"),
    ] {
        config.set(k, v).unwrap();
    }
    let p = Producer::new(config);
    let mut acks = Vec::new();
    for i in 0..3000u32 {
        let record = ProducerRecord {
            topic: "exact".into(),
            key: Some(Bytes::from(format!("key-{}", i % 31))),
            value: Some(Bytes::from(format!("{i:06}-{}", "x".repeat(40)))),
            ..Default::default()
        };
        acks.push(p.send(record).await.unwrap());
    }
    p.flush().await;
    for a in acks {
        a.await.expect("every record delivered despite the cuts");
    }
    assert!(
        cuts.load(Ordering::Relaxed) >= 3,
        "the relay cut connections"
    );
    cut_every.store(0, Ordering::Relaxed);

    // Read back directly from the broker.
    let mut c = Consumer::new(ConsumerConfig {
        bootstrap_servers: vec![s.addr.clone()],
        ..Default::default()
    });
    c.assign(
        &(0..3)
            .map(|p| ("exact".to_string(), p, StartAt::Earliest))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let mut per_partition: Vec<Vec<u32>> = vec![Vec::new(); 3];
    let mut total = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while total < 3000 && std::time::Instant::now() < deadline {
        for r in c.poll().await.unwrap() {
            let v = String::from_utf8_lossy(r.value.as_deref().unwrap()).into_owned();
            per_partition[r.partition as usize].push(v[..6].parse().unwrap());
            total += 1;
        }
    }
    // Nothing more (no duplicates past the 3000).
    for _ in 0..3 {
        total += c.poll().await.unwrap().len();
    }
    assert_eq!(total, 3000, "each record exactly once");
    for (p, seen) in per_partition.iter().enumerate() {
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, &sorted, "partition {p} in send order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_does_not_block_the_partition() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let admin = Admin::new(vec![s.addr.clone()], "t", Duration::from_secs(10));
    admin
        .create_topic(
            "small",
            1,
            1,
            &[("max.message.bytes".into(), "10000".into())],
        )
        .await
        .unwrap();
    let mut config = ProducerConfig::default();
    for (k, v) in [
        ("bootstrap.servers", s.addr.as_str()),
        ("linger.ms", "20"),
        ("batch.size", "1000"),
        ("delivery.timeout.ms", "5000"),
    ] {
        config.set(k, v).unwrap();
    }
    let p = Producer::new(config);
    let record = |v: Vec<u8>| ProducerRecord {
        topic: "small".into(),
        partition: Some(0),
        value: Some(Bytes::from(v)),
        ..Default::default()
    };
    let a = p.send(record(b"a".to_vec())).await.unwrap();
    let big = p.send(record(vec![b'x'; 50_000])).await.unwrap();
    let c = p.send(record(b"c".to_vec())).await.unwrap();
    p.flush().await;
    assert_eq!(a.await.unwrap().offset, 0);
    let e = big.await.unwrap_err();
    assert!(e.to_string().contains("TOO_LARGE"), "{e}");
    // The refused batch's sequence numbers must not leave a gap that stalls the rest.
    assert_eq!(c.await.expect("the next batch still lands").offset, 1);
    let d = p.send(record(b"d".to_vec())).await.unwrap();
    p.flush().await;
    assert_eq!(d.await.unwrap().offset, 2);
}
