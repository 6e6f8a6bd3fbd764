"""Starts the real `strom server` binary for the interop tests (on a free port, in a temp dir)."""
import os
import signal
import socket
import subprocess
import threading

import pytest

# Every test node serves HTTP on a port of its own, not the default 9644.
HTTP_ANY_PORT = "http.listeners=http://127.0.0.1:0"
STROM = os.environ.get("STROM_BIN", os.path.join(os.path.dirname(__file__), "../../target/release/strom"))


class Server:
    def __init__(self, data_dir, *overrides):
        args = [STROM, "server", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                "--override", f"log.dirs={data_dir}", "--override", HTTP_ANY_PORT]
        for o in overrides:
            args += ["--override", o]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "RUST_LOG": "warn"}, text=True)
        line = self.proc.stdout.readline()
        self.line = line
        self.addr = next(w for w in line.split() if w.startswith("127.0.0.1:")).rstrip(",")
        # The next line names the HTTP listener (metrics, health), unless it is turned off.
        off = "http.listeners=" in overrides
        self.http = None if off else self.proc.stdout.readline().split()[-1]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0

    def kill(self):
        self.proc.kill()
        self.proc.wait()


class CuttingProxy:
    """A TCP relay in front of the broker that loses responses: every `cut_every`-th chunk the
    broker sends is dropped and both connections are closed, as a network failure would after
    the broker has acted on a request. Clients reconnect and retry. `cut_every = 0` stops it."""

    def __init__(self, cut_every=20):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.upstream = None
        self.cut_every = cut_every
        self.cuts = 0
        self.chunks = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                broker = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, broker, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(broker, client, True), daemon=True).start()

    def _pump(self, src, dst, responses):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if responses:
                    with self.lock:
                        self.chunks += 1
                        cut = self.cut_every > 0 and self.chunks % self.cut_every == 0
                        self.cuts += cut
                    if cut:
                        break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "data")
    yield s
    if s.proc.poll() is None:
        s.stop()


def openssl(*args):
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a broker certificate for 127.0.0.1/localhost and a client certificate."""
    d = tmp_path_factory.mktemp("pki")
    ca_key, ca = d / "ca.key", d / "ca.pem"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
            "-days", "2", "-subj", "/CN=strom test CA")

    def issue(name, ext):
        key, csr, crt, extfile = (d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt",
                                  d / f"{name}.ext")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                "-subj", f"/CN={name}")
        extfile.write_text(ext)
        openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                "-out", crt, "-days", "2", "-extfile", extfile)
        return key, crt

    broker_key, broker_crt = issue(
        "broker",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    store = d / "broker.pem"
    store.write_text(broker_key.read_text() + broker_crt.read_text())
    client_key, client_crt = issue("alice", "extendedKeyUsage=clientAuth\n")
    return {"ca": str(ca), "store": str(store), "client_key": str(client_key),
            "client_cert": str(client_crt)}
