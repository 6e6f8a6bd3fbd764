//! Shared by the PostgreSQL connector tests: a real PostgreSQL server ([`Postgres`]) made by
//! `initdb` in a temporary directory and run on a free loopback port, stopped when dropped,
//! and a single-node Strom broker in this process ([`Broker`]) for tests that go through
//! the Connect framework.
//!
//! initdb and postgres refuse to run as root, so as root the server runs as `nobody`. It is
//! started through `setpriv --pdeathsig KILL`: should the test process die without running
//! its destructors, the kernel kills the server too, so none is ever left behind. (The
//! signal follows the *thread* that started the server: start it on the test's own thread,
//! which outlives it.)
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to accept connections.
const STARTUP: Duration = Duration::from_secs(30);

/// The directory of PostgreSQL's server binaries: `$STROM_PG_BIN`, the newest
/// `/usr/lib/postgresql/<version>/bin`, or wherever `initdb` is on the `PATH`. Panics,
/// saying what to install, when there is none: the tests need a real server.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STROM_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if let Ok(initdb) = std::fs::canonicalize(dir.join("initdb")) {
            if let Some(parent) = initdb.parent() {
                if parent.join("postgres").exists() {
                    return parent.to_path_buf();
                }
            }
        }
    }
    panic!(
        "PostgreSQL's server binaries (initdb, postgres) were not found in /usr/lib/postgresql/*/bin \
         or on the PATH: install PostgreSQL (Debian: apt-get install postgresql) or set STROM_PG_BIN \
         to the directory holding initdb"
    );
}

/// The effective user id, from `/proc/self/status`.
fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The uid and gid of `nobody` (65534 when `/etc/passwd` does not say).
fn nobody() -> (u32, u32) {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.first() == Some(&"nobody") && f.len() > 3)
                    .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                    .flatten()
            })
        })
        .unwrap_or((65534, 65534))
}

/// A free loopback port (bound, then let go).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A PostgreSQL server of its own: superuser `postgres`, trust authentication, database
/// `postgres`, on 127.0.0.1 and a unix socket in its directory, `fsync` off. Stopped (an
/// immediate shutdown) when dropped; its directory is removed.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Runs a command as the server's user, dying with this process.
    wrap: Vec<String>,
    settings: Vec<(String, String)>,
    child: Option<Child>,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
}

impl Postgres {
    /// A new server with the default settings.
    pub fn start() -> Postgres {
        Postgres::start_with(&[])
    }

    /// A new server with these extra settings (`("wal_level", "logical")`).
    pub fn start_with(settings: &[(&str, &str)]) -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("strom-pg-")
            .tempdir()
            .unwrap();
        let mut wrap = vec!["setpriv".to_string()];
        if euid() == 0 {
            let (uid, gid) = nobody();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
            wrap.extend([
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
            ]);
        }
        wrap.extend(["--pdeathsig".into(), "KILL".into()]);
        let mut pg = Postgres {
            dir,
            bin,
            wrap,
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            port: 0,
        };
        let out = pg
            .command("initdb")
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(pg.data())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("running initdb ({}): {e}", pg.bin.display()));
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The port may be taken between finding it free and binding it: a few tries.
        for attempt in 0.. {
            pg.port = free_port();
            match pg.launch() {
                Ok(()) => break,
                Err(log) if attempt < 4 && log.contains("could not bind") => continue,
                Err(log) => panic!("PostgreSQL did not start:\n{log}"),
            }
        }
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// `program` of the server's binaries, run as the server's user in its directory.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(&self.wrap[0]);
        cmd.args(&self.wrap[1..])
            .arg(self.bin.join(program))
            .current_dir(self.dir.path())
            .env_remove("PGDATA")
            .env("LC_ALL", "C");
        cmd
    }

    /// Starts the server on `self.port` and waits until it accepts connections; the log
    /// when it does not.
    fn launch(&mut self) -> Result<(), String> {
        let log = File::create(self.log_path()).unwrap();
        let mut cmd = self.command("postgres");
        cmd.arg("-D").arg(self.data());
        let mut settings = vec![
            ("port".to_string(), self.port.to_string()),
            ("listen_addresses".into(), "127.0.0.1".into()),
            (
                "unix_socket_directories".into(),
                self.dir.path().display().to_string(),
            ),
            ("fsync".into(), "off".into()),
            ("full_page_writes".into(), "off".into()),
            ("max_connections".into(), "50".into()),
        ];
        settings.extend(self.settings.iter().cloned());
        for (k, v) in &settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting postgres: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("postgres exited ({status}):\n{}", self.log()));
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-t", "1", "-p"])
                .arg(self.port.to_string())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "postgres did not accept connections within {STARTUP:?}:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `connection.url` as Confluent's JDBC connectors take it.
    pub fn url(&self) -> String {
        format!("jdbc:postgresql://127.0.0.1:{}/postgres", self.port)
    }

    /// A libpq connection string.
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// A client of its own.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.conninfo(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.conninfo()));
        tokio::spawn(connection);
        client
    }

    /// Runs `sql` (statements separated by `;`), returning the rows of its last statement
    /// as text (`None` for NULL).
    pub async fn sql(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let client = self.client().await;
        let messages = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let mut rows = Vec::new();
        for m in messages {
            match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                tokio_postgres::SimpleQueryMessage::CommandComplete(_) => {}
                _ => {}
            }
        }
        rows
    }

    /// Ends every session but those of the caller (`pg_terminate_backend`): what a
    /// connection loss looks like to a client.
    pub async fn terminate_sessions(&self) -> usize {
        let rows = self
            .sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
            )
            .await;
        rows.len()
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`: SIGQUIT, recovery
    /// on the next start); SIGKILL if it does not go within ten seconds.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-QUIT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops the server and starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(log) = self.launch() {
            panic!("PostgreSQL did not restart:\n{log}");
        }
    }

    /// Whether the server is running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Its directory (the data directory is `data` in it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A single-node Strom broker (broker and controller) in this process, on a free loopback
/// port with its logs in a temporary directory. It needs a multi-threaded tokio runtime
/// and runs until the runtime ends.
pub struct Broker {
    /// host:port.
    pub addr: String,
    _node: strom_broker::embedded::Embedded,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Starts one, waiting until it answers metadata requests.
    pub async fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let node = strom_broker::embedded::Embedded::start(dir.path(), &[])
            .await
            .unwrap();
        Broker {
            addr: node.addr.clone(),
            _node: node,
            _dir: dir,
        }
    }
}
