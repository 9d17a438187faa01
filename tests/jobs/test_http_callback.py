"""``Pyresque_HttpCallback`` against a real HTTP server on a free port (started here, in a thread).

Each behaviour is checked through both faces of the job: ``perform`` (the sync client, every mode
but async) and ``perform_async`` (the pooled AsyncClient, async mode); then end to end by workers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pyresque import Resque
from pyresque.jobs import http_callback
from pyresque.jobs.http_callback import AllowList, CallbackFailed, CallbackRefused, HttpCallback
from pyresque.wire import payload as wire
from support import WorkerProcess, wait_for


class _Server:
    """Answers by path: /ok, /flaky/<n> (503 n times, then 200), /down (503), /slow (1 s), /teapot
    (418), /redirect?to=<url> (302); remembers every request it got."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes]] = []
        self.counts: dict[str, int] = {}
        self.active = 0
        self.max_active = 0
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with lock:
                    server.seen.append((self.command, self.path, body))
                    server.counts[self.path] = server.counts.get(self.path, 0) + 1
                    count = server.counts[self.path]
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    path = self.path
                    if path.startswith("/flaky/"):
                        status = 503 if count <= int(path.rsplit("/", 1)[1]) else 200
                    elif path == "/down":
                        status = 503
                    elif path == "/teapot":
                        status = 418
                    elif path.startswith("/slow"):
                        time.sleep(1.0 if path == "/slow" else float(path.split("=")[1]))
                        status = 200
                    elif path.startswith("/redirect?to="):
                        self.send_response(302)
                        self.send_header("Location", path.split("=", 1)[1])
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    else:
                        status = 200
                    payload = json.dumps({"path": path, "got": body.decode()}).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("X-Request-Id", f"r{count}")
                    self.send_header("X-Secret", "not kept")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    with lock:
                        server.active -= 1

            do_GET = do_POST = do_PUT = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


@pytest.fixture(params=["sync", "async"])
def call(request, monkeypatch):
    """Run the job's sync or async face with its one argument."""
    def run(spec):
        if request.param == "sync":
            return HttpCallback.perform(spec)
        return asyncio.run(HttpCallback.perform_async(spec))
    return run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spec(*urls, **control):
    return {"requests": [{"url": u, "method": "POST", "json": {"n": i}, "timeout": 5} for i, u in enumerate(urls)],
            "control": {"retry_backoff": 0.01, **control}}


def test_success_records_each_request(server, call, monkeypatch):
    monkeypatch.setenv("PYRESQUE_HTTP_CALLBACK_HOSTS", f"127.0.0.1:{server.port}")
    result = call(_spec(server.url("/ok"), server.url("/ok?second")))
    first, second = result["requests"]
    assert (first["status"], first["attempts"], first["method"]) == (200, 1, "POST")
    assert first["headers"]["content-type"] == "application/json" and first["headers"]["x-request-id"] == "r1"
    assert "x-secret" not in first["headers"]  # only the selected headers are kept
    assert "body" not in first and first["elapsed"] >= 0 and second["status"] == 200
    assert [(m, p, json.loads(b)) for m, p, b in server.seen] == [("POST", "/ok", {"n": 0}), ("POST", "/ok?second", {"n": 1})]


def test_a_503_is_retried_then_succeeds(server, call, monkeypatch):
    monkeypatch.setenv("PYRESQUE_HTTP_CALLBACK_HOSTS", "127.0.0.1")
    [record] = call(_spec(server.url("/flaky/2"), retry_times=3))["requests"]
    assert (record["status"], record["attempts"]) == (200, 3) and server.counts["/flaky/2"] == 3


def test_it_gives_up_after_retry_times_with_a_record_of_the_failure(server, call, monkeypatch):
    monkeypatch.setenv("PYRESQUE_HTTP_CALLBACK_HOSTS", "127.0.0.1")
    with pytest.raises(CallbackFailed) as failed:
        call(_spec(server.url("/ok"), server.url("/down"), retry_times=2))
    message = str(failed.value)
    assert message.startswith(f"request 1 (POST {server.url('/down')}) failed after 3 attempt(s): status 503")
    records = json.loads(message.split("records: ", 1)[1])
    assert [r.get("status") for r in records] == [200, 503]
    assert json.loads(records[1]["body"])["path"] == "/down"  # the failing body, kept (truncated)
    assert server.counts["/down"] == 3


