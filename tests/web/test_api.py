"""The HTTP API against a real ``pyresque web`` subprocess, a real redis-server and real workers."""

from __future__ import annotations

import json
import threading
import time

import vectors
from pyresque.wire import payload as wire
from support import WorkerProcess


def enqueue(api, body, queue="default", **options):
    response = api.post(f"/api/v1/queues/{queue}/jobs", json=body, **options)
    assert response.status_code == 201, response.text
    return response.json()


# -- producing and following jobs --------------------------------------------------------------
def test_enqueue_run_by_a_worker_then_complete_with_its_result(api, redis_url, tmp_path):
    job_id = enqueue(api, {"class": "PHP_Job", "args": [{"name": "x"}]})["id"]
    assert api.get(f"/api/v1/jobs/{job_id}").json()["status"] == "waiting"
    with WorkerProcess(redis_url, tmp_path):
        done = api.get(f"/api/v1/jobs/{job_id}/wait", params={"timeout": 20}).json()
    assert done["status"] == "complete" and done["final"] is True and done["code"] == wire.COMPLETE
    assert done["result"] == {"args": {"name": "x"}, "queue": "default", "id": job_id}
    assert done["error"] is None and done["started"] is not None
    assert api.get(f"/api/v1/jobs/{job_id}").json() == done


