"""What one editor connection holds: settings, the completion service, messages already shown.
Turns LSP parameters into service calls and results into LSP types; ``lsp`` only registers."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls import uris
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from nearline.accounting.entries import Entry
from nearline.accounting.ledger import Ledger
from nearline.actions import Actions
from nearline.completion.service import (
    CompletionResult,
    CompletionService,
    build_service,
    ledger_entry,
)
from nearline.config import ConfigStack, merge
from nearline.documents import DocumentView, split_lines, to_client_units
from nearline.errors import (
    DocumentError,
    ModelError,
    NearlineError,
    UnknownDocumentError,
    UnsupportedDocumentError,
)
from nearline.tasks import AUTOCOMPLETE

log = logging.getLogger(__name__)

COMPLETION_READY = "nearline/completionReady"
"""Notification: a suggestion cut by the time budget is now whole; a client that asks again at
this position gets it from the cache at once. Clients that don't know it ignore it."""

STATUS = "nearline/status"
"""Notification after each answer and when the model's state changes, for status bars:
``{"state": "loading" | "ready" | "error", "tier", "model", "source", "latency_ms",
"spend_today_usd", "message"}``."""

USAGE = "nearline.usage"
"""Command: the usage report as text (the editors' "show usage")."""

ACCEPTED = "nearline.accepted"
"""Command the client runs when the person accepts a suggestion (the item's ``command``)."""

WARMUP_IDLE_S = 0.3
"""After an edit with no completion request for this long, warm the window at the edit."""


CONFIG_POLL_S = 2.0
"""How often the config files are checked for changes."""


def _root_of(params: types.InitializeParams) -> Path | None:
    uri = params.root_uri
    if params.workspace_folders:
        uri = params.workspace_folders[0].uri
    if uri:
        return Path(uris.to_fs_path(uri) or ".")
    return Path(params.root_path) if params.root_path else None


