//! A real `kill -9`: a child process appends and reports each acknowledged offset; the
//! parent kills it with SIGKILL mid-stream, reopens the logs and finds every acknowledged
//! record, byte for byte, and a log that goes on appending.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::*;
use strom_storage::{AppendOrigin, LogConfig, LogManager, LogManagerConfig};
use strom_types::compression::Compression;
use strom_types::record::BatchBuilder;
use strom_types::TopicPartition;

const DIR_ENV: &str = "STROM_KILL_TEST_DIR";

fn manager(dir: &Path) -> Arc<LogManager> {
    let mut config = LogManagerConfig::new(vec![dir.to_path_buf()]);
    config.checkpoint_interval_ms = 30;
    config.flush_check_interval_ms = 10;
    LogManager::open(config).unwrap()
}

fn log_config() -> LogConfig {
    let mut c = LogConfig::default();
    c.segment_bytes = 64 * 1024;
    c.flush_ms = 25; // some data flushed (and checkpointed), some only in the page cache
    c
}

fn value_for(offset: i64) -> Vec<u8> {
    format!("value-of-{offset:08}-").repeat(8).into_bytes()
}

/// The child: appends forever to two partitions, printing `ack <partition> <offset>` once each
/// append returned. Run only by the parent test (it is ignored otherwise).
#[test]
#[ignore = "run as a child process by sigkill_loses_no_acknowledged_record"]
fn kill_test_child_writer() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let m = manager(Path::new(&dir));
    m.start_background();
    let logs: Vec<_> = (0..2)
        .map(|p| {
            m.get_or_create(&TopicPartition::new("killed", p), log_config())
                .unwrap()
        })
        .collect();
    let mut out = std::io::stdout().lock();
    for i in 0.. {
        let log = &logs[i % 2];
        let next = log.log_end_offset();
        let mut b = BatchBuilder::new(if i % 3 == 0 {
            Compression::Lz4
        } else {
            Compression::None
        });
        for o in next..next + 4 {
            b.append(1_700_000_000_000, Some(b"key"), Some(&value_for(o)), &[]);
        }
        let mut bytes = b.build(0).unwrap();
        let info = log
            .append_as_leader(&mut bytes, 0, AppendOrigin::Client, 1_700_000_000_000)
            .unwrap();
        use std::io::Write;
        writeln!(out, "ack {} {}", i % 2, info.last_offset).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "kill_test_child_writer",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = [-1i64; 2];
    let mut lines = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let Some((p, o)) = line.strip_prefix("ack ").and_then(|l| l.split_once(' ')) else {
            continue;
        };
        let (p, o): (usize, i64) = (p.parse().unwrap(), o.parse().unwrap());
        acked[p] = o;
        lines += 1;
        if lines == 20_000 {
            child.kill().unwrap(); // SIGKILL
            break;
        }
    }
    child.wait().unwrap();
    assert_eq!(lines, 20_000, "the child stopped early");

    let m = manager(dir.path());
    for (p, &last) in acked.iter().enumerate() {
        let log = m.get(&TopicPartition::new("killed", p as i32)).unwrap();
        assert!(
            log.log_end_offset() > last,
            "acknowledged offset {last} lost"
        );
        let recs = read_all(&log);
        assert!(recs.len() as i64 > last);
        for r in &recs {
            assert_eq!(r.value.as_deref(), Some(value_for(r.offset).as_slice()));
        }
        assert!(log.segment_count() > 3, "the test spans several segments");
        let end = log.log_end_offset();
        let mut b = batch(1, 10, 1_700_000_000_000);
        let info = log
            .append_as_leader(&mut b, 0, AppendOrigin::Client, 1_700_000_000_000)
            .unwrap();
        assert_eq!(info.first_offset, end);
    }
    m.shutdown().unwrap();
}
