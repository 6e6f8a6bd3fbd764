"""The web console in a real browser: Debian's headless Chromium driven by Selenium
(WebDriver) against a live broker with topics, records and a consumer group. Each page is
loaded and checked in its DOM, and a screenshot of each is saved under
target/console-screenshots/ (or $STROM_ARTIFACTS)."""
import json
import os
import shutil
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from conftest import Server

# scripts/test installs selenium; a missing one fails here rather than skipping.
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

SHOTS = os.environ.get("STROM_ARTIFACTS",
                       os.path.join(os.path.dirname(__file__), "../../target/console-screenshots"))


def chromium():
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    raise AssertionError("Debian's chromium is not installed (scripts/test installs it)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("console") / "data", "console.actions.enable=true")
    a = AdminClient({"bootstrap.servers": s.addr})
    a.create_topics([NewTopic("orders", num_partitions=2, replication_factor=1)])["orders"].result(15)
    p = Producer({"bootstrap.servers": s.addr, "linger.ms": 5})
    for i in range(50):
        p.produce("orders", key=f"order-{i}".encode(),
                  value=json.dumps({"id": i, "item": "book" if i % 2 else "pen"}).encode(),
                  partition=i % 2, headers=[("source", b"test")])
    assert p.flush(15) == 0
    c = Consumer({"bootstrap.servers": s.addr, "group.id": "billing", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("orders", 0, 10), TopicPartition("orders", 1, 25)],
             asynchronous=False)
    c.close()
    yield s, a
    s.stop()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = chromium()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options,
                              service=Service(executable_path=shutil.which("chromedriver")))
    os.makedirs(SHOTS, exist_ok=True)
    yield driver
    driver.quit()


def open_page(driver, http, hash_):
    driver.get(f"http://{http}/{hash_}")
    WebDriverWait(driver, 15).until(
        lambda d: d.find_element(By.ID, "page").get_attribute("data-loaded") == hash_)


def wait_for(driver, css, timeout=15):
    return WebDriverWait(driver, timeout).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def wait_text(driver, css, text, timeout=15):
    WebDriverWait(driver, timeout).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))
    return driver.find_element(By.CSS_SELECTOR, css)


def shot(driver, name):
    assert driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def test_cluster_page_lists_the_broker_and_the_controller(cluster, browser):
    s, _ = cluster
    open_page(browser, s.http, "#/cluster")
    row = wait_for(browser, '#brokers tr[data-broker="1"]')
    assert "active" in row.text and s.addr in row.text
    assert browser.find_element(By.ID, "controller").text == "1"
    assert browser.find_element(By.ID, "urp-count").text == "0"
    assert "leader" in browser.find_element(By.ID, "quorum").text
    shot(browser, "cluster")


def test_topics_page_lists_the_topic_and_a_bad_partition_count_changes_nothing(cluster, browser):
    s, admin = cluster
    open_page(browser, s.http, "#/topics")
    row = wait_for(browser, '#topics tr[data-topic="orders"]')
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    assert cells[1] == "2" and cells[4] == "50", cells
    shot(browser, "topics")
    form = browser.find_element(By.ID, "create-topic")
    form.find_element(By.NAME, "name").send_keys("broken")
    count = form.find_element(By.NAME, "partitions")
    count.clear()
    count.send_keys("-3")
    form.find_element(By.TAG_NAME, "button").click()
    assert "INVALID_PARTITIONS" in wait_text(browser, "#create-result .error", "INVALID").text
    assert "broken" not in admin.list_topics(timeout=10).topics


