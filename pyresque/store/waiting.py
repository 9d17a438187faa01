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

import selectors
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

#: Longest server-side BLMOVE timeout, whatever INTERVAL says: a BLMOVE left on the server by a
#: host that vanished without closing its connection parks a job for at most this long before
#: the server ends it (the prune, much later, finds the job in the worker's list).
MAX_BLOCK = 30.0

#: How long past its own timeout a BLMOVE's reply may be late before the connection is taken for
#: dead (a NAT or firewall that drops silently): the worker then reconnects, as after an outage.
REPLY_GRACE = 2.0


class WaitUnsupported(Exception):
    """The server has no BLMOVE (Redis < 6.2) or refuses CLIENT UNBLOCK: poll instead."""


@dataclass
class _Waiting:
    queue: str
    connection: Any
    client_id: int
    blocked: bool = False
    reply_due: float = 0.0  # monotonic: the BLMOVE's own timeout plus REPLY_GRACE


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
        self._ever: set[str] = set()  # every queue a BLMOVE of ours may have parked a job from
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
            if self.restore(sorted(self._ever)) > 0:
                return True  # a job parked by a connection we lost is back on its queue
        arrived = False
        while not arrived:
            now = time.monotonic()
            for queue in queues:
                if self._refused.get(queue, 0.0) <= now:
                    self._block(queue, block)
            blocked = [w for w in self._waiting.values() if w.blocked]
            late = [w for w in blocked if now > w.reply_due]
            if late:  # the reply never came: the connection is dead (a silent NAT, a half-open TCP)
                self._drop_all()
                raise redis.ConnectionError(f"no reply to BLMOVE on {self.store.keys.queue(late[0].queue)} "
                                            f"{REPLY_GRACE:g} s past its timeout")
            ready = [w for w in blocked if w.connection.can_read(timeout=0)]
            if not ready:
                left = min([until] + [w.reply_due for w in blocked]) - now
                if left <= 0:
                    if now >= until:
                        return False
                    continue
                readable = _readable([_socket_of(w.connection) for w in blocked], wake_fds, left)
                if any(fd in readable for fd in wake_fds):
                    return False
                ready = [w for w in blocked if _socket_of(w.connection) in readable]
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
        timeout = round(min(max(block, 0.01), MAX_BLOCK), 3)
        self._ever.add(queue)
        waiting.connection.send_command("BLMOVE", keys.queue(queue), keys.reserved(self.worker_id, queue),
                                        "LEFT", "LEFT", timeout)
        waiting.blocked = True
        waiting.reply_due = time.monotonic() + timeout + REPLY_GRACE

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
            if "unknown command" in str(exc).lower() or isinstance(exc, redis.exceptions.NoPermissionError):
                raise WaitUnsupported(f"the server cannot BLMOVE here: {exc}") from None
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
            unblocked = pipe.execute()
        except redis.ResponseError as exc:  # CLIENT UNBLOCK not allowed (ACL): drop the connections
            for waiting in blocked:
                self._release(waiting.queue, disconnect=True)
            self.restore()
            raise WaitUnsupported(f"CLIENT UNBLOCK refused: {exc}") from None
        try:
            for waiting, done in zip(blocked, unblocked):
                if done or waiting.connection.can_read(timeout=0.05):
                    self._reply(waiting)
                else:  # not blocked (yet) at the server, and no reply: never wait a whole block for it
                    self._release(waiting.queue, disconnect=True)
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            self._drop_all()
            raise
        self.restore()
        return True

    def restore(self, queues: Sequence[str] | None = None) -> int:
        """Put this worker's parked jobs back at their queues' heads; returns how many moved."""
        names = sorted(self._ever) if queues is None else list(queues or ())
        return restore_parked(self.store, self.worker_id, names, self._restore)

    def close(self) -> None:
        """At exit: end the waits, put back what is parked, forget this worker's lists."""
        try:
            self.cancel()
        except WaitUnsupported:
            pass  # CLIENT UNBLOCK refused: the connections were dropped instead, nothing waits
        finally:
            names = sorted(self._ever | set(self._registered or ()) | set(self._waiting))
            self._drop_all()
            if names:
                restore_parked(self.store, self.worker_id, names, self._restore)
            self.store.redis.hdel(self.store.keys.reservations, self.worker_id)
            self._registered = None

    def forget_registration(self) -> None:
        """The worker registered again (Redis restarted, a prune dropped it): write our entry again
        at the next wait, and put back now what a connection lost meanwhile had parked, so that
        it does not wait for this worker's next idle moment."""
        self._registered = None
        if self._ever:
            self._dropped = False
            restore_parked(self.store, self.worker_id, sorted(self._ever), self._restore)

    def _register(self, queues: tuple[str, ...]) -> None:
        if self._registered is not None and set(queues) <= set(self._registered):
            return
        self._refused = {q: t for q, t in self._refused.items() if q in queues}
        names = tuple(dict.fromkeys((*(self._registered or ()), *sorted(self._ever), *queues)))
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


def _readable(sockets: Sequence[Any], fds: Sequence[int], timeout: float) -> set[Any]:
    """Which of ``sockets`` and ``fds`` are readable within ``timeout`` (epoll/poll: no fd limit)."""
    with selectors.DefaultSelector() as selector:
        for item in [*sockets, *fds]:
            selector.register(item, selectors.EVENT_READ)
        return {key.fileobj for key, _ in selector.select(timeout)}


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


def release_orphan(store: DataStore, worker_id: str) -> int:
    """:func:`release_reservations` for a waiter found without a registration, checked once more
    right before: one that registered since the caller looked keeps its lists."""
    pipe = store.redis.pipeline(transaction=False)
    pipe.sismember(store.keys.workers, worker_id)
    pipe.hexists(store.keys.heartbeats, worker_id)
    try:
        if any(pipe.execute()):
            return 0
    except redis.ResponseError:  # workers or the heartbeats hash of another type: leave it be
        return 0
    return release_reservations(store, worker_id)


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
