"""Bad input over HTTP: each a clear 4xx in the one error shape, never a 500; the token; Idempotency-Key."""

from __future__ import annotations

import threading

import pytest

from pyresque.store.embedded import RedisServer


def error_of(response, status):
    assert response.status_code == status, response.text
    doc = response.json()
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message", "field"}, doc
    return doc["error"]


def post_raw(api, body, queue="default", **headers):
    return api.post(f"/api/v1/queues/{queue}/jobs", content=body, headers={"content-type": "application/json", **headers})


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("queue, reason", [("a,b", "','"), ("%20padded%20", "whitespace"), ("tab%09in", "control")])
def test_a_queue_name_resque_cannot_carry_is_a_422_naming_the_queue(api, r, queue, reason):
    error = error_of(api.post(f"/api/v1/queues/{queue}/jobs", json={"class": "A"}), 422)
    assert error["code"] == "invalid_queue" and error["field"] == "queue" and reason in error["message"]
    assert r.dbsize() == 0


@pytest.mark.parametrize("job, field", [({"class": ""}, "class"), ({"class": 5}, "class"), ({"args": []}, "class"),
                                        ({"class": "A", "arg": []}, "arg")])
def test_a_class_the_wire_refuses_or_an_unknown_field_is_a_422_naming_it(api, r, job, field):
    error = error_of(api.post("/api/v1/queues/default/jobs", json=job), 422)
    assert error["field"] == field
    assert r.dbsize() == 0


@pytest.mark.parametrize("args", [{"name": "x"}, "x", 1, None])
def test_args_that_are_not_a_json_list_are_a_422(api, r, args):
    error = error_of(api.post("/api/v1/queues/default/jobs", json={"class": "A", "args": args}), 422)
    assert error["field"] == "args" and "list" in error["message"]
    assert r.dbsize() == 0


def test_a_bad_job_in_a_bulk_is_named_by_position_and_nothing_is_pushed(api, r):
    body = [{"class": "A"}, {"class": "A", "args": {"k": 1}}]
    assert error_of(api.post("/api/v1/queues/default/jobs", json=body), 422)["field"] == "[1].args"
    assert error_of(api.post("/api/v1/queues/default/jobs", json=[{"class": "A"}, 7]), 422)["field"] == "[1]"
    assert r.dbsize() == 0


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b'{"class": NaN}', b"[" * 5000 + b"]" * 5000])
def test_a_body_that_is_not_json_is_a_400(api, r, body):
    assert error_of(post_raw(api, body), 400)["code"] == "invalid_json"
    assert r.dbsize() == 0


@pytest.mark.parametrize("job, field", [({"class": "A", "in": -1}, "in"), ({"class": "A", "in": "soon"}, "in"),
                                        ({"class": "A", "at": "tomorrow"}, "at"),
                                        ({"class": "A", "at": 1, "in": 1}, "at"),
                                        ({"class": "A", "at": 1e300}, "at"),  # found by the schema fuzz: a 500
                                        ({"class": "A", "in": "99999999999d"}, "in")])
def test_a_bad_delay_is_a_422(api, r, job, field):
    error = error_of(api.post("/api/v1/queues/default/jobs", json=job), 422)
    assert error["code"] == "invalid_delay" and error["field"] == field
    assert r.dbsize() == 0


