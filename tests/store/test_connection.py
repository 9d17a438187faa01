import pytest

from pyresque.exceptions import ConfigurationError
from pyresque.store.connection import RedisSettings, backend_to_url


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
