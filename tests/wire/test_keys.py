from pyresque.wire.keys import Keys, normalise_namespace


def test_namespace_is_applied_as_php_resque_does():
    assert normalise_namespace(None) == "resque:"
    assert normalise_namespace("myapp") == "myapp:"
    assert normalise_namespace("myapp:") == "myapp:"
    assert normalise_namespace("") == ""


def test_key_names():
    k = Keys()
    assert k.queue("default") == "resque:queue:default"
    assert k.status("abc") == "resque:job:abc:status"
    assert k.status("abc", "tenant1") == "resque:job:tenant1_abc:status"
    assert k.worker("vm:1:default") == "resque:worker:vm:1:default"
    assert k.worker_started("vm:1:default") == "resque:worker:vm:1:default:started"
    assert k.heartbeats == "resque:workers:heartbeat"
    assert k.worker_stat("processed", "vm:1:q") == "resque:stat:processed:vm:1:q"
    assert k.scheduler_lock == "resque:resque:resque_scheduler_master_lock"
    assert Keys("").queue("q") == "queue:q"


def test_no_key_of_ours_has_resque_colon_inside_its_name():
    """resque-web strips 'resque:' from a key name a second time after the namespace, so it
    listed 'resque:pyresque:delayed:1' under a wrong name, as a key of type none."""
    from pyresque.wire.keys import Keys

    keys = Keys("resque")
    for name in (keys.delayed_payloads(1), keys.unique_lock("d"), keys.concurrency_slots("C"), keys.prune_horizons):
        assert "resque:" not in name[len("resque:"):], name


def test_a_failure_summary_is_named_after_its_status_key():
    import pytest

    for ns in ("resque", "myapp:", ""):
        k = Keys(ns)
        assert k.job_failure("abc") == k.job_failure_of(k.status("abc")) == f"{k.ns}pyresque_failure:abc"
        assert k.job_failure("abc", "tenant1") == k.job_failure_of(k.status("abc", "tenant1")) == \
            f"{k.ns}pyresque_failure:tenant1_abc"
    assert "resque:" not in Keys("resque").job_failure("abc")[len("resque:"):]
    with pytest.raises(ValueError):
        Keys("resque").job_failure_of("other:job:abc:status")
