"""The simulated month: a synthetic repository, the team's requests (who asks what, when, on
which files), and what the LSP server records for an autocomplete request."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nearline.accounting.entries import Entry, Outcome, Project, completion_entry
from nearline.accounting.prices import Tokens
from nearline.catalog import DEFAULT_FILE
from nearline.documents import language_of
from nearline.tasks import AUTOCOMPLETE

CLASSES = ("autocomplete", "names", "boilerplate", "complex", "debugging")
LABELS = {
    "autocomplete": "autocomplete",
    "names": "names",
    "boilerplate": "boilerplate",
    "complex": "complex logic",
    "debugging": "debugging/refactor",
}
DEFAULT_MIX = {"autocomplete": 45, "names": 28, "boilerplate": 12, "complex": 10, "debugging": 5}
MUST_BE_FLAGSHIP = ("complex", "debugging")
PROJECT = "acme-platform"
LOCAL_MODEL = Path(DEFAULT_FILE).stem
"""The model name the LSP server records for a completion by the embedded model."""
WORK_START_H, WORK_END_H = 9, 18


# -- the synthetic repository ----------------------------------------------------------------


def words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


NOUNS = words(
    "order invoice customer account payment report schedule session cache queue record batch "
    "event metric profile address shipment quota region tenant widget channel price discount "
    "item cart member group policy rule window buffer stream packet route setting carrier "
    "warehouse supplier contract refund review rating coupon ticket booking slot plan"
)
VERBS = words(
    "load save parse render build compute validate merge split fetch update apply resolve "
    "normalize format collect filter sort group sync count rank merge archive export import "
    "notify retry reserve release cancel"
)
ATTRS = words("id name total amount status created_at updated_at owner count weight priority")
PACKAGES = ("billing", "orders", "catalog", "shipping", "accounts", "reports", "search", "core")


def _ident(rng: random.Random, *parts: Sequence[str]) -> str:
    return "_".join(rng.choice(p) for p in parts)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(w.title() for w in rest)


def py_function(rng: random.Random, indent: str = "") -> list[str]:
    noun = rng.choice(NOUNS)
    name = f"{rng.choice(VERBS)}_{noun}"
    args = rng.sample(["items", "limit", "strict", "context", "now", "options", "source"], 2)
    lines = [
        f"{indent}def {name}({noun}, {args[0]}, {args[1]}=None):",
        f'{indent}    """{name.replace("_", " ").capitalize()} for the given {noun}."""',
    ]
    acc = f"{rng.choice(NOUNS)}_list"
    lines.append(f"{indent}    {acc} = []")
    for _ in range(rng.randint(3, 9)):
        pick = rng.random()
        var = rng.choice(NOUNS)
        attr = rng.choice(ATTRS)
        b = indent + "    "
        if pick < 0.25:
            lines += [f"{b}if {noun}.{attr} is None:", f"{b}    return {acc}"]
        elif pick < 0.5:
            lines += [
                f"{b}for {var} in {args[0]} or []:",
                f"{b}    if {var}.{attr} > {rng.randint(1, 500)}:",
                f"{b}        {acc}.append({var}.{rng.choice(ATTRS)})",
            ]
        elif pick < 0.7:
            other = _ident(rng, VERBS, NOUNS)
            lines.append(f"{b}{var}_{attr} = {other}({noun}.{attr}, {args[1]})")
        elif pick < 0.85:
            lines += [
                f"{b}try:",
                f"{b}    {acc}.extend({_ident(rng, VERBS, NOUNS)}({var}))",
                f"{b}except ValueError as exc:",
                f'{b}    log.warning("{name}: %s", exc)',
            ]
        else:
            lines += [
                f"{b}if len({acc}) > {rng.randint(10, 99)}:",
                f'{b}    raise ValueError(f"too many {var} entries: {{len({acc})}}")',
            ]
    lines.append(f"{indent}    return sorted({acc}, key=lambda x: x)")
    return lines


def py_file(rng: random.Random, target: int) -> str:
    lines = [
        f'"""{rng.choice(NOUNS).title()} {rng.choice(NOUNS)} handling."""',
        "",
        "from __future__ import annotations",
        "",
        "import logging",
        "",
        f"from acme.{rng.choice(PACKAGES)} import {_ident(rng, VERBS, NOUNS)}",
        "",
        "log = logging.getLogger(__name__)",
    ]
    while len(lines) < target:
        lines += ["", ""]
        if rng.random() < 0.3:
            cls = rng.choice(NOUNS).title() + rng.choice(("Service", "Store", "Index", "Policy"))
            lines += [f"class {cls}:", f'    """The {cls} of the {rng.choice(PACKAGES)} app."""']
            for _ in range(rng.randint(2, 5)):
                lines.append("")
                lines += py_function(rng, "    ")
        else:
            lines += py_function(rng)
    return "\n".join(lines) + "\n"


def ts_function(rng: random.Random) -> list[str]:
    noun = rng.choice(NOUNS)
    name = _camel(f"{rng.choice(VERBS)}_{noun}")
    lines = [f"export function {name}({noun}: {noun.title()}, options?: Options): Result {{"]
    lines.append("  const out: Item[] = [];")
    for _ in range(rng.randint(3, 8)):
        pick = rng.random()
        var = rng.choice(NOUNS)
        attr = _camel(rng.choice(ATTRS))
        if pick < 0.3:
            lines += [f"  if (!{noun}.{attr}) {{", "    return { ok: false, out };", "  }"]
        elif pick < 0.6:
            lines += [
                f"  for (const {var} of {noun}.{rng.choice(NOUNS)}s ?? []) {{",
                f"    if ({var}.{attr} > {rng.randint(1, 500)}) out.push({var});",
                "  }",
            ]
        else:
            other = _camel(_ident(rng, VERBS, NOUNS))
            lines.append(f"  const {var}{attr.title()} = {other}({noun}.{attr}, options);")
    lines += ["  return { ok: true, out };", "}"]
    return lines


def ts_file(rng: random.Random, target: int) -> str:
    lines = [
        f"import {{ Item, Options, Result }} from '../{rng.choice(PACKAGES)}/types';",
        "",
        f"// {rng.choice(NOUNS).title()} helpers.",
    ]
    while len(lines) < target:
        lines.append("")
        lines += ts_function(rng)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SourceFile:
    rel: str
    text: str
    lines: int


def make_repo(rng: random.Random, n_files: int) -> list[SourceFile]:
    files, seen = [], set()
    while len(files) < n_files:
        package = rng.choice(PACKAGES)
        target = int(min(1200, max(40, rng.lognormvariate(math.log(220), 0.6))))
        if rng.random() < 0.7:
            rel, text = f"src/acme/{package}/{_ident(rng, NOUNS, NOUNS)}.py", py_file(rng, target)
        else:
            rel = f"web/src/{package}/{_camel(_ident(rng, NOUNS, NOUNS))}.ts"
            text = ts_file(rng, target)
        if rel not in seen:
            seen.add(rel)
            files.append(SourceFile(rel, text, text.count("\n")))
    return files


# -- the simulated month ---------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    seq: int
    dev: int
    ts: float
    klass: str
    kind: str = AUTOCOMPLETE
    """The escalation task (refactor, explain, tests, fix, ask), or "completion"."""
    files: tuple[int, ...] = ()
    """Indexes into the repository; the first holds the selection."""
    start_line: int = 0
    end_line: int = 0
    instruction: str = ""
    diagnostic: str = ""
    seed: int = 0


def working_days(start: dt.date, days: int) -> list[dt.date]:
    out, day = [], start
    while len(out) < days:
        if day.weekday() < 5:
            out.append(day)
        day += dt.timedelta(days=1)
    return out


def default_start(today: dt.date) -> dt.date:
    """The Monday five weeks before this week's: 21 working days end before today."""
    return today - dt.timedelta(days=today.weekday() + 35)


