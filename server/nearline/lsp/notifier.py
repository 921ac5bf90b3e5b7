"""Everything the server tells the person: messages (once per problem, or every time),
notifications, and the status the editors' status bars show; safe to call from other threads
through ``from_thread``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from nearline.lsp.protocol import STATUS, Status

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, server: LanguageServer) -> None:
        self.server = server
        self.loop: asyncio.AbstractEventLoop | None = None
        """The server's event loop, once known: messages from other threads go through it."""
        self._shown: set[str] = set()

    def show(self, text: str, kind: types.MessageType) -> None:
        """``window/showMessage`` every time (answers and outcomes of requests)."""
        log.info("%s", text.splitlines()[0] if text else text)
        self._send(text, kind)

    def once(self, text: str, kind: types.MessageType, *, key: str) -> None:
        """``window/showMessage`` once per ``key`` for this connection (a problem)."""
        if key in self._shown:
            return
        self._shown.add(key)
        log.warning("%s", text)
        self._send(text, kind)

    def _send(self, text: str, kind: types.MessageType) -> None:
        try:
            self.server.window_show_message(types.ShowMessageParams(type=kind, message=text))
        except Exception:  # no client attached (tests, shutdown)
            log.debug("could not send showMessage", exc_info=True)

    def notify(self, method: str, params: Any) -> None:
        try:
            self.server.protocol.notify(method, params)
        except Exception:  # the connection is closing
            log.debug("could not send %s", method, exc_info=True)

    def status(self, status: Status) -> None:
        self.notify(STATUS, status.to_json())

    def from_thread(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the event loop (from the engine's or the ledger's thread)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(action)
