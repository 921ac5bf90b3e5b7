"""Code actions and the task commands (refactor, explain, write tests, fix, ask): what the
editor offers, running one through ``app.escalations``, and what the person sees: one
``workspace/applyEdit`` for a change, a message or a Markdown document for an answer."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls import uris
from pygls.exceptions import JsonRpcInvalidParams

from nearline.app.escalations import Recorded
from nearline.errors import DiffError, NearlineError
from nearline.escalation.escalator import Document, Task
from nearline.escalation.results import (
    Answered,
    Changed,
    Failed,
    FileChange,
    Refused,
    Unappliable,
)
from nearline.escalation.router import model_of, title_for
from nearline.lsp.connection import Connection
from nearline.lsp.convert import workspace_edit
from nearline.lsp.protocol import TASK_COMMANDS, Status, TaskArgs
from nearline.paths import cache_dir
from nearline.tasks import TASKS, TaskKind

log = logging.getLogger(__name__)

SHOWN_CHARS = 1500
"""An explanation longer than this goes to a document when the client can show one."""


def code_actions(conn: Connection, params: types.CodeActionParams) -> list[types.CodeAction]:
    uri = params.text_document.uri
    if uri not in conn.state.documents or not uri.startswith("file:"):
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
    escalator = conn.state.escalations.escalator
    # Every action involves the same document: scan it for secrets and read the spending
    # once, not per action.
    private = escalator.privacy_verdict([document(conn, uri)])
    spending = escalator.current_spending()
    actions = []
    for info in TASKS.values():
        if info.code_action is None:
            continue
        args = dict(base)
        if info.kind is TaskKind.FIX:
            if not diagnostics:
                continue
            args["diagnostic"] = diagnostics[0].message
        task, docs = _task(conn, info.kind, TaskArgs.of(info.command, args))
        try:
            decision = escalator.decide(task, docs, private=private, spending=spending)
        except NearlineError as exc:
            log.info("no %s action: %s", info.kind, exc)
            continue
        title = title_for(decision, conn.state.settings, info.label)
        actions.append(
            types.CodeAction(
                title=title,
                kind=types.CodeActionKind(info.code_action),
                diagnostics=diagnostics[:1] if info.kind is TaskKind.FIX else None,
                command=types.Command(title=title, command=info.command, arguments=[args]),
            )
        )
    return actions


async def execute(conn: Connection, command: str, arguments: Any) -> dict[str, Any]:
    kind = TASK_COMMANDS[command]
    args = TaskArgs.parse(command, arguments)
    if kind is TaskKind.ASK and not args.instruction:
        raise JsonRpcInvalidParams("nearline.ask: the instruction is missing")
    task, docs = _task(conn, kind, args)
    recorded = await conn.state.escalations.run(task, docs)
    result, label = recorded.result, TASKS[kind].label
    if isinstance(result, Refused):
        return _fail(conn, f"nearline: {label} not sent: {result.reason}", warning=True)
    if isinstance(result, Failed):
        if result.offline:
            return _fail(
                conn,
                f"nearline: offline, {label} needs the network ({result.error}); "
                "autocomplete keeps working locally",
            )
        return _fail(conn, f"nearline: {label} failed: {result.error}; nothing changed")
    if isinstance(result, Unappliable):  # paid for, recorded as an error
        return _fail(
            conn, f"nearline: the proposed change does not apply: {result.reason}; nothing changed"
        )
    _report_usage(conn, recorded, result)
    for text in await conn.state.escalations.alerts(recorded):
        conn.notifier.show(text, types.MessageType.Warning)
    if isinstance(result, Changed) and result.changes:
        return await _apply(conn, kind, result)
    return await _show_answer(conn, kind, result)


def document(conn: Connection, uri_or_path: str) -> Document:
    """An open document as the editor has it, else the file on disk."""
    uri = uri_or_path if "://" in uri_or_path else Path(uri_or_path).resolve().as_uri()
    path = uris.to_fs_path(uri) or uri
    doc = conn.state.documents.get(uri)
    if doc is not None:
        return Document(uri, path, doc.text(), doc.version)
    try:
        return Document(uri, path, Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise JsonRpcInvalidParams(f"cannot read {uri}: {exc}") from None


def _task(conn: Connection, kind: TaskKind, args: TaskArgs) -> tuple[Task, list[Document]]:
    task = Task(
        kind=kind,
        uri=args.uri,
        start_line=args.start_line,
        end_line=args.end_line,
        instruction=args.instruction,
        files=args.files,
        diagnostic=args.diagnostic,
    )
    docs = [document(conn, args.uri)] + [document(conn, f) for f in args.files]
    return task, docs


def _report_usage(conn: Connection, recorded: Recorded, result: Answered | Changed) -> None:
    """The answer's tokens and cost: for ``nearline/stats`` and the status bar."""
    r, decision, entry = result.result, result.decision, recorded.entry
    usage = {
        "input_tokens": r.usage.input_tokens,
        "cache_read_tokens": r.usage.cache_read_tokens,
        "cache_write_tokens": r.usage.cache_write_tokens,
        "output_tokens": r.usage.output_tokens,
    }
    conn.state.escalation_usage.append(
        {
            "task": decision.task,
            "tier": decision.tier,
            "provider": r.provider,
            "model": r.model,
            "latency_ms": round(r.latency_ms, 1),
            "attempts": r.attempts,
            **usage,
            "cost_usd": entry.cost_usd,
        }
    )
    conn.notifier.status(
        Status(
            tier=decision.tier,
            model=r.model,
            provider=r.provider,
            source=decision.task,
            latency_ms=round(r.latency_ms, 1),
            cost_usd=entry.cost_usd,
            spend_today_usd=conn.state.spend_today(),
            usage=usage,
        )
    )


