"""Reading pool configs: groups, environments, worker settings, and precise errors."""

from __future__ import annotations

import pytest

import support
from pyresque.exceptions import ConfigurationError
from pyresque.pool import config as pool_config

CONFIG = """
[pool]
high, default = 2      ; spaces are tidied: workers register as high,default
low = 1
Mail:Urgent = 1        # queue names keep their case and may contain ':'
reports = 1

[pool:production]
low = 4
reports = 0

[worker]
INTERVAL = 1
APP_INCLUDE = /srv/app/current/jobs.py
REDIS_URL = redis://:p%40ss@cache:6380/2

[worker:production]
BLOCKING = 1
"""


def test_groups_keep_file_order_case_and_the_worker_settings():
    config = pool_config.parse(CONFIG)
    assert list(config.groups.items()) == [("high,default", 2), ("low", 1), ("Mail:Urgent", 1), ("reports", 1)]
    assert config.total == 5
    assert config.worker_env == {"INTERVAL": "1", "APP_INCLUDE": "/srv/app/current/jobs.py",
                                 "REDIS_URL": "redis://:p%40ss@cache:6380/2"}


def test_an_environment_section_is_merged_over_the_base_and_zero_removes_a_group():
    config = pool_config.parse(CONFIG, environment="production")
    assert config.groups == {"high,default": 2, "low": 4, "Mail:Urgent": 1}
    assert config.worker_env["BLOCKING"] == "1" and config.worker_env["INTERVAL"] == "1"
    assert pool_config.parse(CONFIG, environment="staging").groups == pool_config.parse(CONFIG).groups


@pytest.mark.parametrize("text, message", [
    ("[pools]\nlow = 1\n", "unknown section [pools]"),
    ("[worker]\nINTERVAL = 1\n", "no [pool] section"),
    ("[pool]\nlow = two\n", "whole number >= 0"),
    ("[pool]\nlow = -1\n", "whole number >= 0"),
    ("[pool]\nlow = 1\nlow = 2\n", "option 'low' in section 'pool' already exists"),
    ("[pool]\nlow,low = 1\n", "names a queue twice"),
    ("[pool]\nlow = 1\nhigh, = 1\n", "invalid queue name"),
    ("[pool]\nlow = 0\n", "no queue group has a worker"),
    ("[pool]\nlow = 1\n[worker]\nQUEUE = other\n", "sets QUEUE for each worker itself"),
    ("[pool]\nlow = 1\n[worker]\nnot-a-name = 1\n", "not an environment variable name"),
    ("[pool]\nlow = 1\n[pool:]\nlow = 2\n", "unknown section [pool:]"),
])
def test_mistakes_are_one_precise_error(text, message):
    with pytest.raises(ConfigurationError, match="pool config"):
        pool_config.parse(text)
    try:
        pool_config.parse(text)
    except ConfigurationError as exc:
        assert message in str(exc)


def test_single_group_for_count_and_a_missing_file(tmp_path):
    assert pool_config.single("high,low", 3).groups == {"high,low": 3}
    with pytest.raises(ConfigurationError, match="cannot read pool config"):
        pool_config.load(str(tmp_path / "nope.ini"))


def test_the_deployment_material_in_demo_is_consistent():

    demo = support.ROOT / "demo"
    config = pool_config.load(str(demo / "pool.ini"), "production")
    assert config.groups == {"high,default": 4, "low": 2} and config.worker_env["BLOCKING"] == "1"
    unit = (demo / "pyresque-pool.service").read_text().splitlines()
    for line in ("KillSignal=SIGQUIT", "KillMode=mixed", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in unit
    program = (demo / "supervisor-pyresque.conf").read_text().splitlines()
    assert "stopsignal=QUIT" in program and "stopasgroup=false" in program
