"""Code actions and commands for escalated requests: what the editor offers, and applying the
answer (one ``workspace/applyEdit``, or the explanation shown as a document)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls import uris
from pygls.exceptions import JsonRpcInvalidParams

from nearline.accounting.alerts import spike
from nearline.accounting.budget import Spending
from nearline.accounting.entries import Entry, day_of
from nearline.catalog import resolve_model_path
from nearline.documents import split_lines, to_client_units
from nearline.errors import (
    DiffError,
    LedgerError,
    NearlineError,
    OfflineError,
    PrivacyError,
    ProviderError,
    RoutingError,
)
from nearline.escalation.escalator import (
    Document,
    Escalator,
    FileChange,
    Outcome,
    Task,
    ledger_entry,
)
from nearline.escalation.router import language_of, model_of, title_for
from nearline.paths import cache_dir
from nearline.tasks import BY_COMMAND, TASKS, TaskKind

if TYPE_CHECKING:
    from nearline.session import Session

log = logging.getLogger(__name__)

SHOWN_CHARS = 1500
"""An explanation longer than this goes to a document when the client can show one."""


class Actions:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._escalator: Escalator | None = None

    @property
    def escalator(self) -> Escalator:
        settings = self.session.settings
        if self._escalator is None:
            self._escalator = Escalator(
                settings,
                self.session.stack.root,
                lambda: resolve_model_path(self.session.settings.model),
                self._spending,
            )
        self._escalator.settings = settings
        self._escalator.root = self.session.stack.root
        return self._escalator

    async def aclose(self) -> None:
        """Close the providers' HTTP connections."""
        if self._escalator is not None:
            await self._escalator.aclose()

    def _spending(self) -> Spending | None:
        ledger = self.session.ledger
        if ledger is None:
            return None
        try:
            return ledger.spending(self.session.project()[0])
        except LedgerError as exc:
            text = f"nearline: {exc}; budgets cannot be checked"
            self.session.message(text, types.MessageType.Warning, key="budget")
            return None

    # -- documents ---------------------------------------------------------------------------
    def document(self, uri_or_path: str) -> Document:
        uri = uri_or_path if "://" in uri_or_path else Path(uri_or_path).resolve().as_uri()
        path = uris.to_fs_path(uri) or uri
        open_docs = self.session.server.workspace.text_documents
        if uri in open_docs:
            doc = open_docs[uri]
            return Document(uri, path, doc.source, doc.version)
        try:
            return Document(uri, path, Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise JsonRpcInvalidParams(f"cannot read {uri}: {exc}") from None

    def _task(self, kind: TaskKind, args: Mapping[str, Any]) -> tuple[Task, list[Document]]:
        uri = args.get("uri") or (args.get("textDocument") or {}).get("uri")
        if not isinstance(uri, str):
            raise JsonRpcInvalidParams(f"nearline.{kind}: expected {{uri, range}} arguments")
        rng = args.get("range") or {}
        start = int((rng.get("start") or {}).get("line", 0))
        end = int((rng.get("end") or {}).get("line", start))
        if end > start and int((rng.get("end") or {}).get("character", 1)) == 0:
            end -= 1  # a selection ending at column 0 does not include that line
        files = tuple(str(f) for f in args.get("files") or ())
        task = Task(
            kind=kind,
            uri=uri,
            start_line=start,
            end_line=end,
            instruction=str(args.get("instruction") or ""),
            files=files,
            diagnostic=str(args.get("diagnostic") or ""),
        )
        docs = [self.document(uri)] + [self.document(f) for f in files]
        return task, docs

    # -- code actions ------------------------------------------------------------------------
    def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        uri = params.text_document.uri
        if uri not in self.session.server.workspace.text_documents or not uri.startswith("file:"):
            return []  # untitled buffers: nothing the escalation could read back or patch
        rng = params.range
        base: dict[str, Any] = {
            "uri": uri,
            "range": {
                "start": {"line": rng.start.line, "character": rng.start.character},
                "end": {"line": rng.end.line, "character": rng.end.character},
            },
        }
        diagnostics = params.context.diagnostics or []
        # Every action involves the same document: scan it for secrets and read the spending
        # once, not per action.
        private = self.escalator.privacy_verdict([self.document(uri)])
        spending = self.escalator.current_spending()
        actions = []
        for info in TASKS.values():
            if info.code_action is None:
                continue
            kind = info.kind
            args = dict(base)
            if kind == "fix":
                if not diagnostics:
                    continue
                args["diagnostic"] = diagnostics[0].message
            task, docs = self._task(kind, args)
            try:
                decision = self.escalator.decide(task, docs, private=private, spending=spending)
            except NearlineError as exc:
                log.info("no %s action: %s", kind, exc)
                continue
            title = title_for(decision, self.session.settings, TASKS[kind].label)
            actions.append(
                types.CodeAction(
                    title=title,
                    kind=types.CodeActionKind(info.code_action),
                    diagnostics=diagnostics[:1] if kind == "fix" else None,
                    command=types.Command(title=title, command=info.command, arguments=[args]),
                )
            )
        return actions

    # -- running -----------------------------------------------------------------------------
    async def execute(self, command: str, arguments: Any) -> dict[str, Any]:
        kind = BY_COMMAND[command]
        args = arguments[0] if isinstance(arguments, (list, tuple)) and arguments else arguments
        if not isinstance(args, Mapping):
            raise JsonRpcInvalidParams(f"{command}: expected one argument {{uri, range}}")
        if kind == "ask" and not args.get("instruction"):
            raise JsonRpcInvalidParams("nearline.ask: the instruction is missing")
        task, docs = self._task(kind, args)
        t0 = time.perf_counter()
        try:
            outcome = await self.escalator.run(task, docs)
        except (RoutingError, PrivacyError) as exc:
            self._record_failure(task, docs, t0, "error")
            return self._fail(f"nearline: {TASKS[kind].label} not sent: {exc}", warning=True)
        except OfflineError as exc:
            self._record_failure(task, docs, t0, "error")
            return self._fail(
                f"nearline: offline, {TASKS[kind].label} needs the network "
                f"({exc}); autocomplete keeps working locally"
            )
        except ProviderError as exc:
            self._record_failure(task, docs, t0, "error")
            return self._fail(f"nearline: {TASKS[kind].label} failed: {exc}; nothing changed")
        except DiffError as exc:
            # The answer was paid for even though it does not apply.
            self._record_failure(task, docs, t0, "error", getattr(exc, "outcome", None))
            return self._fail(
                f"nearline: the proposed change does not apply: {exc}; nothing changed"
            )
        except asyncio.CancelledError:
            self._record_failure(task, docs, t0, "cancelled")
            raise
        entry = self._record(task, docs, outcome, "ok")
        self.session.escalation_status(outcome, entry)
        await self._alerts(outcome)
        if outcome.changes:
            return await self._apply(kind, outcome)
        return await self._show_answer(kind, outcome)

    # -- accounting --------------------------------------------------------------------------
    def _record(self, task: Task, docs: list[Document], outcome: Outcome, status: str) -> Entry:
        root, name = self.session.project()
        entry = ledger_entry(
            outcome,
            status,
            self.session.settings,
            project_root=root,
            project=name,
            language=language_of(docs[0].path),
        )
        self.session.record(entry)
        return entry

    def _record_failure(
        self,
        task: Task,
        docs: list[Document],
        t0: float,
        status: str,
        outcome: Outcome | None = None,
    ) -> None:
        if outcome is not None:
            self._record(task, docs, outcome, status)
            return
        root, name = self.session.project()
        self.session.record(
            Entry(
                task=task.kind,
                outcome=status,
                tier="",
                provider="",
                latency_ms=(time.perf_counter() - t0) * 1000,
                project_root=root,
                project=name,
                language=language_of(docs[0].path),
            )
        )

    async def _alerts(self, outcome: Outcome) -> None:
        """Budget warnings past the soft threshold, and a spending spike: each once."""
        ledger = self.session.ledger
        if ledger is None:
            return
        alerts = self.session.settings.alerts

        def check() -> list[str]:
            shown = [m for key, m in outcome.decision.warnings if ledger.notice_once(key)]
            today = day_of(time.time())
            since = (dt.date.fromisoformat(today) - dt.timedelta(days=7)).isoformat()
            try:
                root = self.session.project()[0]
                for scope, of in (("project", root), ("user", None)):
                    daily = ledger.daily(since, today, of)
                    found = spike(today, daily, alerts, ledger.first_day(of))
                    if found is not None and ledger.notice_once(f"spike:{scope}:{today}"):
                        whose = "this project's" if scope == "project" else "your"
                        shown.append(f"nearline: unusual spending: {whose} {found.describe()}")
            except LedgerError as exc:
                log.warning("cannot check for a spending spike: %s", exc)
            return shown

        for text in await asyncio.to_thread(check):
            self.session.show(text, types.MessageType.Warning)

    def _fail(self, text: str, *, warning: bool = False) -> dict[str, Any]:
        kind = types.MessageType.Warning if warning else types.MessageType.Error
        self.session.show(text, kind)
        return {"ok": False, "message": text}

    async def _apply(self, kind: TaskKind, outcome: Outcome) -> dict[str, Any]:
        changes = outcome.changes
        stale = [c for c in changes if c.old_text is not None and self._current(c) != c.old_text]
        if stale:  # edited while the model was answering: check the diff against the new text
            try:
                docs = [self.document(c.uri) for c in changes if c.old_text is not None]
                changes = self.escalator.plan_changes(outcome.text, docs)
            except DiffError as exc:
                return self._fail(
                    f"nearline: the document changed and the proposed change no "
                    f"longer applies: {exc}; nothing changed"
                )
        edit = types.WorkspaceEdit(
            document_changes=[part for change in changes for part in self._edit_parts(change)]
        )
        label = f"nearline: {TASKS[kind].label}"
        response = await self.session.server.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label=label)
        )
        if not response.applied:
            reason = response.failure_reason or "no reason given"
            return self._fail(f"{label}: the editor did not apply the change ({reason})")
        names = ", ".join(Path(c.path).name for c in changes)
        self.session.show(
            f"{label}: changed {names} ({self._who(outcome)})", types.MessageType.Info
        )
        return {"ok": True, "files": [c.uri for c in changes], "provider": outcome.result.provider}

    def _current(self, change: FileChange) -> str | None:
        docs = self.session.server.workspace.text_documents
        return docs[change.uri].source if change.uri in docs else change.old_text

    def _edit_parts(self, change: FileChange) -> list[Any]:
        ident = types.OptionalVersionedTextDocumentIdentifier(
            uri=change.uri, version=change.version
        )
        if change.old_text is None:
            return [
                types.CreateFile(
                    uri=change.uri, options=types.CreateFileOptions(ignore_if_exists=False)
                ),
                types.TextDocumentEdit(
                    text_document=ident,
                    edits=[
                        types.TextEdit(
                            range=types.Range(
                                start=types.Position(line=0, character=0),
                                end=types.Position(line=0, character=0),
                            ),
                            new_text=change.new_text,
                        )
                    ],
                ),
            ]
        return [
            types.TextDocumentEdit(
                text_document=ident,
                edits=[minimal_edit(change.old_text, change.new_text, self.session.encoding())],
            )
        ]

    def _who(self, outcome: Outcome) -> str:
        r = outcome.result
        return f"{outcome.decision.tier} · {r.model} · {r.latency_ms / 1000:.1f} s"

    async def _show_answer(self, kind: TaskKind, outcome: Outcome) -> dict[str, Any]:
        text = outcome.text.strip() or "(the model gave no answer)"
        header = f"nearline: {TASKS[kind].label} ({self._who(outcome)})"
        shown_as = "message"
        caps = self.session.server.client_capabilities
        can_show = bool(
            caps.window and caps.window.show_document and caps.window.show_document.support
        )
        if len(text) > SHOWN_CHARS and can_show:
            folder = cache_dir() / "answers"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                name = hashlib.sha256(text.encode()).hexdigest()[:12]
                path = folder / f"{kind}-{name}.md"
                path.write_text(f"# {header}\n\n{text}\n", encoding="utf-8")
                await self.session.server.window_show_document_async(
                    types.ShowDocumentParams(uri=path.as_uri(), take_focus=True)
                )
                shown_as = path.as_uri()
            except OSError as exc:
                log.warning("cannot write the answer to %s: %s", folder, exc)
        if shown_as == "message":
            self.session.show(f"{header}\n\n{text[: SHOWN_CHARS * 4]}", types.MessageType.Info)
        return {
            "ok": True,
            "text": text,
            "shown_as": shown_as,
            "provider": outcome.result.provider,
            "model": model_of(outcome.decision.providers[0], self.session.settings),
        }


def minimal_edit(old: str, new: str, encoding: str = "utf-16") -> types.TextEdit:
    """One edit replacing only the lines that differ between ``old`` and ``new``."""
    a, b = split_lines(old), split_lines(new)
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    end_line = len(a) - tail
    if end_line < len(a) or not a or a[-1].endswith(("\n", "\r")):
        end = types.Position(line=end_line, character=0)
    else:  # the replaced part runs to the end of a last line with no line end
        last = a[-1]
        end = types.Position(line=len(a) - 1, character=to_client_units(last, len(last), encoding))
    return types.TextEdit(
        range=types.Range(start=types.Position(line=head, character=0), end=end),
        new_text="".join(b[head : len(b) - tail]),
    )
