"""The built-in HTTP-callback job, ``Pyresque_HttpCallback``: a producer in any language names
URLs, a worker calls them with timeouts and retries, and records what each answered.

Why built in: a consumer whose only job is "call this URL" needs no code of its own, and php-resque,
Ruby and HTTP producers can enqueue it by its wire name. Off by default: queue contents must not
make workers call arbitrary addresses, so nothing is called unless ``PYRESQUE_HTTP_CALLBACK_HOSTS``
lists the host (:class:`AllowList`), and a private, loopback or link-local address is refused
unless an entry names it explicitly (an IP, a CIDR, or the exact host name; never a wildcard).
Redirects are followed by hand, each hop checked the same way.

Args (one dict)::

    {"requests": [{"url": "https://api.example.com/hook", "method": "POST",
                   "headers": {"X-Token": "..."}, "json": {...} | "body": "text", "timeout": 10}],
     "control": {"retry_times": 3, "retry_codes": [429, 502, 503, 504],
                 "success_codes": [200, 201, 202, 204], "retry_backoff": 1.0}}

Requests run in order. Each is retried up to ``retry_times`` times on a status in
``retry_codes``, a connection error or a timeout, ``retry_backoff * 2**n`` seconds apart (at most
60 s); a status outside both lists fails at once. The result lists per request its status,
elapsed seconds, attempts and selected headers; a failure's message says which request failed
how, with the records so far (a failing response's body, truncated, included).

Async mode awaits :meth:`HttpCallback.perform_async` on the worker's loop with one pooled
``httpx.AsyncClient`` per loop; every other mode calls :meth:`HttpCallback.perform` with a
pooled sync ``httpx.Client`` per process. A per-host cap (``PYRESQUE_HTTP_CALLBACK_PER_HOST``,
default 100) bounds the requests in flight to one host from one process.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..exceptions import PyresqueError
from .http_allow import HOSTS_ENV, AllowList, CallbackRefused, _target, _Transient, check_url, check_url_async
from .resolver import register

if TYPE_CHECKING:
    import asyncio
    import threading

# asyncio and threading are imported where they are used: a fork mode's forking helper loads this
# module, and its children must not inherit their at-fork handlers (or their import time).

JOB_CLASS = "Pyresque_HttpCallback"
PER_HOST_ENV = "PYRESQUE_HTTP_CALLBACK_PER_HOST"
DEFAULT_RETRY_CODES = (429, 502, 503, 504)
MAX_REDIRECTS = 5
MAX_TIMEOUT = 300.0
MAX_BACKOFF = 60.0
MAX_BODY_READ = 65536  # bytes of a response read at most: a huge body cannot fill the worker's memory
BODY_IN_RECORD = 1000  # characters of a failing response's body kept in the record
KEPT_HEADERS = ("content-type", "content-length", "location", "retry-after", "x-request-id", "date")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class CallbackFailed(PyresqueError):
    """A request failed for good (after its retries); the message says which and how."""


# == the arguments ============================================================================
@dataclass
class Request:
    url: str
    method: str
    headers: dict[str, str]
    content: bytes | None
    timeout: float


@dataclass
class Control:
    retry_times: int = 0
    retry_codes: tuple[int, ...] = DEFAULT_RETRY_CODES
    success_codes: tuple[int, ...] | None = None  # None: any 2xx
    retry_backoff: float = 1.0

    def succeeded(self, status: int) -> bool:
        return status in self.success_codes if self.success_codes is not None else 200 <= status < 300

    def backoff(self, retry: int) -> float:
        return min(MAX_BACKOFF, self.retry_backoff * (2 ** retry))


def parse_args(args: list[Any]) -> tuple[list[Request], Control]:
    """The job's one dict argument, checked strictly: a malformed job is refused, never guessed."""
    if len(args) != 1 or not isinstance(args[0], dict):
        raise CallbackRefused('args must be one object: {"requests": [...], "control": {...}}')
    spec = args[0]
    raw_requests = spec.get("requests")
    if not isinstance(raw_requests, list) or not raw_requests:
        raise CallbackRefused('"requests" must be a non-empty list')
    requests = [_request(i, r) for i, r in enumerate(raw_requests)]
    control = spec.get("control") or {}
    if not isinstance(control, dict):
        raise CallbackRefused('"control" must be an object')
    return requests, Control(
        retry_times=_int(control, "retry_times", 0, 0, 100),
        retry_codes=_codes(control, "retry_codes") or DEFAULT_RETRY_CODES,
        success_codes=_codes(control, "success_codes"),
        retry_backoff=_number(control, "retry_backoff", 1.0, 0.0, MAX_BACKOFF),
    )


