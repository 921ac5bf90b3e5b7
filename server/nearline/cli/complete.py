"""``nearline complete FILE:LINE:COL``: one completion with the local model, recorded in the
usage ledger like the editor's."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from nearline.cli.common import parse_location, settings_for
from nearline.errors import NearlineError


def run(args: argparse.Namespace) -> int:
    from nearline.accounting.ledger import Ledger
    from nearline.app.completions import Completions
    from nearline.app.project import project_of_file
    from nearline.app.remote import make_service
    from nearline.completion import Source
    from nearline.documents import OpenDocument, language_of

    path, line, column = parse_location(args.location)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NearlineError(f"cannot read {path}: {exc.strerror}") from None
    text = data.decode("utf-8", "replace")
    settings = settings_for(args, path.resolve().parent)
    uri = path.resolve().as_uri()
    view = OpenDocument(uri, text, None, settings.completion.max_document_bytes).view()
    project = project_of_file(path, settings)
    service = make_service(settings, Path(project.root) if project.root else None)
    # The row is queued by complete() and written on the ledger's thread: the answer is
    # printed first, and a busy or unwritable ledger costs at most ~2 s after it.
    ledger = Ledger(
        on_error=lambda text: print(f"nearline: {text}", file=sys.stderr), busy_timeout=0.5
    )
    completions = Completions(service, ledger, lambda: project, client="complete")
    try:
        t0 = time.perf_counter()
        service.load_future.result()
        load_ms = (time.perf_counter() - t0) * 1000
        result = asyncio.run(
            completions.complete(
                view, line, column, "utf-32", language=language_of(str(path)), shown=False
            )
        )
    finally:
        service.close()
    info = {
        "suggestion": result.text,
        "model": result.model_id,
        "template": service.engine.template.id if result.engine == "local" else "",
        "engine": result.engine,
        "route": "team completion server" if result.engine == "remote" else "local",
        "source": result.source,
        "cache": "hit" if result.source is Source.CACHE else "miss",
        "latency_ms": round(result.latency_ms, 1),
        "load_ms": round(load_ms, 1),
    }
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        print(result.text if result.text else "(no suggestion)")
        print("---")
        template = f" (template {info['template']})" if info["template"] else ""
        print(f"model:   {info['model']}{template}")
        print(f"engine:  {info['engine']}")
        print(f"route:   {info['route']}")
        print(f"cache:   {info['cache']} ({result.source})")
        print(f"latency: {info['latency_ms']} ms (model load {info['load_ms']} ms)", flush=True)
    if not ledger.close(timeout=2.0):
        print("nearline: this request was not recorded in the usage ledger", file=sys.stderr)
    return 0