class Session:
    def __init__(self, server: LanguageServer, flags: Mapping[str, Any] | None = None) -> None:
        self.server = server
        self.stack = ConfigStack(flags=dict(flags or {}))
        self.settings = self.stack.settings
        self.service: CompletionService | None = None
        self._shown_messages: set[str] = set()
        self._views: dict[str, DocumentView] = {}
        self._idle: dict[str, asyncio.TimerHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: asyncio.TimerHandle | None = None
        self.actions = Actions(self)
        self.escalations: collections.deque[dict[str, Any]] = collections.deque(maxlen=256)
        """Usage of each escalated request, cached tokens apart (also in the ledger)."""
        self.ledger: Ledger | None = None
        self._closing: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def initialize(self, params: types.InitializeParams) -> None:
        self.stack.root = _root_of(params)
        self._set_editor_options(params.initialization_options, "initializationOptions")
        self._reload()
        # For messages from other threads (the ledger's) that come before `initialized`.
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        self.ledger = Ledger(on_error=self._ledger_error)

    def _ledger_error(self, text: str) -> None:
        """On the ledger's thread."""
        self._from_thread(
            lambda: self.message(
                f"nearline: {text}; usage is not being recorded",
                types.MessageType.Warning,
                key=f"ledger:{text}",
            )
        )

    # -- project and ledger ------------------------------------------------------------------
    def project(self) -> tuple[str, str]:
        """(root path, name) of the project the requests belong to."""
        file = self.stack.project_file
        root = file.parent if file is not None else self.stack.root
        if root is None:
            return "", ""
        return str(root), self.settings.usage.project_name or root.name

    def record(self, entry: Entry) -> str:
        if self.ledger is None:
            return entry.uid
        return self.ledger.record(entry)

    def spend_today(self) -> float:
        return round(self.ledger.spend_today(), 6) if self.ledger is not None else 0.0

    def _language(self, uri: str) -> str:
        doc = self.server.workspace.text_documents.get(uri)
        return (getattr(doc, "language_id", None) or "") if doc is not None else ""

    def initialized(self) -> None:
        """Start loading the model now, so the first keystroke does not pay for it."""
        self._loop = asyncio.get_running_loop()
        self._ensure_service()
        self._status(state="loading", message="loading the model")
        self._watcher = self._loop.call_later(CONFIG_POLL_S, self._watch)

    def _set_editor_options(self, options: Any, source: str) -> None:
        if isinstance(options, Mapping) and isinstance(options.get("nearline"), Mapping):
            options = options["nearline"]
        if options is None:
            return
        if not isinstance(options, Mapping):
            self.message(
                f"nearline: {source} must be an object; keeping the current settings",
                types.MessageType.Warning,
                key=f"config:{source}",
            )
            return
        # Clients often send only what changed: it goes over what they sent before.
        self.stack.editor = merge(self.stack.editor, options)

    def _reload(self) -> bool:
        """Read the settings layers again; a broken one is reported once and the last good
        settings stay. Returns whether the settings changed."""
        settings, error = self.stack.try_load()
        if error is not None:
            self.message(
                f"nearline: {error}; keeping the last good settings",
                types.MessageType.Error,
                key=f"config:{error}",
            )
        changed = settings != self.settings
        self.settings = settings
        logging.getLogger("nearline").setLevel(settings.log_level.upper())
        return changed

    def _apply_reload(self) -> None:
        old = self.settings
        if not self._reload():
            return
        log.info("settings changed")
        service = self.service
        if service is None:
            return
        if (old.model, old.cache) != (self.settings.model, self.settings.cache):
            self.service = None
            service.close()
            self._ensure_service()
        else:
            service.settings = self.settings

    def _watch(self) -> None:
        """Reload when a config file appears, changes or goes away."""
        try:
            if self.stack.changed():
                self._apply_reload()
        finally:
            if self._loop is not None and not self._loop.is_closed():
                self._watcher = self._loop.call_later(CONFIG_POLL_S, self._watch)

    def _ensure_service(self) -> CompletionService:
        if self.service is None:
            self.service = build_service(self.settings)
            if self.service.cache.disk_error:
                self.message(
                    f"nearline: {self.service.cache.disk_error}",
                    types.MessageType.Warning,
                    key="cache",
                )
            self.service.load_future.add_done_callback(self._report_load)
            self.service.on_extended = self._completion_ready
        return self.service

    def _completion_ready(self, uri: str, ctx: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        character = to_client_units(ctx.line_prefix, len(ctx.line_prefix), self._encoding())
        params = {
            "textDocument": {"uri": uri},
            "position": {"line": ctx.line, "character": character},
        }
        loop.call_soon_threadsafe(self._notify, COMPLETION_READY, params)

    def accepted(self, arguments: Any) -> None:
        if self.service is not None:
            self.service.stats.accepted += 1
        args = arguments[0] if isinstance(arguments, (list, tuple)) and arguments else arguments
        uid = args.get("id") if isinstance(args, Mapping) else None
        if isinstance(uid, str) and self.ledger is not None:
            self.ledger.accept(uid)
        log.debug("accepted %s", arguments)

    def _notify(self, method: str, params: Any) -> None:
        try:
            self.server.protocol.notify(method, params)
        except Exception:  # the connection is closing
            log.debug("could not send %s", method, exc_info=True)

    def _report_load(self, fut: Any) -> None:
        """On the engine thread, when loading ends."""
        exc = None if fut.cancelled() else fut.exception()
        if exc is not None:
            log.error("model load failed: %s", exc)
            self._from_thread(
                lambda: self.message(f"nearline: {exc}", types.MessageType.Error, key="model")
            )
            self._from_thread(lambda: self._status(state="error", message=str(exc)))
        else:
            self._from_thread(lambda: self._status(state="ready"))

    def _from_thread(self, action: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(action)

    def _status(
        self, *, state: str = "ready", result: CompletionResult | None = None, message: str = ""
    ) -> None:
        service = self.service
        params: dict[str, Any] = {
            "state": state,
            "tier": "local",
            "model": service.engine.model_id if service else None,
            "message": message,
            "spend_today_usd": self.spend_today(),
        }
        if result is not None:
            params.update(source=result.source, latency_ms=round(result.latency_ms, 1))
        self._notify(STATUS, params)

    def did_change_configuration(self, params: types.DidChangeConfigurationParams) -> None:
        self._set_editor_options(params.settings, "workspace/didChangeConfiguration")
        self._apply_reload()

    def shutdown(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        for handle in self._idle.values():
            handle.cancel()
        if self.service is not None:
            self.service.close()
            self.service = None
        if self.ledger is not None:
            self.ledger.close(timeout=2.0)  # rows the database takes by then; shutdown waits
        if self._loop is not None and self._loop.is_running():
            self._closing = self._loop.create_task(self.actions.aclose())

    # -- messages ----------------------------------------------------------------------------
    def show(self, text: str, kind: types.MessageType) -> None:
        """``window/showMessage`` every time (answers and outcomes of requests)."""
        log.info("%s", text.splitlines()[0] if text else text)
        try:
            self.server.window_show_message(types.ShowMessageParams(type=kind, message=text))
        except Exception:  # no client attached (tests, shutdown)
            log.debug("could not send showMessage", exc_info=True)

    def escalation_status(self, outcome: Any, entry: Entry) -> None:
        r = outcome.result
        self.escalations.append(
            {
                "task": outcome.decision.task,
                "tier": outcome.decision.tier,
                "provider": r.provider,
                "model": r.model,
                "latency_ms": round(r.latency_ms, 1),
                "attempts": r.attempts,
                "input_tokens": r.usage.input_tokens,
                "cache_read_tokens": r.usage.cache_read_tokens,
                "cache_write_tokens": r.usage.cache_write_tokens,
                "output_tokens": r.usage.output_tokens,
                "cost_usd": entry.cost_usd,
            }
        )
        self._notify(
            STATUS,
            {
                "state": "ready",
                "tier": outcome.decision.tier,
                "model": r.model,
                "provider": r.provider,
                "source": outcome.decision.task,
                "latency_ms": round(r.latency_ms, 1),
                "cost_usd": entry.cost_usd,
                "spend_today_usd": self.spend_today(),
                "message": "",
                "usage": {
                    "input_tokens": r.usage.input_tokens,
                    "cache_read_tokens": r.usage.cache_read_tokens,
                    "cache_write_tokens": r.usage.cache_write_tokens,
                    "output_tokens": r.usage.output_tokens,
                },
            },
        )

    def message(self, text: str, kind: types.MessageType, *, key: str) -> None:
        """``window/showMessage`` once per ``key`` for this connection."""
        if key in self._shown_messages:
            return
        self._shown_messages.add(key)
        log.warning("%s", text)
        try:
            self.server.window_show_message(types.ShowMessageParams(type=kind, message=text))
        except Exception:  # no client attached (tests, shutdown)
            log.debug("could not send showMessage", exc_info=True)

    # -- documents ---------------------------------------------------------------------------
    def _view(self, uri: str) -> DocumentView:
        documents = self.server.workspace.text_documents
        if uri not in documents:
            raise UnknownDocumentError(
                f"unknown document {uri}: send textDocument/didOpen before asking for completions"
            )
        doc = documents[uri]
        view = self._views.get(uri)
        if view is None or view.version != doc.version or doc.version is None:
            source = doc.source
            self._ensure_service().check(uri, source)
            view = DocumentView(uri, doc.version, split_lines(source))
            self._views[uri] = view
        return view

    def did_open(self, params: types.DidOpenTextDocumentParams) -> None:
        uri = params.text_document.uri
        self._views.pop(uri, None)
        self._guard(lambda: self._warm(uri, 0, 0, end=True))

    def did_change(self, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        position = _change_end(params.content_changes)
        if position is None or not self.settings.completion.warmup:
            return
        if (old := self._idle.pop(uri, None)) is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._idle[uri] = loop.call_later(
            WARMUP_IDLE_S, lambda: self._guard(lambda: self._warm(uri, *position))
        )

    def did_close(self, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        self._views.pop(uri, None)
        if (handle := self._idle.pop(uri, None)) is not None:
            handle.cancel()
        if self.service is not None:
            self.service.forget(uri)

    def _warm(self, uri: str, line: int, character: int, *, end: bool = False) -> None:
        view = self._view(uri)
        if end:  # on open: the end of the file, where people usually start typing
            line = max(0, len(view.lines) - 1)
            character = len(view.lines[line].rstrip("\r\n")) if view.lines else 0
            character = to_client_units(
                view.lines[line] if view.lines else "", character, self._encoding()
            )
        service = self._ensure_service()
        if not service.load_future.done() or service.load_error() is None:
            service.warm(view, line, character, self._encoding())

    def _guard(self, action: Callable[[], None]) -> None:
        try:
            action()
        except UnsupportedDocumentError as exc:
            self.message(f"nearline: {exc}", types.MessageType.Info, key=f"doc:{exc}")
        except NearlineError as exc:
            log.info("warm-up skipped: %s", exc)

    def _request_id(self) -> Any:
        return getattr(self.server.protocol, "msg_id", None)

    def encoding(self) -> str:
        return self._encoding()

    def _encoding(self) -> str:
        encoding = self.server.workspace.position_encoding
        return str(getattr(encoding, "value", encoding) or "utf-16")

    # -- completion --------------------------------------------------------------------------
    async def _complete(self, uri: str, position: types.Position) -> CompletionResult | None:
        if (handle := self._idle.pop(uri, None)) is not None:
            handle.cancel()
        if not self.settings.completion.enable:
            return None
        service = self._ensure_service()
        t0 = time.perf_counter()
        try:
            view = self._view(uri)
            result = await service.complete(
                view,
                position.line,
                position.character,
                self._encoding(),
                request_id=self._request_id(),
            )
            uid = self._record_completion(uri, result)
            if result.source != "superseded":
                self._status(result=result)
            return dataclasses.replace(result, uid=uid)
        except asyncio.CancelledError:
            self._record_completion(uri, None, t0, "cancelled")
            raise
        except UnsupportedDocumentError as exc:
            self.message(f"nearline: {exc}", types.MessageType.Info, key=f"doc:{exc}")
            return None
        except DocumentError as exc:
            service.stats.errors += 1
            self._record_completion(uri, None, t0, "error")
            raise JsonRpcInvalidParams(str(exc)) from None
        except ModelError as exc:
            self.message(f"nearline: {exc}", types.MessageType.Error, key="model")
            self._record_completion(uri, None, t0, "error")
            return None

    def _record_completion(
        self,
        uri: str,
        result: CompletionResult | None,
        t0: float = 0.0,
        outcome: str = "error",
    ) -> str:
        """One ledger row for a completion request (never waits for the disk)."""
        root, name = self.project()
        model = self.service.engine.model_id if self.service is not None else ""
        if result is None:
            entry = Entry(
                task=AUTOCOMPLETE,
                outcome=outcome,
                model=model,
                latency_ms=(time.perf_counter() - t0) * 1000,
                project_root=root,
                project=name,
                language=self._language(uri),
            )
            return self.record(entry)
        entry = ledger_entry(
            result, project_root=root, project=name, language=self._language(uri), shown=True
        )
        return self.record(entry)

    async def inline_completion(
        self, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        result = await self._complete(params.text_document.uri, params.position)
        if result is None or not result.text:
            return types.InlineCompletionList(items=[])
        return types.InlineCompletionList(
            items=[
                types.InlineCompletionItem(
                    insert_text=result.text,
                    range=types.Range(start=params.position, end=params.position),
                    command=self._accept_command(params.text_document.uri, result),
                )
            ]
        )

    def _accept_command(self, uri: str, result: CompletionResult) -> types.Command:
        return types.Command(
            title="nearline: suggestion accepted",
            command=ACCEPTED,
            arguments=[
                {
                    "id": result.uid,
                    "uri": uri,
                    "source": result.source,
                    "chars": len(result.text),
                    "model": result.model_id,
                }
            ],
        )

    async def completion(self, params: types.CompletionParams) -> types.CompletionList:
        result = await self._complete(params.text_document.uri, params.position)
        if result is None or not result.text:
            return types.CompletionList(is_incomplete=True, items=[])
        view = self._view(params.text_document.uri)
        line_text = view.lines[result.line].rstrip("\r\n") if result.line < len(view.lines) else ""
        before = line_text[: result.character]
        word = before[
            len(before.rstrip("_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")) :
        ]
        start = types.Position(
            line=params.position.line,
            character=params.position.character
            - (
                to_client_units(before, len(before), self._encoding())
                - to_client_units(before, len(before) - len(word), self._encoding())
            ),
        )
        first_line = result.text.split("\n", 1)[0]
        label = (word + first_line).strip() or result.text.strip()
        return types.CompletionList(
            is_incomplete=True,
            items=[
                types.CompletionItem(
                    label=label[:80],
                    kind=types.CompletionItemKind.Text,
                    detail=f"nearline · {result.model_id}",
                    filter_text=word + result.text,
                    sort_text="0",
                    insert_text_format=types.InsertTextFormat.PlainText,
                    text_edit=types.TextEdit(
                        range=types.Range(start=start, end=params.position),
                        new_text=word + result.text,
                    ),
                )
            ],
        )

    async def usage(self, arguments: Any) -> str:
        """``nearline.usage``: the usage report as text, for the editors' "show usage".
        Arguments (all optional): ``{days, period: day|week|month, by, project}``."""
        from nearline.app.usage import text_report

        args = arguments[0] if isinstance(arguments, (list, tuple)) and arguments else arguments
        args = args if isinstance(args, Mapping) else {}
        days = args.get("days", 7)
        period = args.get("period", "day")
        by = args.get("by")
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 366:
            raise JsonRpcInvalidParams("nearline.usage: days must be an integer in 1..366")
        if period not in ("day", "week", "month") or by not in (None, *BY):
            raise JsonRpcInvalidParams(
                "nearline.usage: period is day|week|month, by is model|tier|project|task"
            )
        project = args.get("project")
        ledger = self.ledger

        def report() -> str:
            if ledger is not None:
                ledger.flush(2.0)
            return text_report(
                self.settings,
                days=days,
                period=period,
                by=by,
                project=project if isinstance(project, str) else None,
            )

        try:
            return await asyncio.to_thread(report)
        except NearlineError as exc:
            return f"nearline: {exc}"

    def stats(self) -> dict[str, Any]:
        service = self.service
        data: dict[str, Any] = {"loaded": False, "escalations": list(self.escalations)}
        if service is not None:
            data.update(service.stats.as_dict())
            engine = service.engine
            error = service.load_error()
            data.update(
                loaded=service.load_future.done() and error is None,
                load_error=str(error) if error else None,
                model=engine.model_id,
                template=engine.template.id,
            )
        return data


BY = ("model", "tier", "project", "task")


def _change_end(
    changes: Sequence[types.TextDocumentContentChangeEvent],
) -> tuple[int, int] | None:
    """Where the last incremental change left the cursor (an estimate in client units)."""
    if not changes:
        return None
    change = changes[-1]
    if not isinstance(change, types.TextDocumentContentChangePartial):
        return None
    start = change.range.start
    text = change.text
    if "\n" in text:
        return start.line + text.count("\n"), len(text.rsplit("\n", 1)[1])
    return start.line, start.character + len(text)
