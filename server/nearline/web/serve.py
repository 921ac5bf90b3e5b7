"""Serving the dashboard with uvicorn: the address, the token a non-loopback bind needs, and
the browser opened when asked."""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import signal
import threading
import webbrowser
from collections.abc import Callable, Iterator

import uvicorn

from nearline.web.app import Load, make_app


class _Server(uvicorn.Server):
    """uvicorn's server, but SIGINT and SIGTERM end it with status 0 (uvicorn raises the
    signal again once it has stopped)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        sigs = (signal.SIGINT, signal.SIGTERM)
        before = {sig: signal.signal(sig, self.handle_exit) for sig in sigs}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)


def is_loopback(host: str) -> bool:
    """Whether a bind address reaches only this machine ("0.0.0.0" and "::" reach every
    interface; a name other than localhost is not trusted)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def url_of(host: str, port: int, token: str | None) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(
    load: Load,
    *,
    host: str,
    port: int,
    token: str | None,
    on_ready: Callable[[str], None],
    open_browser: bool = False,
) -> None:
    """Serve until SIGINT or SIGTERM; ``on_ready`` gets the page's URL (with the token) once
    the socket listens."""
    app = make_app(load, token=token)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )
    server = _Server(config)

    def announce() -> None:
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if server.started:
            bound = port
            for s in server.servers:
                for sock in s.sockets:
                    bound = sock.getsockname()[1]
            url = url_of(host, bound, token)
            on_ready(url)
            if open_browser:
                webbrowser.open(url)

    threading.Thread(target=announce, name="dashboard-ready", daemon=True).start()
    server.run()
