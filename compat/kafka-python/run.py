#!/usr/bin/env python3
"""Runs kafka-python's own integration test suite against a fresh single-node Strom.

Usage (from the repository root):

    compat/kafka-python/run.py --kafka-python /path/to/kafka-python [--files consumer,admin]

The kafka-python source tree is given, never downloaded (see README.md beside this file
for the commit the committed results used). The script

1. creates a virtualenv in a temporary directory and pip-installs the tree with the
   packages its tests need (pytest, pytest-mock, pytest-timeout, py, and the compression
   libraries crc32c, lz4, python-snappy, zstandard, xxhash), unless --venv names one;
2. starts its own `strom server` on a free loopback port with a fresh data directory, with
   the settings of the suite's own broker template (servers/resources/default) that Strom
   knows and that differ from Kafka's defaults;
3. runs pytest on each file of test/integration on its own, against that broker
   (KAFKA_URI, the suite's external-broker mode, with KAFKA_VERSION=4.0.0), bounded in
   time, with junit xml output for the per-test results;
4. writes a results table: test id, verdict, seconds, first line of the failure, and the
   totals per verdict. Verdicts: pass, fail, error (a fixture failed in setup or teardown),
   skip (the suite skipped it), timeout (pytest-timeout's per-test bound, or the file's
   bound ran out), flaky (failed, then passed when run again on its own: --reruns),
   n/a (listed in not-applicable.txt with the reason: needs transactions, SSL, SASL or
   ACLs; not run).

The exit status is 1 if a test in expected-pass.txt did not pass (flaky counts as passed),
else 0.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from strom_server import StromServer, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

# The broker version the suite is told it runs against: a Kafka 4 broker. The suite parses
# it into a tuple, (4, 0, 0), and gives it to its clients as api_version.
KAFKA_VERSION = "4.0.0"
SUITE_DIR = "test/integration"
# What the tests need beyond the tree's own requirements: its `testing` extra (pytest,
# pytest-mock, pytest-timeout), the compression extras, and from requirements-dev.txt `py`
# (fixtures.py imports it) and xxhash. Linters, docs and coverage tools are left out.
EXTRAS = "crc32c,lz4,snappy,zstd,testing"
TEST_PACKAGES = ["py", "xxhash"]

# The settings of the suite's broker template (servers/resources/default/kafka.properties)
# that differ from Kafka's defaults (or Strom's) and matter on one node. The broker is node
# 0 (test_create_partitions assigns the new partitions to broker 0); topics the fixture
# creates have 4 partitions, and so do auto-created ones; consumer groups rebalance at once
# and accept short session timeouts (test_group uses session_timeout_ms=3000).
SUITE_BROKER_SETTINGS = [
    "node.id=0",
    "num.partitions=4",
    "offsets.topic.num.partitions=2",
    "group.initial.rebalance.delay.ms=0",
    "group.min.session.timeout.ms=1000",
]

# pytest -v lines: test/integration/test_x.py::test_y[p] PASSED   [ 10%]
VERBOSE = re.compile(r"^(test/integration/\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")


def read_list(path: Path) -> dict[str, str]:
    """Lines `name [reason...]`; `#` starts a comment."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, reason = line.partition(" ")
            out[name] = reason.strip()
    return out


def short_id(nodeid: str) -> str:
    """test/integration/test_x.py::test_y[p] -> test_x.py::test_y[p]"""
    return nodeid[len(SUITE_DIR) + 1:] if nodeid.startswith(SUITE_DIR + "/") else nodeid


def not_applicable_reason(test: str, na: dict[str, str]) -> str | None:
    """The n/a reason of a test id: listed itself, as its function (all parameters), or as
    its file."""
    base = test.split("[", 1)[0]
    for key in (test, base, test.split("::", 1)[0]):
        if key in na:
            return na[key] or "not applicable"
    return None


def make_venv(work: Path, src: Path) -> Path:
    """A virtualenv with the tree and its test requirements; returns its python."""
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    print(f"== pip install {src}[{EXTRAS}] {' '.join(TEST_PACKAGES)}", flush=True)
    with open(work / "pip.log", "w") as log:
        proc = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check",
                               f"{src}[{EXTRAS}]", *TEST_PACKAGES],
                              stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"pip install failed; see {work / 'pip.log'}")
    return python


