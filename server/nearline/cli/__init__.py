"""The ``nearline`` command: serve, complete, models, route, doctor, usage, dashboard, prices,
eval, team (one module each)."""

from __future__ import annotations

import argparse
import logging
import sys

from nearline import __version__
from nearline.cli import (
    complete,
    dashboard,
    doctor,
    evaluate,
    models,
    prices,
    route,
    serve,
    team,
    usage,
)
from nearline.cli.common import add_model_flags
from nearline.errors import NearlineError

log = logging.getLogger("nearline")

COMMANDS = {
    "serve": serve.run,
    "complete": complete.run,
    "models": models.run,
    "route": route.run,
    "doctor": doctor.run,
    "usage": usage.run,
    "dashboard": dashboard.run,
    "prices": prices.run,
    "eval": evaluate.run,
    "team": team.run,
}


def _setup_logging(level: str, log_file: str | None) -> None:
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("nearline").setLevel(level.upper())


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
    add_model_flags(p_serve)

    p_complete = sub.add_parser("complete", help="one completion at FILE:LINE:COL (1-based)")
    p_complete.add_argument("location", metavar="FILE:LINE:COL")
    p_complete.add_argument("--time-budget-ms", type=int, default=10_000)
    p_complete.add_argument("--json", action="store_true", help="print JSON")
    add_model_flags(p_complete)

    p_models = sub.add_parser("models", help="list models; `models pull NAME` downloads one")
    p_models.add_argument("action", nargs="?", choices=["list", "pull"], default="list")
    p_models.add_argument("name", nargs="?")
    add_model_flags(p_models)

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
    add_model_flags(p_doctor)

    p_usage = sub.add_parser(
        "usage",
        help="tokens and cost per day, week, month, model, ...; "
        "`usage import SOURCE [PATH...]` reads another tool's usage",
    )
    p_usage.add_argument("action", nargs="?", choices=["report", "import"], default="report")
    p_usage.add_argument(
        "rest",
        nargs="*",
        metavar="SOURCE [PATH]",
        help="import: claude-code, codex, gemini-cli, copilot, openai-usage or anthropic-usage "
        "(default: [usage.import] sources), then files or folders (default: the tool's own)",
    )
    p_usage.add_argument(
        "--quiet", action="store_true", help="import: one line per source, not per file"
    )
    period = p_usage.add_mutually_exclusive_group()
    period.add_argument("--daily", dest="period", action="store_const", const="day")
    period.add_argument("--weekly", dest="period", action="store_const", const="week")
    period.add_argument("--monthly", dest="period", action="store_const", const="month")
    p_usage.add_argument(
        "--by",
        choices=["model", "tier", "project", "task", "client", "developer"],
        help="group by this instead (client: lsp, complete, eval, ...; developer: with --team)",
    )
    p_usage.add_argument(
        "--team", action="store_true", help="the whole team's usage, from the team database"
    )
    p_usage.add_argument("--since", metavar="YYYY-MM-DD", help="first day (default: 30 days ago)")
    p_usage.add_argument("--until", metavar="YYYY-MM-DD", help="last day (default: today)")
    p_usage.add_argument("--project", metavar="NAME|PATH", help="only this project")
    out = p_usage.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON")
    out.add_argument("--csv", action="store_true", help="print CSV")
    out.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    p_usage.set_defaults(period="day")

    p_board = sub.add_parser("dashboard", help="the usage dashboard in the browser")
    p_board.add_argument(
        "--team", action="store_true", help="the whole team's usage, from the team database"
    )
    p_board.add_argument(
        "--port", type=int, help="port (default: usage.dashboard_port, 8760; 0: any free one)"
    )
    p_board.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address (default 127.0.0.1; any other than loopback asks for a token)",
    )
    p_board.add_argument("--open", action="store_true", help="open the page in a browser")
    p_board.add_argument(
        "--token", action="store_true", help="ask for a token on loopback too (a shared machine)"
    )

    p_prices = sub.add_parser("prices", help="the price table; `prices import FILE` (LiteLLM)")
    p_prices.add_argument("action", nargs="?", choices=["list", "import"], default="list")
    p_prices.add_argument("file", nargs="?", help="model_prices_and_context_window.json")

    p_eval = sub.add_parser(
        "eval",
        help="how well each local model (and tier) serves this project, from its git history",
    )
    p_eval.add_argument("path", nargs="?", default=".", help="a folder in the git checkout")
    p_eval.add_argument("--commits", type=int, default=200, help="newest N commits (200)")
    p_eval.add_argument("--since", metavar="DATE", help="only commits since DATE (git's --since)")
    p_eval.add_argument(
        "--cases-per-commit", type=int, default=1, help="completion cases per commit (1)"
    )
    p_eval.add_argument(
        "--models",
        metavar="A,B",
        help="catalog names, embedded, or GGUF paths (default: the serving model and every "
        "pulled one)",
    )
    p_eval.add_argument(
        "--tiers", metavar="A,B", help="tiers to run the escalation cases on: local, value, ..."
    )
    p_eval.add_argument(
        "--max-usd",
        type=float,
        default=0.25,
        help="the most the cloud tiers may cost (0.25); over it, ask or stop before sending",
    )
    p_eval.add_argument("--json", action="store_true", help="print JSON")
    p_eval.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    add_model_flags(p_eval)

    p_team = sub.add_parser(
        "team", help="the team ledger: `team status` (default), `team sync` (send now)"
    )
    p_team.add_argument("action", nargs="?", choices=["status", "sync"], default="status")
    p_team.add_argument("--json", action="store_true", help="print JSON (status)")

    args = parser.parse_args(argv)
    _setup_logging(
        args.log_level or ("INFO" if args.command == "serve" else "WARNING"), args.log_file
    )
    try:
        return COMMANDS[args.command](args)
    except NearlineError as exc:
        print(f"nearline: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
