"""PIDFILE: written whole, and never through a symlink planted at its path."""

from __future__ import annotations

import os

import pytest

from pyresque.exceptions import ConfigurationError
from pyresque.process.pidfile import remove_pidfile, write_pidfile
from support import WorkerProcess, wait_for


def _plant(tmp_path):
    target = tmp_path / "precious"
    target.write_text("root:x:0:0:root:/root:/bin/sh\n")
    link = tmp_path / "worker.pid"
    link.symlink_to(target)
    return link, target


def test_a_planted_symlink_is_replaced_and_its_target_left_alone(tmp_path):
    link, target = _plant(tmp_path)
    write_pidfile(str(link))
    assert not link.is_symlink() and link.read_text() == f"{os.getpid()}\n"
    assert target.read_text() == "root:x:0:0:root:/root:/bin/sh\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious", "worker.pid"]  # no temporary left


def test_a_dangling_symlink_creates_nothing_where_it_points(tmp_path):
    link = tmp_path / "worker.pid"
    link.symlink_to(tmp_path / "created-by-us")
    write_pidfile(str(link))
    assert link.read_text() == f"{os.getpid()}\n" and not (tmp_path / "created-by-us").exists()


def test_a_stale_pidfile_is_replaced_and_removed_at_exit(tmp_path):
    path = tmp_path / "worker.pid"
    path.write_text("99999999\n")
    write_pidfile(str(path))
    assert path.read_text() == f"{os.getpid()}\n"
    remove_pidfile(str(path))
    assert not path.exists()


def test_an_unwritable_place_is_a_one_line_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="could not write PIDFILE .*: No such file or directory"):
        write_pidfile(str(tmp_path / "missing-dir" / "worker.pid"))
    (tmp_path / "a-dir.pid").mkdir()
    with pytest.raises(ConfigurationError, match="could not write PIDFILE"):
        write_pidfile(str(tmp_path / "a-dir.pid"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-dir.pid"]


def test_a_real_worker_never_writes_through_a_planted_pidfile_symlink(redis_url, r, tmp_path):
    link, target = _plant(tmp_path)
    with WorkerProcess(redis_url, tmp_path, PIDFILE=str(link)) as worker:
        worker.worker_id(r)
        wait_for(lambda: not link.is_symlink() and link.read_text() == f"{worker.pid}\n",
                 what=f"the pidfile\n{worker.log()}")
        assert target.read_text() == "root:x:0:0:root:/root:/bin/sh\n"
    assert worker.wait() == 0
    assert not link.exists() and target.read_text() == "root:x:0:0:root:/root:/bin/sh\n"
