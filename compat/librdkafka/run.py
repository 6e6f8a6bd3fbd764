#!/usr/bin/env python3
"""Runs librdkafka's own integration test suite against a fresh single-node Strom.

Usage (from the repository root):

    compat/librdkafka/run.py --librdkafka /path/to/librdkafka [--tests 0011,0030] [--build]

The librdkafka source tree is given, never downloaded (see README.md beside this file for
the commit the committed results used). The script

1. builds the library and tests/test-runner against Debian's system libraries when the
   runner is missing or --build is given (no --install-deps, no vendored libraries);
2. starts its own `strom server` on a free loopback port with a fresh data directory, at
   Kafka's default broker settings (group.initial.rebalance.delay.ms=3000 included);
3. runs each test number on its own (`TESTS=nnnn`, one at a time, `-p1`), bounded in time,
   in full mode (the suite's quick mode, --quick, turns many sub-tests into no-ops);
4. writes a results table: test, verdict, seconds, first error line, and the totals per
   verdict. Verdicts: pass, fail, timeout, skip (the suite skipped it), n/a (listed in
   not-applicable.txt with the reason: needs transactions, a cluster, SSL, SASL or ACLs),
   mock (TEST_F_LOCAL: librdkafka's mock cluster or no broker at all; these test only the
   client and run apart, with --mock).

The exit status is 1 if a test in expected-pass.txt did not pass, else 0.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from strom_server import StromServer, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m|\x1b\(B")
# A declaration in tests/test.c: _TEST(0011_produce_batch, TEST_F_LOCAL, ...)
DECL = re.compile(r"_TEST\(\s*(\d{4}_\w+)\s*,\s*([^,)]*)")
# A row of the runner's summary: | 0011_produce_batch | PASSED | 12.345s | reason
ROW = re.compile(r"^\|\s*(\d{4}_\w+)\s*\|\s*([A-Z_]+)\s*\|\s*([\d.]+)s\s*\|\s*(.*)$")
# The line that ends each test: ================= Test 0011_produce_batch PASSED ====
END = re.compile(r"=+ Test (\d{4}_\w+) (PASSED|FAILED|SKIPPED) =+")
FAILURE = re.compile(r"### Test \"?(\d{4}_\w+|<MAIN>).* failed at (.*)###")

# The broker version the suite is told it runs against: a Kafka 4 broker.
KAFKA_VERSION = "4.0.0"


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


def read_splits(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Lines `test | text | n/a reason`: the sub-tests to run one by one, by a text their
    names contain, and the reason for those not to run."""
    out: dict[str, list[tuple[str, str]]] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.startswith("#") or not line.strip():
            continue
        test, text, *rest = [f.strip() for f in line.split(" | ")]
        reason = rest[0].removeprefix("n/a").strip() if rest else ""
        out.setdefault(test, []).append((text, reason))
    return out


def declared_tests(src: Path) -> list[tuple[str, bool, bool, str]]:
    """(name, local, manual, scenario) for every test the suite declares, in its order."""
    text = (src / "tests" / "test.c").read_text()
    start = text.index("struct test tests[]")
    text = text[start:text.index("{NULL}", start)]
    tests = []
    for chunk in text.split("_TEST(")[1:]:
        m = DECL.match("_TEST(" + chunk)
        if not m:
            continue
        flags = m.group(2)
        # A few tests start librdkafka's mock cluster without the TEST_F_LOCAL flag.
        local = "TEST_F_LOCAL" in flags or "_mock" in m.group(1)
        scenario = re.search(r'\.scenario\s*=\s*"([^"]*)"', chunk)
        # A test for several scenarios runs in its first (default,ak23: default).
        name = scenario.group(1).split(",")[0] if scenario else "default"
        tests.append((m.group(1), local, "TEST_F_MANUAL" in flags, name))
    return tests


# The broker settings the suite's own harness (trivup's KafkaCluster) gives Apache Kafka
# and that differ from Kafka's defaults: auto-created topics get 4 partitions (tests
# produce to partitions 1 to 3 of topics they never create). Everything else stays at
# Kafka's defaults, group.initial.rebalance.delay.ms=3000 among them.
SUITE_BROKER_SETTINGS = ["num.partitions=4"]
# The suite's scenarios (tests/scenarios/*.json) as broker settings: a few tests are for a
# broker that does not create topics on its own.
SCENARIOS = {"default": [], "noautocreate": ["auto.create.topics.enable=false"]}
# Tests whose scripted waits alone take longer than the default bound, with theirs:
# 0113 runs some sixty cooperative rebalances with waits of seconds between them.
SLOW = {"0113": 1800}