def test_a_status_outside_both_lists_fails_at_once(server, call, monkeypatch):
    monkeypatch.setenv("PYRESQUE_HTTP_CALLBACK_HOSTS", "127.0.0.1")
    with pytest.raises(CallbackFailed, match="after 1 attempt"):
        call(_spec(server.url("/teapot"), retry_times=5))
    assert server.counts["/teapot"] == 1


def test_a_connect_error_is_retried_then_recorded(call, monkeypatch):
    monkeypatch.setenv("PYRESQUE_HTTP_CALLBACK_HOSTS", "127.0.0.1")
    url = f"http://127.0.0.1:{_free_port()}/nobody"
    with pytest.raises(CallbackFailed, match=r"failed after 2 attempt\(s\): connection error \(ConnectError\)"):
        call(_spec(url, retry_times=1))


def test_a_timeout_is_retried_then_recorded(server, call, monkeypatch):
    monkeypatch.setenv("PYRESQUE_HTTP_CALLBACK_HOSTS", "127.0.0.1")
    spec = {"requests": [{"url": server.url("/slow"), "timeout": 0.2}], "control": {"retry_times": 1, "retry_backoff": 0}}
    with pytest.raises(CallbackFailed, match=r"failed after 2 attempt\(s\): timeout \(ReadTimeout\) after 0.2s"):
        call(spec)
    assert server.counts["/slow"] == 2


def test_a_host_not_on_the_allow_list_is_refused_without_a_request(server, call, monkeypatch):
    monkeypatch.setenv("PYRESQUE_HTTP_CALLBACK_HOSTS", "api.example.com,127.0.0.1:1")
    with pytest.raises(CallbackRefused, match=f"host 127.0.0.1:{server.port} is not in PYRESQUE_HTTP_CALLBACK_HOSTS"):
        call(_spec(server.url("/ok")))
    assert server.seen == []


def test_callbacks_are_off_unless_enabled(server, call, monkeypatch):
    monkeypatch.delenv("PYRESQUE_HTTP_CALLBACK_HOSTS", raising=False)
    with pytest.raises(CallbackRefused, match="HTTP callbacks are off"):
        call(_spec(server.url("/ok")))
    assert server.seen == []


def test_a_wildcard_never_allows_a_loopback_or_private_address(server, call, monkeypatch):
    monkeypatch.setenv("PYRESQUE_HTTP_CALLBACK_HOSTS", "*")
    with pytest.raises(CallbackRefused, match="non-public address 127.0.0.1"):
        call(_spec(server.url("/ok")))
    assert server.seen == []
    monkeypatch.setenv("PYRESQUE_HTTP_CALLBACK_HOSTS", "*,127.0.0.0/8")  # a CIDR lists it explicitly
    assert call(_spec(server.url("/ok")))["requests"][0]["status"] == 200


def test_a_redirect_to_a_disallowed_host_is_refused(server, call, monkeypatch):
    other = _Server()
    try:
        monkeypatch.setenv("PYRESQUE_HTTP_CALLBACK_HOSTS", f"127.0.0.1:{server.port}")
        with pytest.raises(CallbackRefused, match=f"host 127.0.0.1:{other.port} is not in"):
            call(_spec(server.url(f"/redirect?to={other.url('/ok')}")))
        assert other.seen == [] and server.counts[f"/redirect?to={other.url('/ok')}"] == 1
        monkeypatch.setenv("PYRESQUE_HTTP_CALLBACK_HOSTS", f"127.0.0.1:{server.port},127.0.0.1:{other.port}")
        [record] = call(_spec(server.url(f"/redirect?to={other.url('/ok')}")))["requests"]
        assert record["status"] == 200 and record["final_url"] == other.url("/ok")
        assert other.seen[0][0] == "GET"  # a 302 after a POST: GET, without the body
    finally:
        other.close()


