"""``pyresque web``: its token sources, its one-line errors, and ``create_app`` mounted in another app."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from webserver import TOKEN, free_port, web_env

from pyresque import Resque
from pyresque.web import create_app


def run_web(redis_url, *args, env=None, timeout=20):
    return subprocess.run([sys.executable, "-m", "pyresque", "web", "--redis-url", redis_url, *args],
                          env=env or web_env(), capture_output=True, text=True, timeout=timeout)


def wait_until_serving(port, process, **request):
    deadline = time.monotonic() + 20
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/v1/queues", **request)
        except httpx.TransportError:
            assert process.poll() is None and time.monotonic() < deadline, "pyresque web did not start"
            time.sleep(0.05)


def test_without_a_token_one_is_generated_printed_once_and_required(redis_url, tmp_path):
    port = free_port()
    log_path = tmp_path / "generated.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "pyresque", "web", "--port", str(port), "--redis-url", redis_url],
                                   env=web_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_until_serving(port, process).status_code == 401
        text = log_path.read_text()
        [line] = [line for line in text.splitlines() if "API token" in line]
        token = line.rsplit(" ", 1)[1]
        assert len(token) >= 40 and text.count(token) == 1
        assert wait_until_serving(port, process, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        process.terminate()
        process.wait(10)


def test_the_token_comes_from_the_environment(redis_url, tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "pyresque", "web", "--port", str(port), "--redis-url", redis_url],
                               env=web_env(PYRESQUE_WEB_TOKEN="from-env"), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        assert wait_until_serving(port, process, headers={"Authorization": "Bearer from-env"}).status_code == 200
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode()
    assert "from-env" not in output and "API token" not in output


def test_an_empty_or_missing_token_file_is_a_usage_error(redis_url, tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path, words in ((str(empty), "is empty"), (str(tmp_path / "absent"), "cannot read it")):
        done = run_web(redis_url, "--token-file", path, "--port", "0")
        assert done.returncode == 2 and words in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_an_unreachable_redis_is_one_line_and_exit_1(tmp_path):
    token = tmp_path / "token"
    token.write_text(TOKEN)
    done = run_web(f"redis://127.0.0.1:{free_port()}/0", "--token-file", str(token), "--port", "0")
    assert done.returncode == 1 and "cannot reach Redis" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_missing_web_extra_is_one_line_naming_the_install_command(redis_url, tmp_path):
    shadow = tmp_path / "shadow" / "fastapi"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'fastapi'\", name='fastapi')\n")
    env = web_env()
    env["PYTHONPATH"] = f"{shadow.parent}:{env['PYTHONPATH']}"
    done = run_web(redis_url, "--port", "0", env=env)
    assert done.returncode == 1, done.stderr
    assert "pip install 'pyresque[web]'" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_create_app_mounts_inside_another_app_with_extra_routes(redis_url):
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route
    from starlette.testclient import TestClient

    extra = Route("/metrics", lambda request: PlainTextResponse("# metrics\n"))
    api = create_app(Resque(redis_url), token="s3cret", routes=[extra])
    parent = Starlette(routes=[Mount("/resque", app=api)])
    with TestClient(parent) as client:
        headers = {"Authorization": "Bearer s3cret"}
        assert client.post("/resque/api/v1/queues/default/jobs", json={"class": "A"}, headers=headers).status_code == 201
        assert client.get("/resque/api/v1/queues", headers=headers).json()[0]["size"] == 1
        assert client.get("/resque/metrics").status_code == 401  # behind the same gate
        assert client.get("/resque/metrics", headers=headers).text == "# metrics\n"
        assert client.get("/resque/api/v1/docs").status_code == 200  # open, under the mount too


def test_the_docs_page_escapes_every_text_it_shows():
    from pyresque.web.docs import render

    hostile = "<script>alert(1)</script>"
    document = {"info": {"title": hostile, "description": hostile, "version": hostile},
                "paths": {f"/x/{hostile}": {"get": {"summary": hostile, "description": hostile,
                                                     "parameters": [{"name": hostile, "in": "query",
                                                                     "description": hostile}],
                                                     "responses": {hostile: {}}}}},
                "components": {"schemas": {hostile: {"properties": {hostile: {"description": hostile}}}}}}
    page = render(document, f"/{hostile}")
    assert "<script" not in page and page.count("&lt;script&gt;") >= 10
