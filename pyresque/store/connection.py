"""Where Redis is: one settings object read from the environment or options, for every command.

Accepted, in order of precedence: ``REDIS_URL`` (``redis://``, ``rediss://``, ``unix://``, with
db and password), then php-resque's ``REDIS_BACKEND`` (``host``, ``host:port``, a DSN, or
``unix:///path``) with ``REDIS_BACKEND_DB``, then ``redis://127.0.0.1:6379/0``.
"""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import parse_qs, unquote_plus, urlsplit, urlunsplit

import redis

from .. import defaults
from ..exceptions import ConfigurationError


@dataclass(frozen=True)
class RedisSettings:
    """A Redis URL plus the key namespace: everything needed to reach the Resque data."""

    url: str = defaults.REDIS_URL
    prefix: str = defaults.NAMESPACE
    #: True when nothing named a Redis (no ``redis_url``, ``REDIS_URL`` or ``REDIS_BACKEND``) and
    #: ``url`` is the default: whatever owns localhost:6379, which the commands then say aloud.
    defaulted: bool = field(default=False, compare=False)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        redis_url: str | None = None,
        prefix: str | None = None,
    ) -> RedisSettings:
        """Explicit arguments win over the environment, which wins over the defaults."""
        env = os.environ if environ is None else environ
        url = redis_url or env.get("REDIS_URL") or None
        if url is None and env.get("REDIS_BACKEND"):
            url = backend_to_url(env["REDIS_BACKEND"], env.get("REDIS_BACKEND_DB"))
        defaulted = url is None
        url = normalise_url(url or defaults.REDIS_URL)
        if prefix is None:
            prefix = env.get("PREFIX")
            if prefix is None or prefix == "":
                prefix = defaults.NAMESPACE  # php: PREFIX is used only when non-empty
        return cls(url=url, prefix=prefix, defaulted=defaulted)

    @property
    def default_notice(self) -> str | None:
        """What a command says first when it uses the default Redis nobody configured, so no one
        talks to a stranger's Redis unknowingly; ``None`` when a URL was configured."""
        if not self.defaulted:
            return None
        return (f"using the default Redis at {self.display_url} (REDIS_URL not set; "
                "'pyresque redis' starts a private one)")

    @property
    def display_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        return mask_url(self.url)

    def client(self) -> redis.Redis:
        return make_client(self.url)