def _request(index: int, raw: Any) -> Request:
    if not isinstance(raw, dict) or not isinstance(raw.get("url"), str):
        raise CallbackRefused(f"request {index}: needs a \"url\" string")
    has_json, has_body = "json" in raw, "body" in raw
    if has_json and has_body:
        raise CallbackRefused(f"request {index}: give \"json\" or \"body\", not both")
    method = str(raw.get("method") or ("POST" if has_json or has_body else "GET")).upper()
    if method not in METHODS:
        raise CallbackRefused(f"request {index}: method {method!r} is not one of {', '.join(METHODS)}")
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise CallbackRefused(f"request {index}: \"headers\" must map strings to strings")
    content = None
    if has_json:
        content = json.dumps(raw["json"], separators=(",", ":")).encode()
        headers = {"content-type": "application/json", **headers}
    elif has_body:
        if not isinstance(raw["body"], str):
            raise CallbackRefused(f"request {index}: \"body\" must be a string")
        content = raw["body"].encode()
    _target(raw["url"])
    return Request(raw["url"], method, headers, content, _number(raw, "timeout", 10.0, 0.001, MAX_TIMEOUT))


def _int(spec: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = spec.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CallbackRefused(f'"{key}" must be an integer from {low} to {high}')
    return value


def _number(spec: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = spec.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise CallbackRefused(f'"{key}" must be a number from {low:g} to {high:g}')
    return float(value)


def _codes(spec: dict[str, Any], key: str) -> tuple[int, ...] | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(c, int) and 100 <= c <= 599 for c in value):
        raise CallbackRefused(f'"{key}" must be a list of HTTP status codes')
    return tuple(value)


# == one request, with its retries ============================================================
@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str


def _record(request: Request, attempts: int, began: float, answer: Answer | None, error: str | None,
            ok: bool) -> dict[str, Any]:
    record: dict[str, Any] = {"url": request.url, "method": request.method, "attempts": attempts,
                              "elapsed": round(time.monotonic() - began, 4)}
    if answer is not None:
        record["status"] = answer.status
        record["headers"] = {k: v for k, v in answer.headers.items() if k in KEPT_HEADERS}
        if answer.url != request.url:
            record["final_url"] = answer.url
        if not ok:
            record["body"] = answer.body.decode("utf-8", "replace")[:BODY_IN_RECORD]
    if error is not None:
        record["error"] = error
    return record


def _verdict(control: Control, answer: Answer) -> str:
    if control.succeeded(answer.status):
        return "ok"
    return "retry" if answer.status in control.retry_codes else "fail"


def _failed(index: int, request: Request, record: dict[str, Any], records: list[dict[str, Any]]) -> CallbackFailed:
    how = f"status {record['status']}" if "status" in record and "error" not in record else record.get("error", "?")
    return CallbackFailed(f"request {index} ({request.method} {request.url}) failed after {record['attempts']} "
                          f"attempt(s): {how}; records: {json.dumps(records, separators=(',', ':'))}")


def _redirect_of(request: Request, answer: Answer) -> Request | None:
    location = answer.headers.get("location")
    if answer.status not in (301, 302, 303, 307, 308) or not location:
        return None
    import httpx

    url = str(httpx.URL(answer.url).join(location))
    if answer.status in (307, 308):
        return Request(url, request.method, request.headers, request.content, request.timeout)
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-type"}
    return Request(url, "GET" if request.method != "HEAD" else "HEAD", headers, None, request.timeout)


# == the clients ==============================================================================
_sync_clients: Any = None  # threading.local: each thread's client
_sync_tls: Any = None
_sync_lock: threading.Lock | None = None
_sync_hosts: dict[str, threading.BoundedSemaphore] = {}
#: per event loop (weakly: a loop that is gone takes its client along): the pooled client, the host gates
_async_clients: Any = None
_async_hosts: Any = None


def _lock() -> threading.Lock:
    global _sync_lock
    if _sync_lock is None:
        import threading

        _sync_lock = threading.Lock()
    return _sync_lock


def per_host_limit() -> int:
    try:
        return max(1, int(os.environ.get(PER_HOST_ENV, "100")))
    except ValueError:
        return 100


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise CallbackRefused("the HTTP-callback job needs httpx: pip install 'pyresque[http]'") from None
    return httpx


def _client_options() -> dict[str, Any]:
    httpx = _httpx()

    # trust_env=False: no proxy from the environment, which would make the allow-list moot
    return {"follow_redirects": False, "trust_env": False,
            "limits": httpx.Limits(max_connections=PER_SHARD * 4, max_keepalive_connections=PER_SHARD * 4)}


def sync_client() -> Any:
    """This thread's ``httpx.Client``: a thread runs one job at a time, so a client per thread
    keeps its connections alive without sharing one pool's lock among a threaded worker's 100
    slots; a forked child builds its own (never a parent's sockets). One TLS context for all."""
    global _sync_clients, _sync_tls
    import threading

    httpx = _httpx()
    with _lock():
        if _sync_clients is None:
            _sync_clients = threading.local()
        if _sync_tls is None:
            import ssl

            _sync_tls = ssl.create_default_context()
    client = getattr(_sync_clients, "client", None)
    if client is None or getattr(_sync_clients, "pid", None) != os.getpid():
        client = _sync_clients.client = httpx.Client(verify=_sync_tls, **_client_options())
        _sync_clients.pid = os.getpid()
    return client


class AsyncClients:
    """The pooled ``httpx.AsyncClient``s of one event loop, in shards of a few requests each.

    Why shards: httpcore's async pool assigns requests to connections in O(requests in flight x
    connections) per request, which at 500 in flight on one client costs ~10 ms of CPU a request
    (measured: 93 req/s against a 50 ms server); at most :data:`PER_SHARD` in flight per client
    it is ~2 ms (460+ req/s). Every shard shares one TLS context (loading CAs costs ~20 ms)."""

    def __init__(self) -> None:
        self.clients: list[Any] = []
        self.busy: list[int] = []
        self.tls: Any = None

    def take(self) -> int:
        """The shard with the fewest requests in flight; a new one when every shard is full."""
        k = min(range(len(self.busy)), key=self.busy.__getitem__) if self.busy else -1
        if k < 0 or (self.busy[k] >= PER_SHARD and len(self.clients) < MAX_SHARDS):
            httpx = _httpx()
            if self.tls is None:
                import ssl

                self.tls = ssl.create_default_context()
            self.clients.append(httpx.AsyncClient(verify=self.tls, **_client_options()))
            self.busy.append(0)
            k = len(self.clients) - 1
        self.busy[k] += 1
        return k

    def give(self, k: int) -> None:
        self.busy[k] -= 1


PER_SHARD = 8
MAX_SHARDS = 128


def async_clients() -> AsyncClients:
    """This loop's clients (one set per loop, so async mode's one loop pools its connections)."""
    global _async_clients
    import asyncio
    import weakref

    if _async_clients is None:
        _async_clients = weakref.WeakKeyDictionary()
    loop = asyncio.get_running_loop()
    clients = _async_clients.get(loop)
    if clients is None:
        clients = _async_clients[loop] = AsyncClients()
    return clients


def _host_gate(url: str) -> str:
    host, port = _target(url)
    return f"{host}:{port}"


def _sync_semaphore(url: str) -> threading.BoundedSemaphore:
    import threading

    key = _host_gate(url)
    with _lock():
        gate = _sync_hosts.get(key)
        if gate is None:
            gate = _sync_hosts[key] = threading.BoundedSemaphore(per_host_limit())
        return gate


def _async_semaphore(url: str) -> asyncio.Semaphore:
    global _async_hosts
    import asyncio
    import weakref

    if _async_hosts is None:
        _async_hosts = weakref.WeakKeyDictionary()
    gates = _async_hosts.setdefault(asyncio.get_running_loop(), {})
    key = _host_gate(url)
    if key not in gates:
        gates[key] = asyncio.Semaphore(per_host_limit())
    return gates[key]


def _send_sync(client: Any, request: Request) -> Answer:
    import httpx

    try:
        with _sync_semaphore(request.url):
            with client.stream(request.method, request.url, headers=request.headers, content=request.content,
                               timeout=request.timeout) as response:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) >= MAX_BODY_READ:
                        break
                return Answer(response.status_code, {k.lower(): v for k, v in response.headers.items()}, body,
                              str(response.url))
    except httpx.TimeoutException as exc:
        raise _Transient(f"timeout ({type(exc).__name__}) after {request.timeout:g}s") from None
    except httpx.TransportError as exc:
        raise _Transient(f"connection error ({type(exc).__name__}): {exc}") from None


