"""What the compatibility runners (compat/*/run.py) share: the `strom server` a runner
starts for itself (a copy of the binary, a fresh data directory per start, a free loopback
port, Kafka's defaults with the settings the suite's own harness gives Kafka laid over
them), and the Markdown results table it writes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StromServer:
    """`settings` are broker properties (key=value); with `advertise`, the listener is also
    set as advertised.listeners, as some harnesses do."""

    def __init__(self, binary: Path, work: Path, settings: list[str], advertise: bool = False):
        self.binary, self.work, self.settings, self.advertise = binary, work, settings, advertise
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.starts = 0

    @property
    def log(self) -> Path:
        """The broker's log of its latest start."""
        return self.work / f"strom-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        data = self.work / f"data-{self.starts}"
        shutil.rmtree(data, ignore_errors=True)
        self.port = free_port()
        listener = f"PLAINTEXT://127.0.0.1:{self.port}"
        args = [str(self.binary), "server", "--override", f"listeners={listener}",
                "--override", f"log.dirs={data}"]
        if self.advertise:
            args += ["--override", f"advertised.listeners={listener}"]
        for s in self.settings:
            args += ["--override", s]
        log = open(self.log, "w")
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")}
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        raise SystemExit(f"strom server did not start; see {self.log}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def write_results(path: Path, title: str, facts: list[str],
                  rows: dict[str, tuple[str, float, str]]) -> None:
    """The results table: a title, `facts` as a list (commit, how it ran), the totals per
    verdict (`mock: pass` counts as mock), then a row a test: name, verdict, seconds, the
    first error line."""
    totals: dict[str, int] = {}
    for verdict, _, _ in rows.values():
        key = verdict.split(":")[0]
        totals[key] = totals.get(key, 0) + 1
    lines = [f"# {title}", ""] + [f"- {f}" for f in facts] + [
        "- totals: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())),
        "",
        "| test | verdict | seconds | first error |",
        "|---|---|---|---|",
    ]
    for name in sorted(rows):
        verdict, secs, err = rows[name]
        err = err.replace("|", "\\|")[:200]
        lines.append(f"| {name} | {verdict} | {secs:.1f} | {err} |")
    path.write_text("\n".join(lines) + "\n")
