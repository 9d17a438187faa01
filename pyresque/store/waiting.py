"""Waiting for a job with no window in which it is only in a process's memory.

A worker whose queues are empty waits here instead of polling. Each queue gets a connection
blocked in ``BLMOVE queue:<q> pyresque_reserved:<worker>:<q> LEFT LEFT <timeout>`` (Redis >=
6.2): a job that arrives moves, inside Redis, into a list named after this worker, and the wait
ends. Every other BLMOVE is then cancelled (``CLIENT UNBLOCK``) and what was parked goes back to
the head of its queue in one script, so the worker's ordinary reserve (one atomic script that
pops in priority order *and* writes the working-on record) takes the job, or another worker
does. At no moment does a job live only in a reply on the wire: a worker killed while waiting
leaves it in its list, and the prune puts it back (the ``pyresque_reservations`` hash names each
waiter's lists, so even a worker Ruby pruned is found).

Idle cost: one BLMOVE per queue per ``block`` seconds, nothing else; a wake-up costs the
restore script and the reserve (two round trips, ~0.2 ms here). php-resque, Ruby workers and
resque-web see only what they saw before: the job on its queue, then the working-on record.
"""

from __future__ import annotations

import select
import time
from dataclasses import dataclass
from typing import Any, Sequence

import redis

from ..wire import payload as wire
from ..wire import untrusted
from .datastore import DataStore
from .scripts import RESTORE_PARKED_LUA

#: Queues one worker waits on with a connection each; beyond that it polls (``QUEUE=*`` over
#: hundreds of queues must not hold hundreds of connections per worker).
MAX_WAIT_QUEUES = 32


class WaitUnsupported(Exception):
    """The server has no BLMOVE (Redis < 6.2) or refuses CLIENT UNBLOCK: poll instead."""


@dataclass
class _Waiting:
    queue: str
    connection: Any
    client_id: int
    blocked: bool = False


def _socket_of(connection: Any) -> Any:
    """The connection's socket, to ``select`` on several at once (redis-py keeps it in ``_sock``)."""
    return connection._sock


def _get_connection(pool: Any) -> Any:
    try:
        return pool.get_connection()
    except TypeError:  # redis-py < 5.3 wants a command name
        return pool.get_connection("_")