async def _send_async(clients: AsyncClients, request: Request) -> Answer:
    httpx = _httpx()
    shard = clients.take()
    client = clients.clients[shard]
    try:
        async with _async_semaphore(request.url):
            async with client.stream(request.method, request.url, headers=request.headers, content=request.content,
                                     timeout=request.timeout) as response:
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= MAX_BODY_READ:
                        break
                return Answer(response.status_code, {k.lower(): v for k, v in response.headers.items()}, body,
                              str(response.url))
    except httpx.TimeoutException as exc:
        raise _Transient(f"timeout ({type(exc).__name__}) after {request.timeout:g}s") from None
    except httpx.TransportError as exc:
        raise _Transient(f"connection error ({type(exc).__name__}): {exc}") from None
    finally:
        clients.give(shard)


def _allow_list() -> AllowList:
    allow = AllowList.from_env()
    if allow is None:
        raise CallbackRefused(f"HTTP callbacks are off: set {HOSTS_ENV} to the hosts workers may call")
    return allow


# == the job ==================================================================================
@register(JOB_CLASS, aliases=())  # (aliases: picks the name-taking overload for type checkers)
class HttpCallback:
    """``Pyresque_HttpCallback``: see the module's docstring for its arguments and records."""

    @staticmethod
    def perform(spec: Any = None, *rest: Any) -> dict[str, Any]:
        allow = _allow_list()
        requests, control = parse_args([spec, *rest] if spec is not None else [])
        client = sync_client()
        records: list[dict[str, Any]] = []
        for index, first in enumerate(requests):
            records.append(_run_one(index, first, control, records, lambda u: check_url(allow, u),
                                    lambda r: _send_sync(client, r), time.sleep))
        return {"requests": records}

    @staticmethod
    async def perform_async(spec: Any = None, *rest: Any) -> dict[str, Any]:
        allow = _allow_list()
        requests, control = parse_args([spec, *rest] if spec is not None else [])
        client = async_clients()
        records: list[dict[str, Any]] = []
        for index, first in enumerate(requests):
            records.append(await _run_one_async(index, first, control, records, allow, client))
        return {"requests": records}


