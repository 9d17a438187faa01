"""An APP_INCLUDE that registers a listener for every worker event (tests/jobs/test_events.py)."""

import os

import pyresque
from fixtures import record  # noqa: F401 - also registers the job fixtures

for _event in ("beforeFirstFork", "beforeFork", "afterFork", "beforePerform", "afterPerform", "onFailure",
               "beforePause", "afterPause", "workerExit"):
    pyresque.listen(_event, lambda *args, _name=_event: record("event", {"name": _name, "pid": os.getpid()}))