class QueueWaiter:
    """One worker's blocked BLMOVEs; they stay blocked across :meth:`wait` calls while idle."""

    def __init__(self, store: DataStore, worker_id: str) -> None:
        self.store = store
        self.worker_id = worker_id
        self._waiting: dict[str, _Waiting] = {}
        self._registered: tuple[str, ...] | None = None
        self._refused: dict[str, float] = {}  # queue -> when to try again (its key is not a list)
        self._dropped = False  # connections were dropped: what they parked must be put back
        self._restore = store.redis.register_script(RESTORE_PARKED_LUA)

    @property
    def pending(self) -> bool:
        """Are BLMOVEs blocked? Then a job that arrives ends the next wait: no reserve needed."""
        return any(w.blocked for w in self._waiting.values())

    # -- the wait ----------------------------------------------------------------------------
    def wait(self, queues: Sequence[str], block: float, until: float, wake_fds: Sequence[int] = ()) -> bool:
        """Wait until a job is on one of ``queues`` (True), the monotonic time ``until`` passes or
        a ``wake_fds`` descriptor is readable (False; the caller reads it). On True the job is back
        on its queue's head, for the caller's reserve.

        Raises :class:`WaitUnsupported` for more than :data:`MAX_WAIT_QUEUES` queues or a server
        without BLMOVE, and Redis' connection errors (after dropping every blocked command)."""
        if len(queues) > MAX_WAIT_QUEUES:
            raise WaitUnsupported(f"{len(queues)} queues: more than {MAX_WAIT_QUEUES} to wait on")
        try:
            return self._wait(tuple(queues), block, until, [fd for fd in wake_fds if fd >= 0])
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            self._drop_all()
            raise

    def _wait(self, queues: tuple[str, ...], block: float, until: float, wake_fds: Sequence[int]) -> bool:
        if set(self._waiting) - set(queues):
            self.cancel()
        self._register(queues)
        if self._dropped:
            self._dropped = False
            if self.restore(self._registered) > 0:
                return True  # a job parked by a connection we lost is back on its queue
        arrived = False
        while not arrived:
            now = time.monotonic()
            for queue in queues:
                if self._refused.get(queue, 0.0) <= now:
                    self._block(queue, block)
            by_socket = {_socket_of(w.connection): w for w in self._waiting.values() if w.blocked}
            ready = [w for w in by_socket.values() if w.connection.can_read(timeout=0)]
            if not ready:
                left = until - now
                if left <= 0:
                    return False
                readable, _, _ = select.select([*by_socket, *wake_fds], [], [], left)
                if any(fd in readable for fd in wake_fds):
                    return False
                ready = [by_socket[s] for s in readable if s in by_socket]
            for waiting in ready:
                if self._reply(waiting, block) is not None:
                    arrived = True
        if not self.cancel():
            self.restore()
        return True

    def _block(self, queue: str, block: float) -> None:
        waiting = self._waiting.get(queue)
        if waiting is None:
            waiting = self._waiting[queue] = self._connect(queue)
        if waiting.blocked:
            return
        keys = self.store.keys
        waiting.connection.send_command("BLMOVE", keys.queue(queue), keys.reserved(self.worker_id, queue),
                                        "LEFT", "LEFT", round(max(block, 0.01), 3))
        waiting.blocked = True

    def _connect(self, queue: str) -> _Waiting:
        pool = self.store.redis.connection_pool
        connection = _get_connection(pool)
        try:
            connection.send_command("CLIENT", "ID")
            client_id = int(connection.read_response())
        except redis.ResponseError as exc:  # CLIENT renamed away or denied: no way to end a wait early
            pool.release(connection)
            raise WaitUnsupported(f"CLIENT ID refused: {exc}") from None
        except BaseException:
            connection.disconnect()
            pool.release(connection)
            raise
        return _Waiting(queue, connection, client_id)

    def _reply(self, waiting: _Waiting, block: float = 1.0) -> Any:
        """Read one BLMOVE reply: the job moved (bytes), or None (timed out, or unblocked)."""
        waiting.blocked = False
        try:
            return waiting.connection.read_response()
        except redis.ResponseError as exc:
            if "unknown command" in str(exc).lower():
                raise WaitUnsupported("the server has no BLMOVE (Redis < 6.2)") from None
            # WRONGTYPE: the queue (or our list) holds something else. The reserve reports the
            # queue; we wait on the others and ask this one again after a whole block, not in a loop.
            self.store.problems.append(f"{self.store.keys.queue(waiting.queue)} cannot be waited on: {exc}")
            self._refused[waiting.queue] = time.monotonic() + max(block, 1.0)
            return None

    # -- ending waits ------------------------------------------------------------------------
    def cancel(self) -> bool:
        """End every blocked BLMOVE and put back whatever they parked (True if any was blocked).
        Call before anything that is not waiting (a job, a pause), so that no job sits parked
        while this worker does not look."""
        blocked = [w for w in self._waiting.values() if w.blocked]
        if not blocked:
            return False
        try:
            pipe = self.store.redis.pipeline(transaction=False)
            for waiting in blocked:
                pipe.execute_command("CLIENT", "UNBLOCK", waiting.client_id)
            pipe.execute()
        except redis.ResponseError as exc:  # CLIENT UNBLOCK not allowed (ACL): drop the connections
            for waiting in blocked:
                self._release(waiting.queue, disconnect=True)
            self.restore()
            raise WaitUnsupported(f"CLIENT UNBLOCK refused: {exc}") from None
        try:
            for waiting in blocked:
                self._reply(waiting)
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            self._drop_all()
            raise
        self.restore()
        return True

    def restore(self, queues: Sequence[str] | None = None) -> int:
        """Put this worker's parked jobs back at their queues' heads; returns how many moved."""
        names = list(self._waiting) if queues is None else list(queues or ())
        return restore_parked(self.store, self.worker_id, names, self._restore)

    def close(self) -> None:
        """At exit: end the waits, put back what is parked, forget this worker's lists."""
        try:
            self.cancel()
        except WaitUnsupported:
            pass  # CLIENT UNBLOCK refused: the connections were dropped instead, nothing waits
        finally:
            names = list(self._registered or ()) + list(self._waiting)
            self._drop_all()
            if names:
                restore_parked(self.store, self.worker_id, names, self._restore)
            self.store.redis.hdel(self.store.keys.reservations, self.worker_id)
            self._registered = None

    def forget_registration(self) -> None:
        """Redis lost our keys (a restart) or a prune dropped them: write them again next wait."""
        self._registered = None

    def _register(self, queues: tuple[str, ...]) -> None:
        if self._registered is not None and set(queues) <= set(self._registered):
            return
        self._refused = {q: t for q, t in self._refused.items() if q in queues}
        names = tuple(dict.fromkeys((*(self._registered or ()), *queues)))
        self.store.redis.hset(self.store.keys.reservations, self.worker_id, wire.encode_ruby(list(names)))
        self._registered = names

    def _release(self, queue: str, disconnect: bool = False) -> None:
        waiting = self._waiting.pop(queue, None)
        if waiting is None:
            return
        if disconnect or waiting.blocked:
            waiting.connection.disconnect()
        self.store.redis.connection_pool.release(waiting.connection)

    def _drop_all(self) -> None:
        self._dropped = self._dropped or bool(self._waiting)
        for queue in list(self._waiting):
            self._release(queue, disconnect=True)


def restore_parked(store: DataStore, worker_id: str, queues: Sequence[str], script: Any = None) -> int:
    """Move any job parked in ``worker_id``'s reserved lists of ``queues`` back to their heads."""
    if not queues:
        return 0
    keys: list[str] = []
    for queue in queues:
        keys += [store.keys.reserved(worker_id, queue), store.keys.queue(queue)]
    script = script or store.redis.register_script(RESTORE_PARKED_LUA)
    found = store.call(script, keys, [])
    store.problems.extend(p.decode("utf-8", "backslashreplace") if isinstance(p, bytes) else str(p)
                          for p in found[1:])
    return int(found[0])


def release_reservations(store: DataStore, worker_id: str) -> int:
    """A dead (or unregistered) worker's parked jobs back to their queues, its entry dropped."""
    raw = store.redis.hget(store.keys.reservations, worker_id)
    if raw is None:
        return 0
    names = _queue_names(raw)
    moved = restore_parked(store, worker_id, names)
    store.redis.hdel(store.keys.reservations, worker_id)
    return moved


def orphaned_reservations(store: DataStore, registered: set[str]) -> list[str]:
    """Waiters with an entry but no registration: killed, and pruned by a Ruby or php worker."""
    try:
        entries = store.redis.hkeys(store.keys.reservations)
    except redis.ResponseError:  # not a hash: another program's key; nothing of ours is in it
        store.problems.append(f"{store.keys.reservations} is not a hash: ignored")
        return []
    names = [e.decode("utf-8", "surrogateescape") if isinstance(e, bytes) else str(e) for e in entries]
    return [n for n in names if n not in registered]


def _queue_names(raw: Any) -> list[str]:
    try:
        names = untrusted.loads(raw)
    except ValueError:
        return []
    if not isinstance(names, list):
        return []
    return [n for n in names if isinstance(n, str) and n]