def test_a_huge_body_is_a_413_whether_its_length_is_declared_or_streamed(api, r):
    huge = b'{"class":"A","args":["' + b"x" * (5 * 1024 * 1024) + b'"]}'
    assert error_of(post_raw(api, huge), 413)["code"] == "body_too_large"

    def chunks():
        for _ in range(6):
            yield b"x" * (1024 * 1024)

    streamed = api.post("/api/v1/queues/default/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert error_of(streamed, 413)["code"] == "body_too_large"
    assert r.dbsize() == 0


def test_an_unknown_job_id_is_a_404(api):
    for path in ("/api/v1/jobs/0123456789abcdef0123456789abcdef", "/api/v1/jobs/nope/wait?timeout=1"):
        error = error_of(api.get(path), 404)
        assert error["code"] == "unknown_job" and error["field"] == "id"


def test_out_of_range_query_values_are_a_422_naming_them(api):
    assert error_of(api.get("/api/v1/jobs/x/wait", params={"timeout": 61}), 422)["field"] == "timeout"
    assert error_of(api.get("/api/v1/queues/default/jobs", params={"count": 0}), 422)["field"] == "count"
    assert error_of(api.get("/api/v1/failed/-1"), 422)["field"] == "index"
    assert error_of(api.get("/api/v1/failed/0", params={"digest": "xyz"}), 422)["field"] == "digest"
    assert error_of(api.delete("/api/v1/queues/default/jobs", params={"class": "A", "args": "{}"}), 422)["field"] == "args"


def test_an_unknown_route_is_a_404_and_a_wrong_method_a_405_in_the_same_shape(api):
    assert error_of(api.get("/api/v1/nowhere"), 404)["code"] == "not_found"
    assert error_of(api.put("/api/v1/pause"), 405)["code"] == "method_not_allowed"


def test_an_unreadable_status_key_is_a_409_not_a_500(api, r):
    r.set("resque:job:broken:status", b"\xff not json")
    assert error_of(api.get("/api/v1/jobs/broken"), 409)["code"] == "unreadable_status"
    r.rpush("resque:queue:odd", b"\xff not a payload")
    [job] = api.get("/api/v1/queues/odd/jobs").json()["jobs"]
    assert job["payload"] is None and job["error"] and job["raw"]


# -- the token --------------------------------------------------------------------------------
def test_every_request_needs_the_token_when_reads_are_not_public(web, anonymous, r):
    for method, path in [("GET", "/api/v1/queues"), ("GET", "/api/v1/jobs/x"), ("POST", "/api/v1/pause"),
                         ("POST", "/api/v1/queues/default/jobs")]:
        response = anonymous.request(method, path, json={"class": "A"})
        error = error_of(response, 401)
        assert error["code"] == "missing_token" and response.headers["www-authenticate"] == "Bearer"
    with web.client(token="wrong") as wrong:
        assert error_of(wrong.post("/api/v1/queues/default/jobs", json={"class": "A"}), 401)["code"] == "invalid_token"
        assert error_of(wrong.get("/api/v1/queues"), 401)["code"] == "invalid_token"
    no_scheme = anonymous.get("/api/v1/queues", headers={"Authorization": web.token})  # the token, no "Bearer "
    assert error_of(no_scheme, 401)["code"] == "invalid_token"
    assert r.dbsize() == 0 and not r.exists("resque:pause-all-workers")


def test_public_read_opens_gets_but_changes_still_need_the_token(start_web, r):
    server = start_web("--public-read")
    with server.client(token=None) as anonymous:
        assert anonymous.get("/api/v1/queues").status_code == 200
        assert error_of(anonymous.post("/api/v1/queues/default/jobs", json={"class": "A"}), 401)
        assert error_of(anonymous.delete("/api/v1/queues/default"), 401)
    with server.client() as api:
        assert api.post("/api/v1/queues/default/jobs", json={"class": "A"}).status_code == 201
    assert r.llen("resque:queue:default") == 1


# -- Idempotency-Key --------------------------------------------------------------------------
def test_a_retried_request_with_one_key_enqueues_once_and_gets_the_first_answer(api, r):
    headers = {"Idempotency-Key": "order-42"}
    first = api.post("/api/v1/queues/default/jobs", json={"class": "A", "args": [42]}, headers=headers)
    again = api.post("/api/v1/queues/default/jobs", json={"class": "A", "args": [42]}, headers=headers)
    assert first.status_code == again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert r.llen("resque:queue:default") == 1
    [key] = r.keys("resque:pyresque_idempotency:*")
    assert 0 < r.ttl(key) <= 24 * 3600


def test_one_key_for_another_request_is_a_422(api, r):
    headers = {"Idempotency-Key": "k1"}
    assert api.post("/api/v1/queues/default/jobs", json={"class": "A"}, headers=headers).status_code == 201
    error = error_of(api.post("/api/v1/queues/default/jobs", json={"class": "B"}, headers=headers), 422)
    assert error["code"] == "idempotency_key_reused" and error["field"] == "Idempotency-Key"
    assert r.llen("resque:queue:default") == 1


def test_a_failed_request_lets_its_key_go(api, r):
    headers = {"Idempotency-Key": "k2"}
    assert api.post("/api/v1/queues/default/jobs", json={"class": ""}, headers=headers).status_code == 422
    assert r.keys("resque:pyresque_idempotency:*") == []


def test_concurrent_requests_with_one_key_enqueue_once(web, api, r):
    answers = []

    def send():
        with web.client() as client:
            answers.append(client.post("/api/v1/queues/default/jobs", json=[{"class": "A"}] * 200,
                                       headers={"Idempotency-Key": "burst"}))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {answer.status_code for answer in answers} <= {201, 409}
    bodies = {tuple(answer.json()["ids"]) for answer in answers if answer.status_code == 201}
    assert len(bodies) == 1
    assert r.llen("resque:queue:default") == 200


def test_a_bad_idempotency_key_is_a_400(api, r):
    error = error_of(api.post("/api/v1/queues/default/jobs", json={"class": "A"},
                              headers={"Idempotency-Key": "x" * 256}), 400)
    assert error["field"] == "Idempotency-Key"
    assert r.dbsize() == 0


def test_redis_going_away_is_a_503(start_web):
    own = RedisServer().start()
    try:
        server = start_web(redis_url=own.url)
    finally:
        own.close()
    with server.client() as api:
        assert error_of(api.get("/api/v1/queues"), 503)["code"] == "redis_unavailable"
        assert error_of(api.post("/api/v1/queues/default/jobs", json={"class": "A"}), 503)


