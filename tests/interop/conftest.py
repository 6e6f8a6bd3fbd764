"""Starts the real `strom server` binary for the interop tests (on a free port, in a temp dir)."""
import os
import signal
import subprocess

import pytest

STROM = os.environ.get("STROM_BIN", os.path.join(os.path.dirname(__file__), "../../target/release/strom"))


class Server:
    def __init__(self, data_dir, *overrides):
        args = [STROM, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                "--override", f"log.dirs={data_dir}"]
        for o in overrides:
            args += ["--override", o]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "RUST_LOG": "warn"}, text=True)
        line = self.proc.stdout.readline()
        self.addr = next(w for w in line.split() if w.startswith("127.0.0.1:")).rstrip(",")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0

    def kill(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "data")
    yield s
    if s.proc.poll() is None:
        s.stop()
