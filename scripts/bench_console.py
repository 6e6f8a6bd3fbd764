#!/usr/bin/env python3
"""Console benchmark: starts its own Strom node with `--topics` topics (one partition each,
a few records in each) and a consumer group, then measures

1. each console API the pages call (median and max of 10 calls);
2. each page in headless Chromium: from navigation to the page drawn (its `data-loaded`
   mark), median of 5 loads.

Usage: scripts/bench_console.py [--strom target/release/strom] [--topics 1000]
"""
import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strom", default="target/release/strom")
    ap.add_argument("--topics", type=int, default=1000)
    a = ap.parse_args()
    base = tempfile.mkdtemp(prefix="strom-bench-console-")
    p = subprocess.Popen([a.strom, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                          "--override", "http.listeners=http://127.0.0.1:0",
                          "--override", f"log.dirs={base}"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, env={"RUST_LOG": "warn"})
    driver = None
    try:
        addr = next(w for w in p.stdout.readline().split() if w.startswith("127.0.0.1:")).rstrip(",")
        http = p.stdout.readline().split()[-1]
        admin = AdminClient({"bootstrap.servers": addr})
        names = [f"t{i:04}" for i in range(a.topics)]
        for i in range(0, len(names), 100):
            for f in admin.create_topics([NewTopic(n, 1, 1) for n in names[i:i + 100]]).values():
                f.result(120)
        prod = Producer({"bootstrap.servers": addr, "linger.ms": 5})
        for n in names:
            for _ in range(5):
                prod.produce(n, value=b"v" * 100)
        prod.flush(60)
        c = Consumer({"bootstrap.servers": addr, "group.id": "bench", "enable.auto.commit": False})
        c.commit(offsets=[TopicPartition(n, 0, 2) for n in names[:100]], asynchronous=False)
        c.close()

        print(f"console APIs with {a.topics} topics (10 calls each):")
        for path in ("/api/cluster", "/api/topics", f"/api/topics/{names[0]}",
                     f"/api/topics/{names[0]}/messages?partition=0&from=beginning",
                     "/api/groups", "/api/groups/bench"):
            times = []
            for _ in range(10):
                t = time.perf_counter()
                urllib.request.urlopen(f"http://{http}{path}", timeout=60).read()
                times.append(time.perf_counter() - t)
            print(f"  {path:55} median {statistics.median(times) * 1000:7.1f} ms, max {max(times) * 1000:7.1f} ms")

        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
            options.add_argument(arg)
        driver = webdriver.Chrome(options=options,
                                  service=Service(executable_path=shutil.which("chromedriver")))
        print("pages in headless Chromium (navigation to drawn, 5 loads each):")
        for page in ("#/cluster", "#/topics", f"#/topics/{names[0]}", "#/groups", "#/groups/bench"):
            times = []
            for _ in range(5):
                driver.get("about:blank")
                t = time.perf_counter()
                driver.get(f"http://{http}/{page}")
                WebDriverWait(driver, 60).until(
                    lambda d: d.find_element(By.ID, "page").get_attribute("data-loaded") == page)
                times.append(time.perf_counter() - t)
            print(f"  {page:30} median {statistics.median(times) * 1000:7.1f} ms, max {max(times) * 1000:7.1f} ms")
    finally:
        if driver:
            driver.quit()
        p.terminate()
        p.wait(30)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
