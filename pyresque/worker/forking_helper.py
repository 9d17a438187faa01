"""A small forking helper: it forks each job's child so the worker parent never has to.

Why: after a ``fork()`` every page the parent writes (refcounts, allocations, redis-py's and
structlog's objects) is copied while a child still shares it — ~550 page faults per job on
this kind of machine, most of the parent's CPU. The zygote is forked once at start-up, before
any Redis connection, and then does nothing but fork: it touches few pages, the parent touches
none that a child shares, and the fork itself runs on the other core while the parent books
the previous job and reserves the next.

Protocol on a UNIX socket pair (parent <-> zygote):

* parent sends ``F``: "fork one child"; the zygote answers ``F<pid>`` with two fds attached
  (the child's job pipe write end and result pipe read end, see :class:`horse.Horse`);
* the zygote reaps its children and sends ``X<pid><wait status>`` for each;
* EOF on the socket (the worker exited or was killed) makes the zygote exit: its idle children
  see EOF on their job pipes and exit too; a child running a job finishes it.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import sys
from typing import TYPE_CHECKING, Any, NoReturn, Sequence

from ..jobs import job as jobmod
from ..process.interpreter import python_command
from ..wire import procline
from . import horse, output

if TYPE_CHECKING:
    import subprocess

_NOTICE = struct.Struct("!cii")  # kind, pid, wait status
_IGNORED = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCONT,
            signal.SIGHUP)


class Zygote:
    """The worker parent's handle on its forking helper."""

    def __init__(self, pid: int, sock: socket.socket, process: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.sock = sock
        self._process = process
        self.sock.setblocking(False)
        self._buffer = b""
        self._handles: list[horse.Horse] = []
        self._statuses: dict[int, int] = {}
        self._forgotten: set[int] = set()
        self.requested = 0

    @classmethod
    def start(cls, resolver: Any, close_fds: tuple[int, ...], max_jobs: int = 1, max_rss_mb: float = 0) -> Zygote:
        parent_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            parent_end.close()
            _zygote_main(zygote_end, resolver, close_fds, max_jobs, max_rss_mb)
        zygote_end.close()
        return cls(pid, parent_end)

    @classmethod
    def launch(cls, includes: Sequence[str], allowed: Sequence[str], max_jobs: int = 1,
               max_rss_mb: float = 0) -> Zygote:
        """Start the helper as a fresh interpreter that imports only what runs jobs.

        The worker has redis-py, structlog and click loaded (~35 MiB); a helper that loads only
        pyresque's job machinery and the ``APP_INCLUDE`` modules is about half that, and every
        child it forks copies and tears down half the page tables. Listeners and classes must
        then come from the includes (as they do for ``pyresque-worker``).
        """
        parent_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        args = ["--fd", str(zygote_end.fileno()), "--max-jobs", str(max_jobs), "--max-rss", str(max_rss_mb)]
        for include in includes:
            args += ["--include", include]
        for entry in allowed:
            args += ["--allow", entry]
        if output.installed():  # LOGGING=json: the children's print() must come out as JSON too
            args += ["--output", "json"]
        import subprocess  # here, not at the top: it loads threading, whose fork handler every child would run

        # This very pyresque, even from a checkout, and no working directory on sys.path.
        command = python_command("pyresque.worker.forking_helper", *args)
        process = subprocess.Popen(command, pass_fds=(zygote_end.fileno(),), stdin=subprocess.DEVNULL)
        zygote_end.close()
        return cls(process.pid, parent_end, process)

    def fileno(self) -> int:
        return self.sock.fileno()

    def request(self) -> None:
        """Ask for one more child; its handle arrives later (:meth:`take`)."""
        self.sock.sendall(b"F")
        self.requested += 1

    def take(self) -> horse.Horse:
        """The next requested child's handle (requests one if none is on its way)."""
        if not self._handles and self.requested == 0:
            self.request()
        while not self._handles:
            self._read(block=True)
        self.requested -= 1
        return self._handles.pop(0)

    def status_of(self, pid: int) -> int:
        """Block until the zygote reports ``pid``'s wait status."""
        while pid not in self._statuses:
            self._read(block=True)
        return self._statuses.pop(pid)

    def forget(self, pid: int) -> None:
        """We will never ask for this child's status (it reported its job)."""
        if self._statuses.pop(pid, None) is None:
            self._forgotten.add(pid)

    def drain(self) -> None:
        """Read whatever notices have arrived, without blocking."""
        self._read(block=False)

    def _read(self, block: bool) -> None:
        if block:
            select.select([self.sock], [], [])
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, 4096, 16)
        except BlockingIOError:
            return
        if not data:
            for fd in fds:
                os.close(fd)
            raise ZygoteGone("the forking helper exited")
        self._buffer += data
        fds = list(fds)
        while len(self._buffer) >= _NOTICE.size:
            kind, pid, status = _NOTICE.unpack_from(self._buffer)
            self._buffer = self._buffer[_NOTICE.size:]
            if kind == b"F":
                self._handles.append(horse.Horse(pid, fds.pop(0), fds.pop(0), reaped_elsewhere=True))
            elif pid in self._forgotten:
                self._forgotten.discard(pid)
            else:
                self._statuses[pid] = status

    def abandon(self) -> None:
        """The helper died: close our end and reap it; its children are no longer tracked."""
        try:
            self.sock.close()
        finally:
            self._reap(block=False)

    def _reap(self, block: bool) -> None:
        if self._process is not None:
            if block:
                self._process.wait()
            else:
                self._process.poll()
            return
        try:
            os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            pass

    def stop(self) -> None:
        """Close the socket: the zygote exits once its children have; reap it."""
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()
        try:
            self.sock.close()
        finally:
            self._reap(block=True)