_SECRET_PARAMETER = re.compile(r"pass|secret|token|auth", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``url`` with every secret in it replaced by ``***``, for messages and logs: the userinfo
    password (``redis://user:pw@host``) and query parameters that redis-py passes on as
    connection options (``?password=``, ``?ssl_password=``), also in a URL that does not parse.

    Works on the text, not on ``urlsplit``: a password with an unescaped ``/``, ``?`` or ``#``
    ends urlsplit's netloc early and would show. The userinfo ends at the last ``@``, as in
    urlsplit; a ``@`` in a query value may then mask more than the password, never less.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:  # php's REDIS_BACKEND forms: user:pw@host:port
        scheme, rest = "", url
    userinfo, at, hostpart = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.split(':', 1)[0]}:***@{hostpart}"
    base, question, query = rest.partition("?")
    if question:
        query, hash_, fragment = query.partition("#")
        fields = []
        for field in query.split("&"):
            name, equals, _ = field.partition("=")
            secret = equals and _SECRET_PARAMETER.search(unquote_plus(name))
            fields.append(f"{name}=***" if secret else field)
        rest = f"{base}?{'&'.join(fields)}{hash_ and '#***'}"  # a '#' may have cut a password short
    return f"{scheme}{sep}{rest}"


def normalise_url(url: str) -> str:
    shown = mask_url(url)
    if "://" not in url:
        raise ConfigurationError(f"invalid Redis URL {shown!r}: expected redis://, rediss:// or unix://")
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(f"invalid Redis URL {shown!r}: scheme must be redis, rediss or unix")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unbalanced [ or ] (IPv6)
        raise ConfigurationError(f"invalid Redis URL {shown!r}: {exc}") from None
    if scheme != "unix":
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ConfigurationError(f"invalid Redis URL {shown!r}: bad port") from None
        if not parts.hostname:
            raise ConfigurationError(f"invalid Redis URL {shown!r}: no host")
    return scheme + url[len(scheme):]  # redis-py takes the scheme in lower case only


def backend_to_url(backend: str, db: str | None = None) -> str:
    """Translate php-resque's ``REDIS_BACKEND`` (+ ``REDIS_BACKEND_DB``) into a URL.

    As in php-resque, a db in the DSN wins over ``REDIS_BACKEND_DB``, and ``"0"`` counts as unset.
    """
    backend = backend.strip()
    db_number = db if db and db != "0" else None
    if db_number is not None and not db_number.isdigit():
        raise ConfigurationError(f"invalid REDIS_BACKEND_DB {db!r}: expected a database number")
    if backend.startswith("tcp://"):
        backend = "redis://" + backend[len("tcp://"):]
    if "://" in backend:
        if db_number is not None:
            try:
                parts = urlsplit(backend)
            except ValueError as exc:  # an unbalanced [ or ] (IPv6)
                raise ConfigurationError(f"invalid REDIS_BACKEND {mask_url(backend)!r}: {exc}") from None
            if backend.startswith("unix://"):
                if "db=" not in parts.query:
                    backend += f"&db={db_number}" if parts.query else f"?db={db_number}"
            elif parts.path in ("", "/"):
                backend = urlunsplit(parts._replace(path=f"/{db_number}"))
        return backend
    host, _, port = backend.partition(":")
    if port and not port.isdigit():
        raise ConfigurationError(f"invalid REDIS_BACKEND {mask_url(backend)!r}: expected host:port")
    return f"redis://{host or '127.0.0.1'}:{port or 6379}/{db_number or 0}"


def make_client(url: str) -> redis.Redis:
    """A redis-py client that sends nothing on connect but what Resque needs.

    RESP2 and no ``CLIENT SETINFO``: redis-py 8 would otherwise add ``HELLO 3`` and two
    ``CLIENT SETINFO`` calls (rejected by Redis 7.0) to every new connection.
    """
    # surrogateescape: a name read from Redis that is not UTF-8 (a worker id, a queue) goes back as
    # the very bytes it came as, so the key it names can be removed; strict UTF-8 otherwise
    # keepalive: a connection that sat idle through a long job (a worker's BLMOVE one) is found dead
    # by TCP, not by a wait that never ends (see store/waiting.py's REPLY_GRACE too)
    keepalive = {} if url.startswith("unix:") else {"socket_keepalive": True}
    return redis.Redis.from_url(url, protocol=2, socket_connect_timeout=5, encoding_errors="surrogateescape",
                                **keepalive, **_NO_CLIENT_INFO, **tls_options(url))


def tls_options(url: str) -> dict[str, Any]:
    """``rediss://`` checks that the server's certificate names the host it was asked for.

    redis-py 5.x does not by default (``ssl_check_hostname=False`` until 6.0), so a valid
    certificate for any other name would do: a man in the middle with a certificate of his
    own. With ``ssl_cert_reqs=none`` there is no certificate to match (and Python refuses
    the combination: redis-py 6.0 fails every connection then), so the check is off. Options
    in the URL win (redis-py lets the query override keyword arguments):
    ``?ssl_check_hostname=false`` still turns it off.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "rediss":
        return {}
    cert_reqs = parse_qs(parts.query).get("ssl_cert_reqs", ["required"])[0]
    return {"ssl_check_hostname": cert_reqs.strip().lower() not in ("none", "cert_none")}


def _no_client_info() -> dict[str, Any]:
    params = inspect.signature(redis.Redis.__init__).parameters
    if "driver_info" in params:
        return {"driver_info": None}
    if "lib_name" in params:
        return {"lib_name": None, "lib_version": None}
    return {}


_NO_CLIENT_INFO = _no_client_info()
