"""Where Redis is: URLs, php's REDIS_BACKEND forms, and every place a URL is shown with its
secrets masked (real CLI, worker, scheduler and pool processes against an unreachable Redis)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest
import redis

from pyresque.exceptions import ConfigurationError
from pyresque.store.connection import RedisSettings, backend_to_url, make_client
from pyresque.store.embedded import find_redis_server, free_port
from support import ROOT, wait_for


def test_redis_url_wins_over_backend():
    s = RedisSettings.from_env({"REDIS_URL": "redis://:pw@h:1/2", "REDIS_BACKEND": "x:9"})
    assert s.url == "redis://:pw@h:1/2" and s.display_url == "redis://:***@h:1/2" and s.prefix == "resque"


@pytest.mark.parametrize(
    "backend, db, url",
    [
        ("localhost:6380", None, "redis://localhost:6380/0"),
        ("localhost", "2", "redis://localhost:6379/2"),
        ("h:1", "0", "redis://h:1/0"),
        ("redis://h:1", "4", "redis://h:1/4"),
        ("redis://h:1/5", "4", "redis://h:1/5"),
        ("tcp://h:1", None, "redis://h:1"),
        ("unix:///tmp/r.sock", "3", "unix:///tmp/r.sock?db=3"),
    ],
)
def test_php_backend_forms(backend, db, url):
    assert backend_to_url(backend, db) == url


@pytest.mark.parametrize("env", [{"REDIS_URL": "http://x"}, {"REDIS_URL": "redis://h:notaport"},
                                 {"REDIS_BACKEND": "h:port"}, {"REDIS_BACKEND": "h", "REDIS_BACKEND_DB": "x"}])
def test_bad_settings_raise(env):
    with pytest.raises(ConfigurationError):
        RedisSettings.from_env(env)


def test_prefix_from_env_and_argument():
    assert RedisSettings.from_env({"PREFIX": "app"}).prefix == "app"
    assert RedisSettings.from_env({"PREFIX": ""}).prefix == "resque"
    assert RedisSettings.from_env({"PREFIX": "app"}, prefix="other").prefix == "other"


SECRET = "s3cretpw"


@pytest.mark.parametrize("url, shown", [
    ("redis://:s3cretpw@h:1/0", "redis://:***@h:1/0"),
    ("redis://user:s3cretpw@h:1/0?db=2", "redis://user:***@h:1/0?db=2"),
    ("rediss://h:1/0?password=s3cretpw", "rediss://h:1/0?password=***"),
    ("redis://h/0?db=1&Password=s3cretpw&ssl_password=s3cretpw", "redis://h/0?db=1&Password=***&ssl_password=***"),
    ("redis://h/0?pass%77ord=s3cretpw", "redis://h/0?pass%77ord=***"),  # redis-py unquotes the name
    ("redis://h/0?password=s3#cretpw", "redis://h/0?password=***#***"),
    ("redis://:s3/cretpw@h:1/0", "redis://:***@h:1/0"),  # urlsplit's netloc ends at the /
    ("redis://:s3?cr#etpw@h:1", "redis://:***@h:1"),
    ("redis://:p@ss@h:1/0", "redis://:***@h:1/0"),
    ("redis://:s3cretpw@[::1/0", "redis://:***@[::1/0"),  # urlsplit raises on it
    ("unix://:s3cretpw@/tmp/r.sock?db=1", "unix://:***@/tmp/r.sock?db=1"),
    ("unix:///tmp/r.sock?password=s3cretpw", "unix:///tmp/r.sock?password=***"),
    ("user:s3cretpw@h:1", "user:***@h:1"),  # a php REDIS_BACKEND
    ("redis://user@h/0?client_name=a@b", "redis://user@h/0?client_name=a@b"),  # no password: as it is
])
def test_every_form_of_password_is_masked(url, shown):
    assert RedisSettings(url=url).display_url == shown


@pytest.mark.parametrize("env", [
    {"REDIS_URL": "redis://:s3cret/pw@h:1/0"}, {"REDIS_URL": "redis://:s3cretpw@h:x/0"},
    {"REDIS_URL": "redis://:s3cretpw@/0"}, {"REDIS_URL": "redis://:s3cretpw@[::1/0"},
    {"REDIS_URL": "http://:s3cretpw@h"}, {"REDIS_BACKEND": "u:s3cretpw@h:x"},
    {"REDIS_BACKEND": "redis://:s3cretpw@[::1", "REDIS_BACKEND_DB": "2"},
])
def test_a_bad_url_is_a_configuration_error_that_hides_the_password(env):
    with pytest.raises(ConfigurationError) as info:
        RedisSettings.from_env(env)
    assert "s3cret" not in str(info.value) and "***" in str(info.value)


def _unreachable() -> list[str]:
    port = free_port()  # nothing listens there (never 6379)
    return [f"redis://:{SECRET}@127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/0?password={SECRET}",
            f"redis://:{SECRET}/x@127.0.0.1:{port}/0", f"redis://:{SECRET}@[::1/0"]


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_BACKEND", "REDIS_BACKEND_DB")}
    return {**env, "REDIS_URL": url, "QUEUE": "default", "PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize("command", [("queues",), ("info", "--json"), ("failed", "list"), ("status", "x")])
@pytest.mark.parametrize("url", _unreachable(), ids=["userinfo", "query", "unparsed-port", "unparsed-ipv6"])
def test_cli_errors_never_show_the_password(command, url):
    done = subprocess.run([sys.executable, "-m", "pyresque", *command], env=_env(url), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode in (1, 2) and done.stderr.startswith("Error: "), done.stderr
    assert SECRET not in done.stdout + done.stderr and "***" in done.stderr


@pytest.mark.parametrize("command, extra", [(("worker",), {}), (("scheduler",), {}), (("worker",), {"COUNT": "2"})],
                         ids=["worker", "scheduler", "pool"])
@pytest.mark.parametrize("url", _unreachable()[:2], ids=["userinfo", "query"])
def test_long_running_processes_never_log_the_password(tmp_path, command, extra, url):
    """A worker, a scheduler and a pool's workers retry an unreachable Redis, logging where."""
    out = tmp_path / "out.log"
    with open(out, "wb") as stream:
        proc = subprocess.Popen([sys.executable, "-m", "pyresque", *command], env={**_env(url), **extra},
                                stdout=stream, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wanted = 2 if extra else 1
            wait_for(lambda: out.read_text().count("redis unavailable") >= wanted, timeout=20,
                     what=f"the outage to be logged\n{out.read_text()}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = out.read_text()
    assert SECRET not in text and "***" in text, text


def test_pool_check_masks_the_workers_redis_url(tmp_path):
    (tmp_path / "pool.ini").write_text(f"[pool]\ndefault = 1\n[worker]\nREDIS_URL = redis://:{SECRET}@h:1/0\n")
    done = subprocess.run([sys.executable, "-m", "pyresque", "pool", "--config", str(tmp_path / "pool.ini"), "--check"],
                          capture_output=True, text=True, env={**_env("redis://h:1/0"), "PYRESQUE_ENV": ""}, timeout=30)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout and "redis://:***@h:1/0" in done.stdout


# -- TLS ------------------------------------------------------------------------------------
@pytest.mark.parametrize("url, check", [
    ("rediss://h:1/0", True),
    ("rediss://h:1/0?ssl_cert_reqs=required", True),
    ("rediss://h:1/0?ssl_cert_reqs=none", False),  # nothing to match a name against
    ("rediss://h:1/0?ssl_check_hostname=false", False),  # the URL says so
    (RedisSettings.from_env({"REDIS_URL": "REDISS://h:1/0"}).url, True),
    ("redis://h:1/0", None),
    ("unix:///tmp/redis.sock", None),
])
def test_rediss_checks_the_server_host_name_unless_told_not_to(url, check):
    """redis-py 5.x does not check it by default: pyresque asks for it, and redis-py's connection
    gets it (or, for a plain connection, no TLS option at all)."""
    client = make_client(url)
    assert client.connection_pool.connection_kwargs.get("ssl_check_hostname") is check
    connection = client.connection_pool.make_connection()
    assert getattr(connection, "check_hostname", None) is check
    client.close()


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """A real redis-server speaking TLS only, with a certificate for ``localhost``."""
    server = find_redis_server()
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    certs = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=certs, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=pyresque test CA")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (certs / "san.ext").write_text("subjectAltName=DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    port = free_port()
    proc = subprocess.Popen([server, "--port", "0", "--tls-port", str(port), "--tls-cert-file", "server.pem",
                             "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.pem",
                             "--tls-auth-clients", "no", "--save", "", "--appendonly", "no"],
                            cwd=certs, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        def up() -> bool:
            if proc.poll() is not None:
                pytest.skip(f"this redis-server has no TLS: {proc.stdout.read().decode()[-300:]}")
            try:
                return bool(make_client(f"rediss://localhost:{port}/0?ssl_cert_reqs=none").ping())
            except redis.ConnectionError:
                return False

        wait_for(up, what="redis-server with TLS")
        yield port, str(certs / "ca.pem")
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_certificate_for_another_name_is_refused(tls_redis):
    port, ca = tls_redis
    assert make_client(f"rediss://localhost:{port}/0?ssl_ca_certs={ca}").ping()
    with pytest.raises(redis.ConnectionError, match="(?i)hostname|match"):
        make_client(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}").ping()  # the certificate names localhost
    assert make_client(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}&ssl_check_hostname=false").ping()
    assert make_client(f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none").ping()
