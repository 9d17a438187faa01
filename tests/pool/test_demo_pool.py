"""``demo/pool.ini`` as shipped runs from a checkout: its workers load demo/jobs.py and stay up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from pyresque import Resque
from pyresque.pool import config as pool_config
from support import ROOT, TESTS, wait_for

DEMO_INI = ROOT / "demo" / "pool.ini"


def test_a_relative_include_is_relative_to_the_config_file(tmp_path):
    ini = tmp_path / "conf" / "pool.ini"
    ini.parent.mkdir()
    ini.write_text("[pool]\ndefault = 1\n[worker]\nAPP_INCLUDE = jobs.py,app/more.py,app.tasks,/abs/x.py\n")
    config = pool_config.load(str(ini))
    assert config.worker_env["APP_INCLUDE"] == f"{ini.parent}/jobs.py,{ini.parent}/app/more.py,app.tasks,/abs/x.py"
    assert pool_config.parse(ini.read_text()).worker_env["APP_INCLUDE"].startswith("jobs.py,")  # no file: as written


def test_the_demo_pool_config_starts_workers_that_stay_up_and_run_a_demo_job(redis_url, r, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("QUEUE", "APP_INCLUDE", "INTERVAL", "BLOCKING", "LOGGING", "COUNT", "PREFIX", "PYRESQUE_ENV",
                        "RESQUE_ENV", "REDIS_BACKEND", "REDIS_BACKEND_DB")}
    env.update(REDIS_URL=redis_url, PYTHONPATH=str(TESTS.parent))
    log_path = tmp_path / "master.log"
    with open(log_path, "wb") as log:  # started elsewhere than the checkout: the ini's paths must not depend on it
        master = subprocess.Popen([sys.executable, "-m", "pyresque", "pool", "--config", str(DEMO_INI)], env=env,
                                  cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        def workers():
            found = {m.decode() for m in r.smembers("resque:workers")}
            return found if len(found) == 3 else None

        first = wait_for(workers, timeout=20, what=f"3 demo workers\n{log_path.read_text()}")
        resque = Resque(redis_url)
        job_id = resque.enqueue("default", "PHP_Job", {"name": "pool"})
        wait_for(lambda: resque.status(job_id).status == 4, timeout=15, what=f"the demo job\n{log_path.read_text()}")
        assert resque.status(job_id).result == {"greeting": "Hello, pool!"}
        time.sleep(1.5)  # a crash-looping pool would have replaced its workers by now (they died within 5 s)
        assert {m.decode() for m in r.smembers("resque:workers")} == first and master.poll() is None
        assert "crash loop" not in log_path.read_text()
    finally:
        master.send_signal(signal.SIGQUIT)
        try:
            master.wait(20)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()