def _fail(conn: Connection, text: str, *, warning: bool = False) -> dict[str, Any]:
    kind = types.MessageType.Warning if warning else types.MessageType.Error
    conn.notifier.show(text, kind)
    return {"ok": False, "message": text}


def _who(result: Answered | Changed) -> str:
    r = result.result
    return f"{result.decision.tier} · {r.model} · {r.latency_ms / 1000:.1f} s"


async def _apply(conn: Connection, kind: TaskKind, result: Changed) -> dict[str, Any]:
    changes = result.changes
    stale = [c for c in changes if c.old_text is not None and _current(conn, c) != c.old_text]
    if stale:  # edited while the model was answering: check the diff against the new text
        try:
            docs = [document(conn, c.uri) for c in changes if c.old_text is not None]
            changes = conn.state.escalations.escalator.plan_changes(result.text, docs)
        except DiffError as exc:
            return _fail(
                conn,
                f"nearline: the document changed and the proposed change no "
                f"longer applies: {exc}; nothing changed",
            )
    label = f"nearline: {TASKS[kind].label}"
    response = await conn.server.workspace_apply_edit_async(
        types.ApplyWorkspaceEditParams(edit=workspace_edit(changes, conn.encoding), label=label)
    )
    if not response.applied:
        reason = response.failure_reason or "no reason given"
        return _fail(conn, f"{label}: the editor did not apply the change ({reason})")
    names = ", ".join(Path(c.path).name for c in changes)
    conn.notifier.show(f"{label}: changed {names} ({_who(result)})", types.MessageType.Info)
    return {"ok": True, "files": [c.uri for c in changes], "provider": result.result.provider}


def _current(conn: Connection, change: FileChange) -> str | None:
    doc = conn.state.documents.get(change.uri)
    return doc.text() if doc is not None else change.old_text


async def _show_answer(
    conn: Connection, kind: TaskKind, result: Answered | Changed
) -> dict[str, Any]:
    text = result.text.strip() or "(the model gave no answer)"
    header = f"nearline: {TASKS[kind].label} ({_who(result)})"
    shown_as = "message"
    caps = conn.server.client_capabilities
    can_show = bool(caps.window and caps.window.show_document and caps.window.show_document.support)
    if len(text) > SHOWN_CHARS and can_show:
        folder = cache_dir() / "answers"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha256(text.encode()).hexdigest()[:12]
            path = folder / f"{kind}-{name}.md"
            path.write_text(f"# {header}\n\n{text}\n", encoding="utf-8")
            await conn.server.window_show_document_async(
                types.ShowDocumentParams(uri=path.as_uri(), take_focus=True)
            )
            shown_as = path.as_uri()
        except OSError as exc:
            log.warning("cannot write the answer to %s: %s", folder, exc)
    if shown_as == "message":
        conn.notifier.show(f"{header}\n\n{text[: SHOWN_CHARS * 4]}", types.MessageType.Info)
    return {
        "ok": True,
        "text": text,
        "shown_as": shown_as,
        "provider": result.result.provider,
        "model": model_of(result.decision.providers[0], conn.state.settings),
    }
