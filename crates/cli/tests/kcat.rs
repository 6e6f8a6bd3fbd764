//! Black-box tests: the real `strom server` binary on a free port, driven by Debian's kcat
//! (librdkafka 2.0.2) and by raw sockets for hostile input.

mod common;

use common::Server;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn kcat(args: &[&str], input: &str) -> String {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed (scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn consume(addr: &str, topic: &str) -> Vec<String> {
    kcat(
        &[
            "-b",
            addr,
            "-C",
            "-t",
            topic,
            "-e",
            "-o",
            "beginning",
            "-q",
            "-f",
            "%p %o %k=%s\n",
        ],
        "",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn kcat_produces_and_consumes_every_codec_with_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let input: String = (0..50)
            .map(|i| format!("key{i}:{codec}-value-{i}\n"))
            .collect();
        kcat(
            &[
                "-b", &s.addr, "-P", "-t", "codecs", "-K:", "-z", codec, "-X", "acks=all",
            ],
            &input,
        );
    }
    let got = consume(&s.addr, "codecs");
    assert_eq!(got.len(), 250);
    assert_eq!(got[0], "0 0 key0=none-value-0");
    assert_eq!(got[249], "0 249 key49=zstd-value-49");
    // Topic auto-created with num.partitions (1), visible in metadata.
    let meta = kcat(&["-b", &s.addr, "-L", "-t", "codecs"], "");
    assert!(
        meta.contains("topic \"codecs\" with 1 partitions"),
        "{meta}"
    );
    s.stop();
}

#[test]
fn data_survives_a_graceful_restart_and_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["num.partitions=3"]);
    let input: String = (0..300).map(|i| format!("k{i}:v{i}\n")).collect();
    kcat(
        &[
            "-b", &s.addr, "-P", "-t", "durable", "-K:", "-X", "acks=all",
        ],
        &input,
    );
    s.stop();
    assert!(dir.path().join(".kafka_cleanshutdown").exists());
    let s = Server::start(dir.path(), &[]);
    assert_eq!(consume(&s.addr, "durable").len(), 300);
    // Every record kcat had acknowledged (it exits 0 only when all were) survives SIGKILL.
    kcat(
        &[
            "-b", &s.addr, "-P", "-t", "durable", "-K:", "-X", "acks=all",
        ],
        &input,
    );
    s.kill9();
    let s = Server::start(dir.path(), &[]);
    let got = consume(&s.addr, "durable");
    assert_eq!(got.len(), 600);
    for i in 0..300 {
        let want = format!("k{i}=v{i}");
        assert_eq!(
            got.iter()
                .filter(|l| l.ends_with(&format!(" {want}")))
                .count(),
            2,
            "{want}"
        );
    }
    s.stop();
}

#[test]
fn offsets_by_timestamp_earliest_and_latest() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    kcat(&["-b", &s.addr, "-P", "-t", "times"], "a\nb\nc\n");
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1;
    std::thread::sleep(Duration::from_millis(20));
    kcat(&["-b", &s.addr, "-P", "-t", "times"], "d\ne\n");
    let q = |spec: &str| kcat(&["-b", &s.addr, "-Q", "-t", &format!("times:0:{spec}")], "");
    assert!(q("-2").contains("offset 0"), "{}", q("-2"));
    assert!(q("-1").contains("offset 5"), "{}", q("-1"));
    assert!(
        q(&later.to_string()).contains("offset 3"),
        "{}",
        q(&later.to_string())
    );
    s.stop();
}

fn raw(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    out
}

#[test]
fn hostile_input_closes_one_connection_and_the_broker_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    kcat(&["-b", &s.addr, "-P", "-t", "alive"], "one\n");
    let started = Instant::now();
    // A frame length of 2^31-1: closed without reading or allocating it.
    assert!(raw(&s.addr, &[0x7f, 0xff, 0xff, 0xff, 0, 0]).is_empty());
    // Garbage, a truncated frame, an unknown API key, a header cut short.
    assert!(raw(&s.addr, b"GET / HTTP/1.1\r\n\r\n").is_empty());
    assert!(raw(&s.addr, &[0, 0, 0, 50, 0, 3, 0, 4]).is_empty());
    assert!(raw(
        &s.addr,
        &[0, 0, 0, 10, 0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff]
    )
    .is_empty());
    assert!(raw(&s.addr, &[0, 0, 0, 3, 0, 3, 0]).is_empty());
    // DEPENDENCIES.md's attack: Metadata v4 claiming i32::MAX topics in a 4-byte body.
    let mut attack = vec![0, 3, 0, 4, 0, 0, 0, 7, 0xff, 0xff];
    attack.extend_from_slice(&i32::MAX.to_be_bytes());
    let mut framed = (attack.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&attack);
    assert!(raw(&s.addr, &framed).is_empty());
    assert!(started.elapsed() < Duration::from_secs(20));
    // Everyone else is still served.
    kcat(&["-b", &s.addr, "-P", "-t", "alive"], "two\n");
    assert_eq!(consume(&s.addr, "alive").len(), 2);
    s.stop();
}

#[test]
fn an_invalid_config_value_stops_startup_naming_the_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["server", "--override", "num.partitions=many"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("num.partitions"));
}