def test_metrics_show_the_histogram_of_a_job_that_ran_over_http(api, redis_url, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    job_id = enqueue(api, {"class": "PHP_Job", "args": [{"timed": True}]})["id"]
    with WorkerProcess(redis_url, tmp_path):
        assert api.get(f"/api/v1/jobs/{job_id}/wait", params={"timeout": 20}).json()["status"] == "complete"
    assert api.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    scraped = api.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
    samples = {(s.name, s.labels.get("class"), s.labels.get("le")): s.value
               for s in families["pyresque_job_duration_seconds"].samples}
    assert samples[("pyresque_job_duration_seconds_count", "PHP_Job", None)] >= 1
    assert samples[("pyresque_job_duration_seconds_bucket", "PHP_Job", "+Inf")] >= 1
    assert samples[("pyresque_job_duration_seconds_sum", "PHP_Job", None)] > 0
    assert any(s.value >= 1 for s in families["pyresque_jobs_processed"].samples)


def test_a_failed_job_shows_its_exception_and_message(api, redis_url, tmp_path):
    job_id = enqueue(api, {"class": "FailJob", "args": ["boom over http"]})["id"]
    with WorkerProcess(redis_url, tmp_path):
        done = api.get(f"/api/v1/jobs/{job_id}/wait", params={"timeout": 20}).json()
    assert done["status"] == "failed"
    error = done["error"]
    assert (error["exception"], error["message"], error["queue"]) == ("RuntimeError", "boom over http", "default")
    assert error["failed_at"] and error["worker"]
    listed = api.get("/api/v1/failed", params={"id": job_id}).json()
    assert [(row["id"], row["class"], row["exception"]) for row in listed] == [(job_id, "FailJob", "RuntimeError")]
    retried = api.post(f"/api/v1/jobs/{job_id}/retry", params={"remove": "true"})
    assert retried.status_code == 200 and retried.json()["id"] == job_id
    assert api.get(f"/api/v1/jobs/{job_id}").json()["status"] == "waiting"
    assert api.get("/api/v1/failed").json() == []
    assert api.post(f"/api/v1/jobs/{job_id}/retry").json()["error"]["code"] == "failed_job_not_found"


def test_wait_answers_with_the_current_status_after_its_timeout(api):
    job_id = enqueue(api, {"class": "PHP_Job"})["id"]
    started = time.monotonic()
    doc = api.get(f"/api/v1/jobs/{job_id}/wait", params={"timeout": 0.3}).json()
    assert doc["status"] == "waiting" and doc["final"] is False
    assert time.monotonic() - started >= 0.3


def test_wait_returns_as_soon_as_the_job_is_final(api, resque):
    job_id = enqueue(api, {"class": "PHP_Job"})["id"]
    threading.Timer(0.3, resque.update_status, (job_id, wire.COMPLETE, {"ok": 1})).start()
    doc = api.get(f"/api/v1/jobs/{job_id}/wait", params={"timeout": 20}).json()
    assert doc["status"] == "complete" and doc["result"] == {"ok": 1}


def test_php_shaped_enqueue_writes_the_bytes_of_the_php_resque_vector(api, r):
    job_id = enqueue(api, {"class": "PHP_Job", "args": [{"name": "x", "n": 1}], "shape": "php"})["id"]
    assert len(job_id) == 32
    ours = vectors.normalise_state(vectors.dump(r))
    theirs = vectors.normalise_state(vectors.state(vectors.load("php-resque-v1.3.6/a_enqueue_tracked"), "after_enqueue"))
    assert ours == theirs


def test_ruby_shaped_enqueue_writes_the_bytes_of_the_ruby_vector(api, r):
    assert enqueue(api, {"class": "SomeJob", "args": [1, "two", {"k": "v"}], "shape": "ruby"})["id"] is None
    theirs = vectors.state(vectors.load("ruby-resque/f1_ruby_enqueue"), "after_enqueue")
    assert r.lrange("resque:queue:default", 0, -1) == [v.encode() for v in theirs["resque:queue:default"]["value"]]


def test_bulk_enqueue_keeps_order_and_tracks_each_job(api, r):
    body = [{"class": "A", "args": [1]}, {"class": "A", "args": [2]}, {"class": "B", "args": [3], "track": False},
            {"class": "A", "args": [4]}]
    ids = enqueue(api, body, queue="bulk")["ids"]
    items = [json.loads(raw) for raw in r.lrange("resque:queue:bulk", 0, -1)]
    assert [(item["class"], item["args"], item["id"]) for item in items] == [
        ("A", [1], ids[0]), ("A", [2], ids[1]), ("B", [3], ids[2]), ("A", [4], ids[3])]
    assert [r.exists(f"resque:job:{job_id}:status") for job_id in ids] == [1, 1, 0, 1]


def test_delayed_enqueue_lands_in_the_delayed_queue_and_can_be_removed(api, r):
    soon = enqueue(api, {"class": "A", "args": [1], "in": "1h"})
    later = enqueue(api, {"class": "A", "args": [2], "at": time.time() + 7200})
    assert soon["scheduled_at"] > time.time() + 3500 and r.llen("resque:queue:default") == 0
    listed = api.get("/api/v1/delayed").json()
    assert [(row["id"], row["args"], row["queue"]) for row in listed] == [(soon["id"], [1], "default"),
                                                                          (later["id"], [2], "default")]
    assert api.get(f"/api/v1/jobs/{soon['id']}").json()["status"] == "waiting"
    assert api.delete("/api/v1/delayed", params={"id": soon["id"]}).json() == {"removed": 1}
    assert api.delete("/api/v1/delayed", params={"id": soon["id"]}).status_code == 404
    assert [row["id"] for row in api.get("/api/v1/delayed").json()] == [later["id"]]


def test_a_time_already_past_enqueues_at_once(api, r):
    enqueue(api, {"class": "A", "at": "2020-01-01T00:00:00Z"})
    assert r.llen("resque:queue:default") == 1


# -- operating --------------------------------------------------------------------------------
def test_queues_show_size_and_latency_and_peek_pages(api):
    enqueue(api, [{"class": "A", "args": [n]} for n in range(5)], queue="work")
    time.sleep(0.05)
    [queue] = api.get("/api/v1/queues").json()
    assert queue["name"] == "work" and queue["size"] == 5 and queue["oldest_age"] >= 0.04
    page = api.get("/api/v1/queues/work/jobs", params={"start": 1, "count": 2}).json()
    assert page["size"] == 5 and [job["payload"]["args"] for job in page["jobs"]] == [[1], [2]]
    assert [job["index"] for job in page["jobs"]] == [1, 2]


def test_remove_jobs_by_id_and_by_class_and_clear_a_queue(api, r):
    ids = enqueue(api, [{"class": "A", "args": [1]}, {"class": "B", "args": [2]}, {"class": "B", "args": [3]},
                        {"class": "C"}])["ids"]
    assert api.delete(f"/api/v1/queues/default/jobs/{ids[0]}").json() == {"removed": 1}
    assert api.delete("/api/v1/queues/default/jobs", params={"class": "B", "args": "[3]"}).json() == {"removed": 1}
    missing = api.delete("/api/v1/queues/default/jobs", params={"class": "Nope"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "nothing_matched"
    assert api.delete("/api/v1/queues/default").json() == {"removed": 2}
    assert r.exists("resque:queue:default") == 0


def test_failed_jobs_list_show_retry_and_remove(api, r):
    for job_class in ("FailA", "FailB", "FailA"):
        payload = wire.build_payload(job_class, [1], None)
        r.rpush("resque:failed", wire.encode_failure(wire.build_failure(payload, "RuntimeError", "broke", ["x:1"],
                                                                        "host:1:default", "default")))
    listed = api.get("/api/v1/failed", params={"class": "FailA"}).json()
    assert [row["index"] for row in listed] == [0, 2]
    shown = api.get("/api/v1/failed/1").json()
    assert shown["class"] == "FailB" and shown["record"]["error"] == "broke" and shown["attempt"] == 1
    retried = api.post("/api/v1/failed/1/retry", params={"digest": shown["digest"]}).json()
    assert retried["retried_at"] is not None and r.llen("resque:queue:default") == 1
    again = api.post("/api/v1/failed/1/retry")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_retried"
    bulk = api.post("/api/v1/failed/retry", json={"class": "FailA", "remove": True}).json()
    assert bulk["done"] == 2 and r.llen("resque:failed") == 1 and r.llen("resque:queue:default") == 3
    assert api.delete("/api/v1/failed/0").json()["class"] == "FailB"
    assert api.get("/api/v1/failed/0").status_code == 404


def test_failed_bulk_remove_needs_a_filter_or_all(api, r):
    for queue in ("q1", "q2"):
        r.rpush("resque:failed", wire.encode_failure(wire.build_failure(wire.build_payload("F", [], None), "E", "m",
                                                                        [], "w", queue)))
    refused = api.delete("/api/v1/failed")
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "all"
    assert api.delete("/api/v1/failed", params={"queue": "q1"}).json()["done"] == 1
    assert api.delete("/api/v1/failed", params={"all": "true"}).json()["done"] == 1
    assert r.llen("resque:failed") == 0


def test_workers_stats_schedules_pause_and_resume(api, r, redis_url, tmp_path):
    with WorkerProcess(redis_url, tmp_path, queue="high") as worker:
        worker.worker_id(r)
        [view] = api.get("/api/v1/workers").json()
        assert view["pid"] == worker.pid and view["queues"] == ["high"] and view["state"] == "idle"
        stats = api.get("/api/v1/stats").json()
        assert stats["workers"] == 1 and stats["processed"] == 0 and stats["paused_all"] is False
    assert api.post("/api/v1/pause").json() == {"paused": True, "ignored_by": []}
    assert r.get("resque:pause-all-workers") == b"true"
    assert api.get("/api/v1/stats").json()["paused_all"] is True
    assert api.post("/api/v1/resume").json()["paused"] is False and not r.exists("resque:pause-all-workers")
    assert api.get("/api/v1/schedules").json() == []


def test_the_docs_page_is_ours_plain_html_and_loads_nothing(api, anonymous):
    page = anonymous.get("/api/v1/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text and "http://" not in page.text and "https://" not in page.text
    assert "/api/v1/queues/{queue}/jobs" in page.text and "JobIn" in page.text
    assert api.get("/docs").status_code == 404 and api.get("/redoc").status_code == 404  # FastAPI's, from a CDN
    document = anonymous.get("/api/v1/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