def test_topic_page_shows_partitions_and_refuses_a_bad_config_value(cluster, browser):
    s, admin = cluster
    open_page(browser, s.http, "#/topics/orders")
    rows = browser.find_elements(By.CSS_SELECTOR, "#partitions tbody tr")
    assert [r.get_attribute("data-partition") for r in rows] == ["0", "1"]
    assert rows[0].find_elements(By.TAG_NAME, "td")[6].text == "25"
    box = wait_for(browser, '#configs input[data-key="retention.ms"]')
    before = box.get_attribute("value")
    box.clear()
    box.send_keys("not-a-number")
    browser.find_element(By.ID, "save-configs").click()
    assert "INVALID_CONFIG" in wait_text(browser, "#configs-result .error", "INVALID").text
    shot(browser, "topic")
    res = ConfigResource("topic", "orders")
    now = admin.describe_configs([res])[res].result(10)["retention.ms"].value
    assert now == before


def test_groups_show_lag_and_a_dry_run_reset_changes_nothing(cluster, browser):
    s, _ = cluster
    open_page(browser, s.http, "#/groups")
    row = wait_for(browser, '#groups tr[data-group="billing"]')
    assert row.find_element(By.CSS_SELECTOR, "td.lag").text == "15"  # (25-10) + (25-25)
    shot(browser, "groups")
    open_page(browser, s.http, "#/groups/billing")
    assert browser.find_element(By.ID, "group-lag").text == "15"
    lags = {r.get_attribute("data-tp"): r.find_element(By.CSS_SELECTOR, "td.lag").text
            for r in browser.find_elements(By.CSS_SELECTOR, "#offsets tbody tr")}
    assert lags == {"orders-0": "15", "orders-1": "0"}, lags
    browser.find_element(By.ID, "preview").click()
    plan = wait_for(browser, "#reset-plan")
    assert "Dry run" in browser.find_element(By.ID, "reset-result").text
    cells = [[td.text for td in r.find_elements(By.TAG_NAME, "td")]
             for r in plan.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert cells == [["orders", "0", "10", "0"], ["orders", "1", "25", "0"]], cells
    shot(browser, "group")
    c = Consumer({"bootstrap.servers": s.addr, "group.id": "billing"})
    committed = c.committed([TopicPartition("orders", 0), TopicPartition("orders", 1)], timeout=10)
    c.close()
    assert [tp.offset for tp in committed] == [10, 25]


def test_messages_are_found_by_key_shown_as_json_and_a_live_tail_receives_a_new_record(cluster, browser):
    s, _ = cluster
    open_page(browser, s.http, "#/topics/orders/messages")
    form = browser.find_element(By.ID, "browse")
    Select(form.find_element(By.NAME, "partition")).select_by_value("1")
    form.find_element(By.NAME, "key").send_keys("order-7")
    form.find_element(By.TAG_NAME, "button").click()
    row = wait_for(browser, '#messages tr[data-offset="3"]')
    assert len(browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr")) == 1
    assert row.find_element(By.CSS_SELECTOR, "td.key").text == "order-7"
    value = json.loads(row.find_element(By.CSS_SELECTOR, "td.value").text)
    assert value == {"id": 7, "item": "book"}
    assert "source=test" in row.text
    shot(browser, "messages")

    form.find_element(By.NAME, "key").clear()
    browser.find_element(By.ID, "tail-toggle").click()
    WebDriverWait(browser, 15).until(
        lambda d: d.find_element(By.ID, "tail-status").get_attribute("data-state") == "following")
    p = Producer({"bootstrap.servers": s.addr})
    p.produce("orders", key=b"live", value=b"tail-me", partition=1)
    assert p.flush(10) == 0
    wait_text(browser, "#messages tbody", "tail-me", timeout=20)
    shot(browser, "live-tail")
    browser.find_element(By.ID, "tail-toggle").click()

    # A test record from the page is written where it says.
    produce = browser.find_element(By.ID, "produce")
    Select(produce.find_element(By.NAME, "partition")).select_by_value("0")
    produce.find_element(By.NAME, "key").send_keys("from-console")
    produce.find_element(By.NAME, "value").send_keys("hello")
    produce.find_element(By.TAG_NAME, "button").click()
    note = wait_text(browser, "#produce-result .notice", "offset")
    assert "partition 0 at offset 25" in note.text, note.text


def test_the_console_is_read_only_by_default(tmp_path):
    s = Server(tmp_path / "data")
    try:
        import urllib.error
        import urllib.request
        req = urllib.request.Request(f"http://{s.http}/api/topics", method="POST",
                                     data=json.dumps({"name": "x", "partitions": 1,
                                                      "replication_factor": 1}).encode(),
                                     headers={"content-type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 403
        assert "console.actions.enable" in json.loads(e.value.read())["error"]
        time.sleep(0.2)
        assert "x" not in AdminClient({"bootstrap.servers": s.addr}).list_topics(timeout=10).topics
    finally:
        s.stop()


def test_with_sasl_people_sign_in_and_see_only_what_their_acls_allow(tmp_path, browser):
    """The console's node reaches the cluster over a SASL listener: the console asks for a
    user name and password, and speaks to the cluster as that user."""
    import base64
    import re
    import urllib.error
    import urllib.request
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, \
        ResourcePatternType, ResourceType
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            'username="broker" password="broker-secret" user_broker="broker-secret" '
            'user_alice="alice-secret";')
    s = Server(tmp_path / "data", "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
               "inter.broker.listener.name=SASL_PLAINTEXT", "sasl.enabled.mechanisms=PLAIN",
               f"listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}",
               "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
               "super.users=User:broker;User:ANONYMOUS", "console.actions.enable=true")
    try:
        plain = re.search(r"listening on (127\.0\.0\.1:\d+)", s.line)[1]
        admin = AdminClient({"bootstrap.servers": plain})
        for f in admin.create_topics([NewTopic(t, 1, 1) for t in ("public", "secret")]).values():
            f.result(15)
        for f in admin.create_acls([AclBinding(ResourceType.TOPIC, "public", ResourcePatternType.LITERAL,
                                               "User:alice", "*", AclOperation.DESCRIBE,
                                               AclPermissionType.ALLOW)]).values():
            f.result(15)

        def call(path, who=None, method="GET", body=None):
            req = urllib.request.Request(f"http://{s.http}{path}", method=method,
                                         data=json.dumps(body).encode() if body else None,
                                         headers={"content-type": "application/json"})
            if who:
                req.add_header("Authorization", "Basic " + base64.b64encode(who.encode()).decode())
            try:
                with urllib.request.urlopen(req, timeout=20) as r:
                    return r.status, json.loads(r.read()), r.headers
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read()), e.headers

        status, _, headers = call("/api/topics")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic"), status
        assert call("/")[0] == 401, "the page itself asks for a sign-in"
        assert call("/api/topics", "alice:wrong")[0] == 401
        status, topics, _ = call("/api/topics", "alice:alice-secret")
        assert status == 200 and [t["name"] for t in topics] == ["public"], topics
        status, topics, _ = call("/api/topics", "broker:broker-secret")
        assert {"public", "secret"} <= {t["name"] for t in topics}, topics
        # alice may not create topics: the cluster's refusal, nothing created.
        status, body, _ = call("/api/topics", "alice:alice-secret", "POST",
                               {"name": "alices", "partitions": 1, "replication_factor": 1})
        assert status == 400 and "TOPIC_AUTHORIZATION_FAILED" in body["error"], body
        assert "alices" not in admin.list_topics(timeout=10).topics

        # The browser, signed in as alice (the header a browser sends after its prompt).
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {
            "Authorization": "Basic " + base64.b64encode(b"alice:alice-secret").decode()}})
        try:
            open_page(browser, s.http, "#/topics")
            wait_for(browser, '#topics tr[data-topic="public"]')
            assert not browser.find_elements(By.CSS_SELECTOR, '#topics tr[data-topic="secret"]')
            shot(browser, "signed-in-topics")
        finally:
            browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
    finally:
        s.stop()