def build(src: Path) -> None:
    """Builds librdkafka and tests/test-runner with Debian's system libraries."""
    jobs = str(os.cpu_count() or 2)
    run = lambda *cmd, cwd=src: subprocess.run(cmd, cwd=cwd, check=True)  # noqa: E731
    if not (src / "Makefile.config").exists():
        run("./configure", "--disable-gssapi", "--disable-curl", "--enable-zstd",
            "--enable-lz4-ext")
    run("make", f"-j{jobs}", "libs")
    run("make", f"-j{jobs}", "build", cwd=src / "tests")


def run_number(src: Path, number: str, conf: Path, timeout: int, mock: bool,
               log_path: Path, strom: StromServer, scenario: str, subtests: str | None = None,
               quick: bool = False) -> tuple[dict[str, tuple[str, float, str]], bool]:
    """Runs one test number; returns {name: (verdict, seconds, first error)} and whether
    the time bound ran out."""
    env = {**os.environ, "TESTS": number, "TEST_KAFKA_VERSION": KAFKA_VERSION,
           "RDKAFKA_TEST_CONF": str(conf), "TEST_LEVEL": "2",
           "LD_LIBRARY_PATH": f"{src / 'src'}:{src / 'src-cpp'}",
           # Tests that shell out to Kafka's kafka-topics.sh get ours (bin/ here), which
           # does the same with `strom topic`.
           "KAFKA_PATH": str(HERE), "BROKERS": f"127.0.0.1:{strom.port}",
           "STROM_BIN": str(strom.binary)}
    env.pop("CI", None)
    if subtests:
        env["SUBTESTS"] = subtests
    args = ["./test-runner", "-p1", "-l" if mock else "-L", "-s", scenario]
    if quick:
        args.append("-Q")
    started = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, cwd=src / "tests", env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            timed_out = True
    elapsed = time.time() - started
    text = ANSI.sub("", log_path.read_text(errors="replace"))
    results: dict[str, tuple[str, float, str]] = {}
    first_error: dict[str, str] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = FAILURE.search(line)
        if m and m.group(1) not in first_error:
            detail = lines[i + 1].strip() if i + 1 < len(lines) else ""
            first_error[m.group(1)] = f"{m.group(2).strip()}: {detail}"
        m = END.search(line)
        if m:
            results[m.group(1)] = (m.group(2), 0.0, "")
    for line in lines:
        m = ROW.match(line.strip())
        if m and m.group(1) != "<MAIN>":
            results[m.group(1)] = (m.group(2), float(m.group(3)), m.group(4).strip())
    for name in first_error:
        # A failure outside the test's own thread aborts the runner before its summary.
        if name != "<MAIN>" and results.get(name, ("RUNNING",))[0] != "FAILED":
            results[name] = ("FAILED", 0.0, "")
    if not results and not timed_out:
        # The runner did not get as far as a test (a missing library, a crash at start).
        tail = [l for l in lines if l.strip()][-1:] or ["no output"]
        return {"*": ("fail", elapsed, tail[0].strip())}, False
    out = {}
    for name, (state, secs, reason) in results.items():
        verdict = {"PASSED": "pass", "FAILED": "fail", "SKIPPED": "skip",
                   "RUNNING": "timeout"}.get(state, state.lower())
        error = first_error.get(name, reason) if verdict != "pass" else ""
        out[name] = (verdict, secs or elapsed, error)
    return out, timed_out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--librdkafka", required=True, type=Path, help="librdkafka source tree")
    ap.add_argument("--commit", help="the tree's librdkafka commit (default: git rev-parse)")
    ap.add_argument("--strom", type=Path, default=ROOT / "target" / "release" / "strom")
    ap.add_argument("--tests", help="comma-separated test numbers (default: all)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per test number")
    ap.add_argument("--quick", action="store_true",
                    help="the suite's quick mode (-Q): many sub-tests do nothing in it")
    ap.add_argument("--build", action="store_true", help="(re)build librdkafka first")
    ap.add_argument("--mock", action="store_true",
                    help="also run the TEST_F_LOCAL (mock cluster / no broker) tests")
    ap.add_argument("--out", type=Path, default=HERE / "results.md")
    ap.add_argument("--override", action="append", default=[],
                    help="extra strom broker property key=value")
    a = ap.parse_args()

    src = a.librdkafka.resolve()
    if a.build or not (src / "tests" / "test-runner").exists():
        build(src)
    if not a.strom.exists():
        raise SystemExit(f"{a.strom} is missing: cargo build --release -p strom")
    commit = a.commit or subprocess.run(["git", "rev-parse", "HEAD"], cwd=src,
                                        capture_output=True, text=True).stdout.strip()

    not_applicable = read_list(HERE / "not-applicable.txt")
    expected = read_list(HERE / "expected-pass.txt")
    splits = read_splits(HERE / "subtests.txt")
    wanted = set(a.tests.split(",")) if a.tests else None
    tests = [t for t in declared_tests(src)
             if not t[2] and (wanted is None or t[0][:4] in wanted)]

    work = Path(tempfile.mkdtemp(prefix="strom-rdkafka-"))
    # A copy, so a rebuild during a long run does not change the broker under test.
    binary = work / "strom"
    shutil.copy2(a.strom, binary)
    servers: dict[str, StromServer] = {}
    rows: dict[str, tuple[str, float, str]] = {}
    numbers: list[str] = []
    for t in tests:
        if t[0][:4] not in numbers:
            numbers.append(t[0][:4])
    try:
        for number in numbers:
            group = [t for t in tests if t[0][:4] == number]
            for n, local, _, _ in group:
                if local:
                    rows[n] = ("mock", 0.0, "")
                elif n in not_applicable:
                    rows[n] = ("n/a", 0.0, not_applicable[n])
            # One run per scenario of the number, and one per sub-test of a split test:
            # (scenario, SUBTESTS, [(test, row)]).
            runs: list[tuple[str, str | None, list[tuple[str, str]]]] = []
            for scenario in dict.fromkeys(t[3] for t in group):
                broker_tests = [n for n, local, _, sc in group
                                if sc == scenario and not local and n not in not_applicable]
                whole = [(n, n) for n in broker_tests if n not in splits]
                if whole:
                    runs.append((scenario, None, whole))
                for n in broker_tests:
                    for text, reason in splits.get(n, []):
                        row = f"{n}[{text.rstrip(':')}]"
                        if reason:
                            rows[row] = ("n/a", 0.0, reason)
                        else:
                            runs.append((scenario, text, [(n, row)]))
            for scenario, subtests, names in runs:
                strom = servers.get(scenario)
                if strom is None:
                    settings = SUITE_BROKER_SETTINGS + SCENARIOS.get(scenario, []) + a.override
                    strom = servers[scenario] = StromServer(binary, work / scenario, settings)
                    strom.work.mkdir(exist_ok=True)
                if not strom.alive():
                    strom.start()
                conf = work / "test.conf"
                conf.write_text(f"metadata.broker.list=127.0.0.1:{strom.port}\n")
                print(f"== {number}: {', '.join(row for _, row in names)}", flush=True)
                part = re.sub(r"[^A-Za-z0-9_.]+", "_", subtests).strip("_") if subtests else ""
                log = work / f"{number}-{scenario}{'-' + part if part else ''}.log"
                bound = max(a.timeout, SLOW.get(number, 0))
                got, timed_out = run_number(src, number, conf, bound, False, log, strom,
                                            scenario, subtests, a.quick)
                for n, row in names:
                    verdict, secs, err = got.get(n, got.get("*", (
                        "timeout" if timed_out else "fail", float(a.timeout), "")))
                    if not strom.alive():
                        err = f"strom server exited ({strom.log}); {err}"
                    if verdict == "fail" and not err and timed_out:
                        verdict = "timeout"
                    rows[row] = (verdict, secs,
                                 err or ("time bound reached" if verdict == "timeout" else ""))
                    print(f"   {row}: {verdict} {secs:.1f}s {err}", flush=True)
            local_tests = [t[0] for t in group if t[1]]
            if a.mock and local_tests:
                strom = servers.setdefault(
                    "default", StromServer(binary, work, SUITE_BROKER_SETTINGS + a.override))
                got, _ = run_number(src, number, work / "test.conf", a.timeout, True,
                                    work / f"{number}-local.log", strom, "default")
                for n in local_tests:
                    verdict, secs, err = got.get(n, ("fail", 0.0, ""))
                    rows[n] = (f"mock: {verdict}", secs, err)
    finally:
        for strom in servers.values():
            strom.stop()

    write_results(a.out, "librdkafka's test suite against Strom: last run",
                  results_facts(commit or "unknown", a.tests, a.quick), rows)
    missing = [n for n in expected if n in rows and rows[n][0] != "pass"]
    for n in missing:
        print(f"expected to pass but {rows[n][0]}: {n} {rows[n][2]}", file=sys.stderr)
    print(f"results: {a.out}; logs: {work}")
    return 1 if missing else 0


def results_facts(commit: str, selection: str | None, quick: bool) -> list[str]:
    return [
        f"librdkafka commit: `{commit}`",
        f"run: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"`TEST_KAFKA_VERSION={KAFKA_VERSION}`, {'quick mode (-Q)' if quick else 'full mode'}, "
        "one test number at a time" + (f", tests {selection}" if selection else ""),
    ]


if __name__ == "__main__":
    sys.exit(main())
