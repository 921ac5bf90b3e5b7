"""Every ``nearline/*`` method and ``nearline.*`` command the server speaks, with its parameters
(the README's "Protocol extensions"), and the JSON-RPC protocol class that answers bad params.

Plain LSP clients need none of these; nearline's own clients use them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from nearline.accounting.report.model import GROUPINGS, PERIODS
from nearline.tasks import BY_COMMAND

STATUS = "nearline/status"
"""Notification, server → client, after each answer and when the model's state changes."""
COMPLETION_READY = "nearline/completionReady"
"""Notification: a suggestion cut by the time budget is now whole; a client that asks again at
``{textDocument: {uri}, position}`` gets it from the cache at once."""
CURSOR_REST = "nearline/cursorRest"
"""Notification, client → server: the cursor rests at ``{textDocument: {uri}, position}``
(the client debounces its moves); the server evaluates the window there at low priority."""
STATS = "nearline/stats"
"""Request: counters, the last requests' timings, and the escalations' token usage."""
ACCEPTED = "nearline.accepted"
"""Command the client runs when the person accepts a suggestion (the item's ``command``)."""
USAGE = "nearline.usage"
"""Command: the usage report as text (the editors' "show usage")."""
TASK_COMMANDS = BY_COMMAND
"""``nearline.refactor``, ``nearline.explain``, ...: the escalated tasks (``tasks.TASKS``)."""


@dataclass(frozen=True)
class Status:
    """``nearline/status`` params. ``source``/``latency_ms`` come with an answer; ``provider``,
    ``cost_usd`` and ``usage`` with an escalation's."""

    state: str = "ready"
    """"loading", "ready" or "error"."""
    tier: str = "local"
    model: str | None = None
    message: str = ""
    spend_today_usd: float = 0.0
    source: str | None = None
    latency_ms: float | None = None
    engine: str | None = None
    """Who wrote the answer: "local" (this machine's model) or "remote" (the team's server)."""
    provider: str | None = None
    cost_usd: float | None = None
    usage: Mapping[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "state": self.state,
            "tier": self.tier,
            "model": self.model,
            "message": self.message,
            "spend_today_usd": self.spend_today_usd,
        }
        for key in ("source", "latency_ms", "engine", "provider", "cost_usd", "usage"):
            value = getattr(self, key)
            if value is not None:
                data[key] = dict(value) if key == "usage" else value
        return data


def first_argument(arguments: Any) -> Any:
    """A command's one argument: pygls passes the arguments list, or the argument itself."""
    return arguments[0] if isinstance(arguments, (list, tuple)) and arguments else arguments


@dataclass(frozen=True)
class AcceptedArgs:
    """``nearline.accepted``: ``{id, uri, source, chars, model}``; ``id`` is the ledger row."""

    id: str | None

    @staticmethod
    def parse(arguments: Any) -> AcceptedArgs:
        args = first_argument(arguments)
        uid = args.get("id") if isinstance(args, Mapping) else None
        return AcceptedArgs(uid if isinstance(uid, str) else None)


@dataclass(frozen=True)
class UsageArgs:
    """``nearline.usage``: ``{days?, period?: day|week|month, by?, project?}``."""

    days: int = 7
    period: str = "day"
    by: str | None = None
    project: str | None = None

    @staticmethod
    def parse(arguments: Any) -> UsageArgs:
        """``JsonRpcInvalidParams`` names what is wrong."""
        args = first_argument(arguments)
        args = args if isinstance(args, Mapping) else {}
        days = args.get("days", 7)
        period = args.get("period", "day")
        by = args.get("by")
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 366:
            raise JsonRpcInvalidParams(f"{USAGE}: days must be an integer in 1..366")
        if period not in PERIODS or by not in (None, *GROUPINGS):
            raise JsonRpcInvalidParams(
                f"{USAGE}: period is {'|'.join(PERIODS)}, by is {'|'.join(GROUPINGS)}"
            )
        project = args.get("project")
        return UsageArgs(days, period, by, project if isinstance(project, str) else None)


@dataclass(frozen=True)
class TaskArgs:
    """``nearline.refactor`` and the other task commands: ``{uri, range, instruction?, files?,
    diagnostic?}``; the range's lines are the selection (inclusive)."""

    uri: str
    start_line: int
    end_line: int
    instruction: str = ""
    files: tuple[str, ...] = ()
    diagnostic: str = ""

    @staticmethod
    def parse(command: str, arguments: Any) -> TaskArgs:
        args = first_argument(arguments)
        if not isinstance(args, Mapping):
            raise JsonRpcInvalidParams(f"{command}: expected one argument {{uri, range}}")
        return TaskArgs.of(command, args)

    @staticmethod
    def of(command: str, args: Mapping[str, Any]) -> TaskArgs:
        uri = args.get("uri") or (args.get("textDocument") or {}).get("uri")
        if not isinstance(uri, str):
            raise JsonRpcInvalidParams(f"{command}: expected {{uri, range}} arguments")
        rng = args.get("range") or {}
        start = int((rng.get("start") or {}).get("line", 0))
        end = int((rng.get("end") or {}).get("line", start))
        if end > start and int((rng.get("end") or {}).get("character", 1)) == 0:
            end -= 1  # a selection ending at column 0 does not include that line
        return TaskArgs(
            uri=uri,
            start_line=start,
            end_line=end,
            instruction=str(args.get("instruction") or ""),
            files=tuple(str(f) for f in args.get("files") or ()),
            diagnostic=str(args.get("diagnostic") or ""),
        )


class NearlineProtocol(LanguageServerProtocol):
    """pygls drops a request whose params do not deserialize, leaving the client waiting;
    answer it with InvalidParams instead. A request may leave params out (JSON-RPC allows it;
    pygls' message class does not).

    Open documents are the server's own (``ServerState``, kept line by line): pygls' copy in
    its workspace would cost a split and a rewrite of the whole text on every keystroke, so
    the document notifications go straight to the handlers."""

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None

    def structure_message(self, data: dict[str, Any]) -> Any:
        if isinstance(data, dict) and "method" in data and "params" not in data:
            data = {**data, "params": None}
        try:
            return super().structure_message(data)
        except JsonRpcException:
            if not (isinstance(data, dict) and "id" in data and "method" in data):
                raise
            error = JsonRpcInvalidParams(
                f"invalid params for {data['method']}: expected the LSP "
                f"{data['method']} parameters, got {str(data.get('params'))[:200]}"
            )
            self._send_response(data["id"], error=error.to_response_error())
            return SimpleNamespace(jsonrpc="(answered: invalid params)")  # handle_message skips it