def test_malformed_arguments_are_refused_with_the_reason(call, monkeypatch):
    monkeypatch.setenv("PYRESQUE_HTTP_CALLBACK_HOSTS", "*")
    for spec, reason in (({"requests": []}, "non-empty list"),
                         ({"requests": [{"url": "ftp://x/"}]}, "not an http"),
                         ({"requests": [{"url": "http://x/", "json": 1, "body": "b"}]}, "not both"),
                         ({"requests": [{"url": "http://x/", "method": "BREW"}]}, "method 'BREW'"),
                         ({"requests": [{"url": "http://x/"}], "control": {"retry_times": -1}}, "retry_times")):
        with pytest.raises(CallbackRefused, match=reason):
            call(spec)


def test_the_per_host_cap_bounds_requests_in_flight_to_one_host(server, monkeypatch):
    monkeypatch.setenv("PYRESQUE_HTTP_CALLBACK_HOSTS", "127.0.0.1")
    monkeypatch.setenv("PYRESQUE_HTTP_CALLBACK_PER_HOST", "3")

    async def many():
        spec = {"requests": [{"url": server.url("/slow?s=0.2")}]}
        await asyncio.gather(*(HttpCallback.perform_async(spec) for _ in range(9)))
    asyncio.run(many())
    assert server.counts["/slow?s=0.2"] == 9 and server.max_active == 3


def test_allow_list_parsing():
    allow = AllowList.parse("internal.corp, *.hooks.example.org:8443 10.0.0.0/8 [::1]:9000")
    assert allow.patterns == [("internal.corp", None), ("*.hooks.example.org", 8443), ("::1", 9000)]
    allow.check("a.hooks.example.org", 8443, ["93.184.216.34"])
    with pytest.raises(CallbackRefused, match="not in"):
        allow.check("a.hooks.example.org", 443, ["93.184.216.34"])  # another port
    with pytest.raises(CallbackRefused, match="non-public"):
        allow.check("a.hooks.example.org", 8443, ["192.168.1.5"])  # a wildcard never allows a private address
    allow.check("a.hooks.example.org", 8443, ["10.1.2.3"])  # inside a listed CIDR
    with pytest.raises(CallbackRefused, match="non-public"):
        allow.check("a.hooks.example.org", 8443, ["169.254.169.254"])  # link-local (cloud metadata)
    allow.check("internal.corp", 80, ["192.168.1.5"])  # the exact host name lists it explicitly
    allow.check("::1", 9000, ["::1"])


MODES = {"fork": {}, "threads": {"PYRESQUE_THREADS": "2"}, "async": {"PYRESQUE_ASYNC": "4"}}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_workers_of_every_mode_run_it_by_its_wire_name(server, redis_url, r, tmp_path, mode):
    resque = Resque(redis_url)
    ok = resque.enqueue("default", "Pyresque_HttpCallback", _spec(server.url("/flaky/1"), retry_times=2))
    refused = resque.enqueue("default", "Pyresque_HttpCallback", _spec("http://127.0.0.2:9/x"))
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_HTTP_CALLBACK_HOSTS=f"127.0.0.1:{server.port}",
                       **MODES[mode]) as worker:
        wait_for(lambda: all(resque.status(j).status in wire.FINAL_STATUSES for j in (ok, refused)),
                 what=f"both callbacks\n{worker.log()}")
    [record] = resque.status(ok).result["requests"]
    assert (record["status"], record["attempts"]) == (200, 2)
    [failure] = [json.loads(x) for x in r.lrange("resque:failed", 0, -1)]
    assert failure["exception"] == "pyresque.CallbackRefused" and "is not in PYRESQUE_HTTP_CALLBACK_HOSTS" in failure["error"]
    assert http_callback.JOB_CLASS == failure["payload"]["class"]


def test_async_clients_are_sharded_a_few_requests_each():
    """httpcore's async pool costs O(requests in flight) per request: no client holds more than
    PER_SHARD of them while a new shard may be made; the least busy shard takes the next one."""
    clients = http_callback.AsyncClients()
    taken = [clients.take() for _ in range(http_callback.PER_SHARD)]
    assert taken == [0] * http_callback.PER_SHARD and len(clients.clients) == 1
    assert clients.take() == 1 and len(clients.clients) == 2
    for _ in range(3):
        clients.give(0)
    assert [clients.take() for _ in range(3)] == [1, 1, 1] and len(clients.clients) == 2  # busy 5,1 -> 5,4
    assert clients.busy == [5, 4]
