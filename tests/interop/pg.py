"""A real PostgreSQL server for the Connect tests: Debian's `postgresql` binaries, started in
a temporary directory on a free loopback port and stopped (immediately, leaving nothing
behind) when the test ends. initdb refuses to run as root, so as root the server runs as the
unprivileged `nobody`, in a directory of its own outside pytest's root-only temp tree."""
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time


def _bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path:
        return path
    raise AssertionError(f"PostgreSQL's {name} is not installed (scripts/test installs postgresql)")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgreSQL:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="strom-pg-")
        self.as_user = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "nobody", "nogroup")
            self.as_user = ["runuser", "-u", "nobody", "--"]
        self.data = os.path.join(self.dir, "data")
        self.port = _free_port()
        self._run(_bin("initdb"), "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        self.proc = subprocess.Popen(
            self.as_user + [_bin("postgres"), "-D", self.data, "-p", str(self.port),
                            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
                            "-c", "fsync=off", "-c", "wal_level=logical"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while self._ready() != 0:
            if self.proc.poll() is not None or time.time() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
                self.stop()
                raise AssertionError(f"PostgreSQL did not start: {err}")
            time.sleep(0.1)
        self.url = f"jdbc:postgresql://127.0.0.1:{self.port}/postgres"

    def _run(self, *args):
        subprocess.run(self.as_user + list(args), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    def _ready(self):
        return subprocess.run([_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"]).returncode

    def sql(self, statement):
        """Runs one statement with psql; the rows, each a list of column texts."""
        out = subprocess.run([_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                              "-d", "postgres", "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                              "-c", statement], check=True, capture_output=True, text=True).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