def _run_one(index: int, first: Request, control: Control, records: list[dict[str, Any]],
             check: Callable[[str], None], send: Callable[[Request], Answer], sleep: Callable[[float], Any]) -> dict[str, Any]:
    """One request with its redirects and retries (sync); returns its record or raises."""
    began = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        request, answer, error = first, None, None
        try:
            for _ in range(MAX_REDIRECTS + 1):
                check(request.url)
                answer = send(request)
                follow = _redirect_of(request, answer)
                if follow is None:
                    break
                request = follow
            else:
                raise CallbackRefused(f"request {index}: more than {MAX_REDIRECTS} redirects")
        except CallbackRefused as exc:
            raise CallbackRefused(f"request {index} ({first.method} {first.url}): {exc}") from None
        except _Transient as exc:
            error = str(exc)
        verdict = "retry" if answer is None or error else _verdict(control, answer)
        record = _record(first, attempts, began, answer if error is None else None, error, verdict == "ok")
        if verdict == "ok":
            return record
        if verdict == "fail" or attempts > control.retry_times:
            raise _failed(index, first, record, [*records, record])
        sleep(control.backoff(attempts - 1))


async def _run_one_async(index: int, first: Request, control: Control, records: list[dict[str, Any]],
                         allow: AllowList, client: Any) -> dict[str, Any]:
    """:func:`_run_one` on the loop (the same steps; awaited checks, sends and sleeps)."""
    began = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        request, answer, error = first, None, None
        try:
            for _ in range(MAX_REDIRECTS + 1):
                await check_url_async(allow, request.url)
                answer = await _send_async(client, request)
                follow = _redirect_of(request, answer)
                if follow is None:
                    break
                request = follow
            else:
                raise CallbackRefused(f"request {index}: more than {MAX_REDIRECTS} redirects")
        except CallbackRefused as exc:
            raise CallbackRefused(f"request {index} ({first.method} {first.url}): {exc}") from None
        except _Transient as exc:
            error = str(exc)
        verdict = "retry" if answer is None or error else _verdict(control, answer)
        record = _record(first, attempts, began, answer if error is None else None, error, verdict == "ok")
        if verdict == "ok":
            return record
        if verdict == "fail" or attempts > control.retry_times:
            raise _failed(index, first, record, [*records, record])
        import asyncio

        await asyncio.sleep(control.backoff(attempts - 1))
