"""``nearline.usage`` (the usage report as text) and ``nearline/stats`` (counters)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from nearline.app.usage import text_report
from nearline.errors import NearlineError
from nearline.lsp.connection import Connection
from nearline.lsp.protocol import UsageArgs


async def usage(conn: Connection, arguments: Any) -> str:
    """The report of the last ``days`` days, 80 columns wide (the editors' "show usage")."""
    args = UsageArgs.parse(arguments)
    ledger, settings = conn.state.ledger, conn.state.settings

    def report() -> str:
        if ledger is not None:
            ledger.flush(2.0)
        return text_report(
            settings, days=args.days, period=args.period, by=args.by, project=args.project
        )

    try:
        return await asyncio.to_thread(report)
    except NearlineError as exc:
        return f"nearline: {exc}"


def stats(conn: Connection) -> dict[str, Any]:
    service = conn.state.service
    data: dict[str, Any] = {"loaded": False, "escalations": list(conn.state.escalation_usage)}
    index = conn.state.index
    if index is not None:
        data["index"] = {
            "ready": index.ready.is_set(),
            "building": index.building,
            "files": len(index),
            "generation": index.generation,
            "last_refresh": dataclasses.asdict(index.last) if index.last else None,
        }
    if service is not None:
        data.update(service.stats_dict())
        error = service.load_error()
        data.update(
            loaded=service.load_future.done() and error is None,
            load_error=str(error) if error else None,
            model=service.engine.model_id,
            template=service.engine.template.id,
            engine=service.engine.counters(),
        )
    return data