def _selection(rng: random.Random, lines: int, low: int, high: int) -> tuple[int, int]:
    size = min(rng.randint(low, high), lines)
    start = rng.randint(0, max(0, lines - size))
    return start, start + size - 1


def _ident_in(rng: random.Random, text: str) -> str:
    words = re.findall(r"\b[a-z]+_[a-z_]+\b", text)
    return rng.choice(words) if words else rng.choice(NOUNS)


NAMES_ASKS = (
    "Suggest clearer names for the variables in this code.",
    "Suggest a better name for `{ident}` and say why in one line.",
    "What would be a more descriptive name for `{ident}`?",
    "Rename suggestions for `{ident}` and the loop variables, please.",
)
BOILERPLATE_ASKS = (
    "Write a dataclass for the fields `{ident}` uses.",
    "Write a __repr__ and __eq__ for the class around `{ident}`.",
    "Write an argparse command line for calling `{ident}`.",
    "Write docstrings for `{ident}` and its helpers.",
    "Write a JSON serializer for what `{ident}` returns.",
    "Write a pytest fixture that builds the inputs of `{ident}`.",
)
COMPLEX_ASKS = (
    "How should `{ident}` handle concurrent updates across these modules? Propose a design.",
    "Design a caching layer for `{ident}` that stays correct when the data changes.",
    "What is the complexity of `{ident}` and how can the hot path be made linear?",
    "Walk me through how `{ident}` interacts with the other files and where it can fail.",
)
REFACTORS = (
    "Extract the validation in `{ident}` into its own function.",
    "Split `{ident}` into smaller functions with clear responsibilities.",
    "Replace the nested loops around `{ident}` with a single pass.",
    "Rename `{ident}` consistently and simplify the control flow.",
)
DIAGNOSTICS = (
    "TypeError: unsupported operand type(s) for +: 'NoneType' and 'int'",
    "AttributeError: 'NoneType' object has no attribute '{attr}'",
    "KeyError: '{attr}'",
    "AssertionError: expected {n} items, got {m}",
    "ValueError: too many {noun} entries: {m}",
)


