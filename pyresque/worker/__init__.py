"""The worker process family: the job loop, child supervision, the forking helper, the child
side, threaded mode, heartbeat and prune, the signal table.

Kept empty on purpose: the forking helper (``python -m pyresque.worker.forking_helper``) loads
this package, and each module it imports makes every forked child slower.
"""