def suite_env(port: int, work: Path) -> dict[str, str]:
    env = {**os.environ,
           "KAFKA_URI": f"PLAINTEXT://127.0.0.1:{port}",
           "KAFKA_VERSION": KAFKA_VERSION,
           # The fixtures insist that a Kafka installation directory exists even for an
           # external broker (they never run anything from it then): an empty one.
           "KAFKA_ROOT": str(work / "kafka-root"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    for key in ("ZOOKEEPER_URI", "KAFKA_PYTHON_NET", "PYTEST_ADDOPTS", "CI"):
        env.pop(key, None)
    return env


def collect(python: Path, src: Path, file: str, env: dict[str, str]) -> list[str] | str:
    """The node ids pytest collects in one file, or the first error line."""
    proc = subprocess.run([str(python), "-m", "pytest", "-p", "no:cacheprovider",
                           "--collect-only", "-q", f"{SUITE_DIR}/{file}"],
                          cwd=src, env=env, capture_output=True, text=True)
    ids = [l.strip() for l in proc.stdout.splitlines() if l.startswith(SUITE_DIR + "/") and "::" in l]
    if proc.returncode != 0 and not ids:
        lines = [l for l in (proc.stdout + proc.stderr).splitlines() if l.strip()]
        errors = [l for l in lines if l.startswith("E ")]
        return (errors or lines or ["collection failed"])[0].strip()
    return ids


def first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def parse_junit(path: Path, file: str) -> dict[str, tuple[str, float, str]]:
    """{test id: (verdict, seconds, first line of the message)} from pytest's junit xml."""
    out: dict[str, tuple[str, float, str]] = {}
    module = f"{SUITE_DIR}/{file}"[:-3].replace("/", ".")
    for case in ET.parse(path).getroot().iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        cls = classname[len(module):].lstrip(".") if classname.startswith(module) else ""
        test = f"{file}::{cls + '::' if cls else ''}{name}"
        secs = float(case.get("time") or 0)
        verdict, message = "pass", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                verdict = {"failure": "fail", "error": "error", "skipped": "skip"}[tag]
                message = first_line(el.get("message")) or first_line(el.text)
                break
        if verdict == "skip" and case.find("skipped").get("type") == "pytest.xfail":
            verdict = "xfail"
        if verdict in ("fail", "error") and message.startswith("Failed: Timeout"):
            verdict = "timeout"
        out[test] = (verdict, secs, message)
    return out


def parse_verbose(text: str) -> dict[str, tuple[str, float, str]]:
    """Results from pytest -v output, for a run that did not get to write its xml."""
    out: dict[str, tuple[str, float, str]] = {}
    for line in text.splitlines():
        m = VERBOSE.match(line)
        if m:
            verdict = {"PASSED": "pass", "FAILED": "fail", "ERROR": "error", "SKIPPED": "skip",
                       "XFAIL": "xfail", "XPASS": "pass"}[m.group(2)]
            test = short_id(m.group(1))
            if test not in out or verdict == "error":
                out[test] = (verdict, 0.0, "")
    return out


def run_file(python: Path, src: Path, file: str, selection: list[str], env: dict[str, str],
             timeout: int, work: Path, stem: str
             ) -> tuple[dict[str, tuple[str, float, str]], bool, float]:
    """Runs the selected node ids of one file; returns the results, whether the file's
    time bound ran out, and the seconds it took. Its log and xml are work/<stem>.*"""
    xml, log_path = work / f"{stem}.xml", work / f"{stem}.log"
    xml.unlink(missing_ok=True)
    # The suite's own pytest settings (pyproject.toml) stay: --timeout=300 per test, DEBUG
    # log capture. pytest-timeout's thread method ends the whole session at a hung test
    # (and with it the xml); the signal method fails just that test and goes on.
    args = [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-v", "-rfEs",
            "--timeout-method=signal", f"--junitxml={xml}", *selection]
    started = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, cwd=src, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            timed_out = True
    elapsed = time.time() - started
    if xml.exists():
        try:
            return parse_junit(xml, file), timed_out, elapsed
        except ET.ParseError:
            pass
    return parse_verbose(log_path.read_text(errors="replace")), timed_out, elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kafka-python", required=True, type=Path, help="kafka-python source tree")
    ap.add_argument("--commit", help="the tree's kafka-python commit (default: git rev-parse)")
    ap.add_argument("--strom", type=Path, default=ROOT / "target" / "release" / "strom")
    ap.add_argument("--files", help="comma-separated test files, e.g. consumer,admin "
                    "(test_<name>_integration.py; default: all)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per test file")
    ap.add_argument("--reruns", type=int, default=1,
                    help="times a test that failed is run again on its own; passing then "
                    "makes it flaky (default 1; 0: no reruns)")
    ap.add_argument("--venv", type=Path, help="an existing virtualenv with the tree and the "
                    "test requirements installed (default: a new one in the temporary directory)")
    ap.add_argument("--out", type=Path, default=HERE / "results.md")
    ap.add_argument("--override", action="append", default=[],
                    help="extra strom broker property key=value")
    a = ap.parse_args()

    src = a.kafka_python.resolve()
    if not (src / SUITE_DIR / "conftest.py").exists():
        raise SystemExit(f"{src} is not a kafka-python source tree (no {SUITE_DIR}/conftest.py)")
    if not a.strom.exists():
        raise SystemExit(f"{a.strom} is missing: cargo build --release -p strom")
    commit = a.commit or subprocess.run(["git", "rev-parse", "HEAD"], cwd=src,
                                        capture_output=True, text=True).stdout.strip()

    not_applicable = read_list(HERE / "not-applicable.txt")
    expected = read_list(HERE / "expected-pass.txt")
    files = sorted(p.name for p in (src / SUITE_DIR).glob("test_*.py"))
    if a.files:
        wanted = {f if f.endswith(".py") else f"test_{f}_integration.py" for f in a.files.split(",")}
        files = [f for f in files if f in wanted]

    work = Path(tempfile.mkdtemp(prefix="strom-kafka-python-"))
    print(f"== work directory (logs, venv): {work}", flush=True)
    (work / "kafka-root").mkdir()
    # A copy, so a rebuild during a long run does not change the broker under test.
    binary = work / "strom"
    shutil.copy2(a.strom, binary)
    python = (a.venv.resolve() / "bin" / "python") if a.venv else make_venv(work, src)
    strom = StromServer(binary, work, SUITE_BROKER_SETTINGS + a.override, advertise=True)
    rows: dict[str, tuple[str, float, str]] = {}
    try:
        for file in files:
            if not strom.alive():
                strom.start()
            env = suite_env(strom.port, work)
            ids = collect(python, src, file, env)
            if isinstance(ids, str):
                reason = not_applicable_reason(file, not_applicable)
                rows[file] = ("n/a", 0.0, reason) if reason else ("error", 0.0, ids)
                continue
            tests = [short_id(i) for i in ids]
            selected = []
            for test in tests:
                reason = not_applicable_reason(test, not_applicable)
                if reason is not None:
                    rows[test] = ("n/a", 0.0, reason)
                else:
                    selected.append(test)
            if not selected:
                continue
            print(f"== {file}: {len(selected)} tests"
                  + (f" ({len(tests) - len(selected)} n/a)" if len(selected) < len(tests) else ""),
                  flush=True)
            # The file itself when all of it runs, else exactly the selected node ids
            # (pytest's --deselect matches prefixes: test_x would drop test_x_y too).
            selection = ([f"{SUITE_DIR}/{file}"] if len(selected) == len(tests)
                         else [f"{SUITE_DIR}/{t}" for t in selected])
            got, timed_out, elapsed = run_file(python, src, file, selection, env, a.timeout,
                                               work, file[:-3])
            down = "" if strom.alive() else f"strom server exited ({strom.log}); "
            for test in selected:
                if test in got:
                    verdict, secs, err = got[test]
                elif timed_out:
                    verdict, secs, err = "timeout", 0.0, f"the file's time bound ({a.timeout}s) ran out"
                else:
                    verdict, secs, err = "error", 0.0, f"no result (see {work / (file[:-3] + '.log')})"
                if down and verdict not in ("pass", "skip"):
                    err = down + err
                for attempt in range(1, a.reruns + 1):
                    if verdict not in ("fail", "error", "timeout"):
                        break
                    if not strom.alive():
                        strom.start()
                        env = suite_env(strom.port, work)
                    again, _, _ = run_file(python, src, file, [f"{SUITE_DIR}/{test}"], env,
                                           a.timeout, work, "rerun{}-{}".format(attempt, re.sub(r"[^\w.-]+", "_", test)))
                    if again.get(test, ("",))[0] == "pass":
                        verdict, secs = "flaky", again[test][1]
                        err = f"passed on rerun {attempt}; first run: {err}"
                rows[test] = (verdict, secs, err)
                print(f"   {test}: {verdict} {secs:.1f}s {err}", flush=True)
            print(f"   ({elapsed:.0f}s)", flush=True)
    finally:
        strom.stop()

    write_results(a.out, "kafka-python's integration tests against Strom: last run",
                  results_facts(commit or "unknown", a.files, a.reruns), rows)
    missing = [t for t in expected if t in rows and rows[t][0] not in ("pass", "flaky")]
    for t in missing:
        print(f"expected to pass but {rows[t][0]}: {t} {rows[t][2]}", file=sys.stderr)
    print(f"results: {a.out}; logs: {work}")
    return 1 if missing else 0


def results_facts(commit: str, selection: str | None, reruns: int) -> list[str]:
    return [
        f"kafka-python commit: `{commit}`",
        f"run: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"`KAFKA_VERSION={KAFKA_VERSION}`, external broker (`KAFKA_URI`), one file of "
        f"`{SUITE_DIR}` at a time, a failed test run again on its own up to {reruns} time(s)"
        + (f", files {selection}" if selection else ""),
        f"broker settings: {', '.join(f'`{s}`' for s in SUITE_BROKER_SETTINGS)}",
    ]


if __name__ == "__main__":
    sys.exit(main())