class Month:
    """Who asks what, when, on which files."""

    def __init__(self, args: argparse.Namespace, repo: list[SourceFile]) -> None:
        self.args = args
        self.repo = repo
        self.by_package: dict[str, list[int]] = defaultdict(list)
        for i, f in enumerate(repo):
            self.by_package[f.rel.split("/")[-2]].append(i)
        self.big = [i for i, f in enumerate(repo) if f.lines >= 320]
        self.mix = args.mix
        # A few files everyone touches often, like in a real repository.
        weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(repo))]
        self.popularity = weights

    def requests(self) -> list[Request]:
        rng = random.Random(self.args.seed)
        days = working_days(self.args.start, self.args.days)
        classes, weights = zip(*self.mix.items(), strict=True)
        out: list[Request] = []
        for dev in range(self.args.devs):
            for day in days:
                focus = rng.choices(range(len(self.repo)), self.popularity, k=rng.randint(3, 7))
                base = dt.datetime.combine(day, dt.time(WORK_START_H)).timestamp()
                span = (WORK_END_H - WORK_START_H) * 3600
                times = sorted(base + rng.random() * span for _ in range(self.args.per_dev_day))
                for ts in times:
                    klass = rng.choices(classes, weights)[0]
                    out.append(self._request(rng, dev, ts, klass, focus))
        out.sort(key=lambda r: (r.ts, r.dev))
        return [dataclasses.replace(r, seq=i) for i, r in enumerate(out)]

    def _others(self, rng: random.Random, main: int, focus: list[int], k: int) -> tuple[int, ...]:
        pool = [i for i in {*focus, *self.by_package[self.repo[main].rel.split("/")[-2]]}]
        pool = [i for i in pool if i != main]
        rng.shuffle(pool)
        while len(pool) < k:
            pool.append(rng.randrange(len(self.repo)))
        return tuple(dict.fromkeys(pool[:k]))

    def _request(
        self, rng: random.Random, dev: int, ts: float, klass: str, focus: list[int]
    ) -> Request:
        seed = rng.getrandbits(32)
        if klass == "autocomplete":
            return Request(0, dev, ts, klass, seed=seed)
        main = rng.choice(focus)
        files: tuple[int, ...] = (main,)
        lines = self.repo[main].lines
        instruction = diagnostic = ""
        if klass == "names":
            kind = "ask"
            start, end = _selection(rng, lines, 5, 20)
            template = rng.choice(NAMES_ASKS)
        elif klass == "boilerplate":
            kind = "tests" if rng.random() < 0.55 else "ask"
            start, end = _selection(rng, lines, 8, 45)
            template = "" if kind == "tests" else rng.choice(BOILERPLATE_ASKS)
        else:
            if klass == "complex":
                kind = rng.choice(("ask", "refactor"))
                multi = rng.random() < 0.6
            else:
                kind = "fix" if rng.random() < 0.55 else "refactor"
                multi = rng.random() < 0.65
            if multi:
                files = (main, *self._others(rng, main, focus, rng.randint(1, 3)))
                start, end = _selection(rng, lines, 20, 150)
            else:
                main = rng.choice(self.big) if self.big else main
                files, lines = (main,), self.repo[main].lines
                start, end = _selection(rng, lines, 100, 300)
            template = rng.choice(COMPLEX_ASKS if kind == "ask" else REFACTORS)
            if kind == "fix":
                template = ""
                diagnostic = rng.choice(DIAGNOSTICS).format(
                    attr=rng.choice(ATTRS),
                    noun=rng.choice(NOUNS),
                    n=rng.randint(2, 9),
                    m=rng.randint(10, 99),
                )
        if template:
            selected = "\n".join(self.repo[main].text.split("\n")[start : end + 1])
            instruction = template.format(ident=_ident_in(rng, selected))
        return Request(0, dev, ts, klass, kind, files, start, end, instruction, diagnostic, seed)


def autocomplete_entry(req: Request, project: Project, path: str) -> Entry:
    """What the LSP server records for one autocomplete request on the embedded model."""
    rng = random.Random(req.seed)
    pick = rng.random()
    accepted: bool | None = None
    if pick < 0.10:  # typed through: the suggestion shown already continued
        outcome, tokens, latency = Outcome.TYPED_THROUGH, Tokens(), rng.uniform(0.2, 2)
    elif pick < 0.15:
        outcome, tokens, latency = Outcome.FROM_CACHE, Tokens(), rng.uniform(0.5, 4)
    else:
        prompt = rng.randint(300, 480)
        fresh = prompt if rng.random() < 0.08 else rng.randint(6, 90)  # a jump: no reuse
        tokens = Tokens(input=fresh, cache_read=prompt - fresh, output=rng.randint(6, 32))
        outcome, latency = Outcome.OK, rng.uniform(40, 260) + fresh * 7
        accepted = rng.random() < 0.3
    entry = completion_entry(
        outcome=outcome,
        model=LOCAL_MODEL,
        tokens=tokens,
        latency_ms=latency,
        project=project,
        language=language_of(path),
    )
    return dataclasses.replace(entry, accepted=accepted, ts=req.ts)
