"""``nearline eval``: how well each local model completes this project's own recent code, and
(with ``--tiers``) how well each tier makes its recent changes, with a suggested routing."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from nearline.cli.common import settings_for
from nearline.errors import EvalError, NearlineError


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    print(f"nearline: {question} [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def run(args: argparse.Namespace) -> int:
    from nearline.accounting.ledger import Ledger
    from nearline.app.indexing import open_index, refresh_quietly
    from nearline.app.project import project_at
    from nearline.config import ConfigStack
    from nearline.evaluation.history import GitRepo
    from nearline.evaluation.html import to_html
    from nearline.evaluation.report import report_dict, to_text
    from nearline.evaluation.session import (
        EvalOptions,
        EvalRun,
        candidates_for,
        evaluate,
        serving_label,
    )
    from nearline.evaluation.store import EvalStore
    from nearline.paths import cache_dir, project_store

    if args.commits < 1 or args.cases_per_commit < 0 or args.max_usd < 0:
        raise NearlineError(
            "--commits must be 1 or more; --cases-per-commit and --max-usd 0 or more"
        )
    repo = GitRepo.find(Path(args.path).resolve())
    state = repo.state()
    settings = settings_for(args, repo.root)
    found = ConfigStack(root=repo.root).project_file
    project = project_at(found.parent if found else repo.root, settings)

    def say(text: str) -> None:  # stderr: with --json, stdout is the JSON alone
        print(f"nearline: {text}", file=sys.stderr, flush=True)

    for note in state.notes():
        print(f"nearline: {note}", file=sys.stderr)
    options = EvalOptions(
        commits=args.commits,
        since=args.since,
        per_commit=args.cases_per_commit,
        models=_names(args.models),
        tiers=_names(args.tiers),
        max_usd=args.max_usd,
    )
    run_ = EvalRun(
        project.name,
        state,
        options,
        candidates=candidates_for(settings, options),
        serving=serving_label(settings),
    )
    folder = project_store(cache_dir(settings.cache.dir), "eval", repo.root)
    store = EvalStore(folder if settings.cache.enable_disk else None)
    index = open_index(repo.root, settings)
    ledger = (
        Ledger(on_error=lambda text: print(f"nearline: {text}", file=sys.stderr))
        if options.tiers
        else None
    )
    error: EvalError | None = None
    try:
        if index is not None:
            say("reading the project index")
            index.load()
            refresh_quietly(index)
        asyncio.run(
            evaluate(
                settings,
                store=store,
                run=run_,
                repo=repo,
                index=index,
                ledger=ledger,
                project=project,
                say=say,
                confirm=_confirm,
            )
        )
    except EvalError as exc:
        if not run_.commits:
            raise
        error = exc
    except KeyboardInterrupt:
        run_.interrupted = True
    finally:
        store.close()
        if index is not None:
            index.close()
        if ledger is not None and not ledger.close(timeout=5.0):
            print("nearline: some eval requests were not recorded in the ledger", file=sys.stderr)
    data = report_dict(run_)
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        print(to_text(data), end="", flush=True)
    if args.html:
        try:
            Path(args.html).write_text(to_html(data), encoding="utf-8")
            say(f"wrote {args.html}")
        except OSError as exc:
            error = error or EvalError(f"cannot write {args.html}: {exc.strerror or exc}")
    if error is not None:
        print(f"nearline: {error}", file=sys.stderr)
        return 1
    return 130 if run_.interrupted else 0
