"""How ``relay serve`` runs the app: the port is taken first, the app's start-up runs next,
and "ready" is said only once connections are accepted. Whatever stops the start is one
line naming what to fix, never a traceback.

uvicorn left to itself runs the app's lifespan (opening the database, migrating) before it
binds, so "ready" came before a bind that could still fail, and a failing start-up (another
relay on the same SQLite file, a database that does not answer) printed uvicorn's traceback.
Here uvicorn gets a socket already listening and ``lifespan="off"``; this server runs the
app's lifespan itself in its own start-up and shut-down, keeping uvicorn's order (stop
accepting, let requests finish, then the app's shut-down) and its signal handling."""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack

import uvicorn

from relay.errors import RelayError

log = logging.getLogger("relay")

BACKLOG = 2048
"""uvicorn's default: connections the kernel queues while the app is still starting."""


class StartupFailed(Exception):
    """The relay could not start; the message is the one line to show."""


def listen(host: str, port: int) -> socket.socket:
    """A socket bound and listening on ``host:port``, before anything else starts: a port in
    use is refused at once (nothing opened, nothing migrated), and clients connecting while
    the app starts wait in the backlog instead of being refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # Without SO_REUSEADDR a restart fails for a minute after a stop (TIME_WAIT); on Linux
    # it never lets two sockets listen on one port.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise StartupFailed(_cannot_listen(host, port, exc)) from None
    except OverflowError:  # a port out of range; the settings refuse it already
        sock.close()
        raise StartupFailed(f"cannot listen on {host}:{port}: not a port number") from None
    sock.set_inheritable(True)
    return sock


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    where = f"cannot listen on {host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"{where}: the port is already in use (another relay, or another program); "
            "stop it or choose another port with --port"
        )
    if exc.errno == errno.EACCES:
        return f"{where}: permission denied (ports below 1024 need privileges); use --port"
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return f"{where}: {host} is not an address of this machine (server.host, or --host)"
    return f"{where}: {exc.strerror or exc}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` serves this machine only (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def one_line(exc: BaseException) -> str:
    """What a failed start-up says: the relay's own errors as they are, anything else with
    its kind (a database driver's error, a file that cannot be opened), on one line."""
    if isinstance(exc, RelayError | StartupFailed):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        # Such as the SQLite file's directory missing, or not writable.
        text = f"cannot start: {exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        text = f"cannot start: {type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


class RelayServer(uvicorn.Server):
    """uvicorn's server around an app whose lifespan it runs itself (see the module)."""

    def __init__(
        self,
        config: uvicorn.Config,
        lifespan: Callable[[], AbstractAsyncContextManager[object]],
        ready: str,
    ) -> None:
        super().__init__(config)
        self._lifespan = lifespan
        self._ready = ready
        self._stack = AsyncExitStack()
        self.failure: str | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # The connection pool warns at each failed try, several lines each; while starting,
        # the one line below says it all (once running, its warnings are what an operator
        # wants to see).
        pool_log = logging.getLogger("psycopg.pool")
        level = pool_log.level
        pool_log.setLevel(max(logging.ERROR, level))
        try:
            await self._stack.enter_async_context(self._lifespan())
        except Exception as exc:
            # The traceback is kept for whoever asks for it (log_level: debug).
            log.debug("start-up failed", exc_info=exc)
            self.failure = one_line(exc)
            self.should_exit = True
            return
        finally:
            pool_log.setLevel(level)
        try:
            await super().startup(sockets)
        except BaseException:
            await self._stack.aclose()
            raise
        if self.started:
            log.info(self._ready)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().shutdown(sockets)
        finally:
            await self._stack.aclose()
