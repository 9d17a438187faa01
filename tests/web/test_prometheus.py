"""``/metrics``: metrics_endpoint mounted in a minimal Starlette app, served by uvicorn in a
subprocess and scraped over HTTP; the body parsed with prometheus-client's own parser."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import vectors
from pyresque import Resque
from pyresque.scheduling.delayed import enqueue_at
from pyresque.web.prometheus import render
from support import ROOT, WorkerProcess, wait_for

SERVER = """
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from pyresque import Resque
from pyresque.web.prometheus import metrics_endpoint

app = Starlette(routes=[Route("/metrics", metrics_endpoint)])
app.state.resque = Resque(sys.argv[1])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(redis_url, tmp_path):
    port = free_port()
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", SERVER, redis_url, str(port)], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def up() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            return False

    wait_for(up, timeout=15, what="the metrics server to listen")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)
    log.close()


def scrape(base: str, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(base + "/metrics", headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode(), response.headers["Content-Type"]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_scrape_shows_queues_workers_counters_and_the_histogram_of_a_job_that_ran(redis_url, r, tmp_path, server):
    resque = Resque(redis_url)
    resque.enqueue("default", "SleepJob", 0.03)
    resque.enqueue("default", "FailJob", "boom")
    with WorkerProcess(redis_url, tmp_path, PYRESQUE_PRUNE_INTERVAL="100000000") as worker:
        ours = worker.worker_id(r)
        wait_for(lambda: r.hget("resque:pyresque_metrics_total", "FailJob|f") == b"1", what="both jobs run")
        vectors.load_state(r, vectors.state(vectors.load("php-resque-v1.3.6/b2_worker_during_job"), "during_job"))
        vectors.load_state(r, vectors.state(vectors.load("ruby-resque/f2_ruby_worker"), "during_job"))
        resque.store.push("later", '{"class":"NoopJob","args":[],"queue_time":%f}' % (time.time() - 30))
        resque.enqueue("later", "NoopJob")
        enqueue_at(resque, time.time() + 600, "default", "NoopJob")
        text, content_type = scrape(server)
    assert content_type.startswith("text/plain")
    got = samples(text)
    assert got[("pyresque_job_duration_seconds_count", (("class", "SleepJob"),))] == 1
    assert got[("pyresque_job_duration_seconds_bucket", (("class", "SleepJob"), ("le", "0.025")))] == 0
    assert got[("pyresque_job_duration_seconds_bucket", (("class", "SleepJob"), ("le", "+Inf")))] == 1
    assert got[("pyresque_job_duration_seconds_sum", (("class", "SleepJob"),))] >= 0.03
    assert got[("pyresque_job_failures_total", (("class", "FailJob"),))] == 1
    assert got[("pyresque_job_runs_total", (("class", "FailJob"),))] == 1
    assert got[("pyresque_queue_jobs", (("queue", "later"),))] == 2
    assert 29 <= got[("pyresque_queue_latency_seconds", (("queue", "later"),))] < 60
    assert got[("pyresque_queue_jobs", (("queue", "default"),))] == 0
    assert got[("pyresque_queue_latency_seconds", (("queue", "default"),))] == 0
    host = ours.split(":")[0]
    assert got[("pyresque_workers", (("host", host), ("language", "pyresque"), ("state", "idle")))] == 1
    assert got[("pyresque_workers", (("host", "vm"), ("language", "php"), ("state", "working")))] == 1
    assert got[("pyresque_workers", (("host", "vm"), ("language", "ruby"), ("state", "working")))] == 1
    assert got[("pyresque_jobs_processed_total", ())] == int(r.get("resque:stat:processed"))
    assert got[("pyresque_jobs_failed_total", ())] == int(r.get("resque:stat:failed"))
    assert got[("pyresque_failed_list_jobs", ())] == r.llen("resque:failed")
    assert got[("pyresque_delayed_jobs", ())] == 1 and got[("pyresque_delayed_timestamps", ())] == 1
    assert got[("pyresque_delayed_overdue_seconds", ())] == 0
    assert got[("pyresque_unreadable_keys", ())] == 0


def test_openmetrics_when_asked_and_class_names_escaped(redis_url, r, server):
    odd = 'Odd"Class\\with\nnewline'
    r.hset("resque:pyresque_metrics_total", mapping={f"{odd}|p": 2, f"{odd}|us": 12_500, f"{odd}|b1": 2})
    text, content_type = scrape(server, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text") and text.endswith("# EOF\n")
    text, _ = scrape(server)
    got = samples(text)
    assert got[("pyresque_job_duration_seconds_bucket", (("class", odd), ("le", "0.01")))] == 2
    assert got[("pyresque_job_duration_seconds_sum", (("class", odd),))] == 0.0125


def test_keys_of_the_wrong_type_are_counted_not_fatal(resque, r):
    resque.enqueue("good", "NoopJob")
    r.sadd("resque:queues", "broken")
    r.hset("resque:queue:broken", "x", "y")
    r.set("resque:failed", "not a list")
    r.set("resque:pyresque_metrics_total", "not a hash")
    body, _ = render(resque)
    got = samples(body.decode())
    assert got[("pyresque_queue_jobs", (("queue", "good"),))] == 1
    assert got[("pyresque_queue_jobs", (("queue", "broken"),))] == 0
    assert got[("pyresque_failed_list_jobs", ())] == 0
    assert got[("pyresque_unreadable_keys", ())] >= 3


def test_the_grafana_dashboard_uses_only_names_that_metrics_exposes(resque):
    dashboard = json.loads((ROOT / "demo" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\bpyresque_[a-z_]+", expr)}
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    body, _ = render(resque)  # an empty Redis: every family is still declared
    exposed = {family.name + suffix for family in text_string_to_metric_families(body.decode())
               for suffix in suffixes[family.type]}
    assert used and used <= exposed, used - exposed
    assert {"pyresque_queue_jobs", "pyresque_queue_latency_seconds", "pyresque_workers",
            "pyresque_job_duration_seconds_bucket", "pyresque_jobs_failed_total"} <= used