class ZygoteGone(RuntimeError):
    """The forking helper died; the worker starts a new one."""


def _zygote_main(sock: socket.socket, resolver: Any, close_fds: tuple[int, ...], max_jobs: int,
                 max_rss_mb: float) -> NoReturn:
    code = 0
    try:
        # Our own session: a terminal's Ctrl-C or a signal to the worker's process group does
        # not reach us (the worker decides; EOF stops us), and every signal keeps its default
        # disposition, so the children we fork need not reset them one by one.
        if os.getsid(0) != os.getpid():
            os.setsid()
        signal.set_wakeup_fd(-1)
        for signum in _IGNORED:
            signal.signal(signum, signal.SIG_DFL)
        for fd in close_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        procline.set_title(f"Forker for worker {os.getppid()}")
        _prepare_jobs(resolver)
        children: set[int] = set()
        open_socket = True
        while open_socket or children:
            watched: list[Any] = [sock, wake_r] if open_socket else [wake_r]
            ready, _, _ = select.select(watched, [], [], 1.0)
            if wake_r in ready:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
            children.difference_update(_reap(sock if open_socket else None))
            if open_socket and sock in ready:
                try:
                    request = sock.recv(64)
                except OSError:  # the worker died with notices unread: same as EOF
                    request = b""
                if not request:  # the worker is gone: no one can record what our children do
                    open_socket = False
                    _kill_all(children)
                    continue
                for _ in range(request.count(b"F")):
                    handle = horse.spawn(resolver, (sock.fileno(), wake_r, wake_w), max_jobs, max_rss_mb,
                                         defaults_set=True)
                    children.add(handle.pid)
                    socket.send_fds(sock, [_NOTICE.pack(b"F", handle.pid, 0)], [handle.job_w, handle.result_r])
                    os.close(handle.job_w)
                    os.close(handle.result_r)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _prepare_jobs(resolver: Any) -> None:
    """Hooks and job shapes looked up here once, not in every child (see :func:`job.prepare`)."""
    for target in resolver.known().values():
        try:
            jobmod.prepare(target)
        except Exception:  # a class that breaks on inspection fails its own jobs, later
            pass


def _kill_all(children: set[int]) -> None:
    """SIGKILL every child (and what its job spawned): their worker died, so their results would
    go nowhere while the prune fails or requeues their jobs. The prune waits until we are gone."""
    for pid in children:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def _reap(sock: socket.socket | None) -> list[int]:
    reaped: list[int] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append(pid)
        if sock is not None:
            try:
                sock.sendall(_NOTICE.pack(b"X", pid, status))
            except OSError:
                pass


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """``python -m pyresque.worker.forking_helper``: the helper :meth:`Zygote.launch` starts."""
    options = _parse_helper_args(sys.argv[1:] if argv is None else argv)
    os.setsid()  # as early as possible: a Ctrl-C meant for the worker does not reach us
    from ..jobs.resolver import JobResolver, load_include

    sock = socket.socket(fileno=options["fd"])
    if options["output"] == "json":
        output.install(output.json_emitter(sys.stderr))
    try:
        resolver = JobResolver([load_include(spec) for spec in options["include"]], options["allow"])
    except Exception as exc:  # the worker loaded the same includes: this should not happen
        print(f"pyresque.zygote: cannot load the job code: {exc}", file=sys.stderr)
        os._exit(1)
    _zygote_main(sock, resolver, (), options["max-jobs"], options["max-rss"])


def _parse_helper_args(argv: Sequence[str]) -> dict[str, Any]:
    """The ``--name value`` pairs :meth:`Zygote.launch` writes. Parsed by hand: argparse would
    stay resident in the helper and make every fork copy and tear down its pages."""
    options: dict[str, Any] = {"fd": None, "include": [], "allow": [], "max-jobs": 1, "max-rss": 0.0,
                               "output": ""}
    convert: dict[str, Any] = {"fd": int, "max-jobs": int, "max-rss": float, "output": str}
    if len(argv) % 2:
        raise SystemExit(f"pyresque.zygote: expected --name value pairs, got {' '.join(argv)}")
    for flag, value in zip(argv[::2], argv[1::2]):
        name = flag[2:] if flag.startswith("--") else ""
        if name not in options:
            raise SystemExit(f"pyresque.zygote: unknown option {flag}")
        if isinstance(options[name], list):
            options[name].append(value)
        else:
            try:
                options[name] = convert[name](value)
            except ValueError:
                raise SystemExit(f"pyresque.zygote: {flag} needs a number, not {value!r}") from None
    if options["fd"] is None:
        raise SystemExit("pyresque.zygote: --fd is required")
    return options


if __name__ == "__main__":
    main()
