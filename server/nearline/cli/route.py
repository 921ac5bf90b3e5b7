"""``nearline route``: which tier and model would serve a request, why, what it would cost,
where its request (and key) would go, and which providers the data policy skips."""

from __future__ import annotations

import argparse
from pathlib import Path

from nearline.cli.common import overrides
from nearline.config import ConfigStack
from nearline.errors import NearlineError


def run(args: argparse.Namespace) -> int:
    from nearline.escalation.escalator import Document, Escalator, Task
    from nearline.escalation.policy import describe
    from nearline.escalation.router import describe_endpoint, model_of
    from nearline.tasks import TASK_NAMES, TaskKind

    files = [Path(f).resolve() for f in args.files]
    docs = []
    for path in files:
        try:
            docs.append(Document(path.as_uri(), str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise NearlineError(f"cannot read {path}: {exc}") from None
    stack = ConfigStack(root=files[0].parent, flags=overrides(args))
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
    if settings.privacy.providers.requires_anything:
        print(f"policy:    privacy.providers: {describe(settings.privacy.providers)}")
    for name, why in decision.skipped:
        print(f"skipped:   {name} (privacy.providers: {why})")
    for name in decision.providers:
        if name in settings.providers:
            print(f"sent to:   {describe_endpoint(settings.providers[name])}")
    cost = f"~${decision.est_cost_usd:.4f}" if decision.cloud else "free (this machine)"
    print(f"estimate:  {cost} for ~{decision.est_output_tokens} output tokens")
    print(f"verdict:   {'REFUSED: ' + decision.refused if decision.refused else 'ok'}")
    print(f"config:    {config}")
    return 2 if decision.refused else 0
