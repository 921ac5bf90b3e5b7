"""The benchmark's report, read back from the ledger: cost per class against all-flagship and
all-value, the router's decisions, the bounds, and the target."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from costbench.drive import Run
from costbench.workload import CLASSES, LABELS, MUST_BE_FLAGSHIP, Request, working_days
from nearline.accounting.prices import (
    PRICE_FIELDS,
    Price,
    Tokens,
    as_cloud_request,
    flagship,
    provider_cost,
    provider_price,
)
from nearline.config import Settings

TARGET_SAVINGS = 0.80
TIERS = ("local", "value", "flagship")


TOKEN_COLUMNS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")


def tokens_of(rows: Sequence[tuple[dict[str, Any], float]]) -> Tokens:
    sums = [math.fsum(float(r[c] or 0) * w for r, w in rows) for c in TOKEN_COLUMNS]
    return Tokens(*(round(s) for s in sums))


def cloud_tokens_of(rows: Sequence[tuple[dict[str, Any], float]]) -> Tokens:
    """The rows' tokens as a cloud model would bill the same requests."""
    billed = [(as_cloud_request(r), w) for r, w in rows]
    sums = [
        math.fsum(getattr(t, f) * w for t, w in billed)
        for f in ("input", "cache_read", "cache_write", "output")
    ]
    return Tokens(*(round(x) for x in sums))


def usd_of(rows: Sequence[tuple[dict[str, Any], float]]) -> float:
    return math.fsum(float(r["cost_usd"] or 0) * w for r, w in rows)


def share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def tier_price(settings: Settings, table: Any, tier: str) -> tuple[str, Price]:
    for name in settings.routing.tiers.get(tier, ()):
        p = settings.providers.get(name)
        if p is not None and p.model:
            return p.model, provider_price(p, table)
    return "", Price()


def build_report(
    run: Run,
    args: argparse.Namespace,
    requests: list[Request],
    elapsed_s: float,
    sent: int,
    billed: dict[str, dict[str, int]],
) -> dict[str, Any]:
    run.ledger.flush(120)
    all_rows = run.ledger.rows()
    rows = [(r, run.weight[r["uid"]]) for r in all_rows if r["uid"] in run.klass]
    table = run.price_table
    flag_model, flag_price = flagship(run.settings, table)
    value_model, value_price = tier_price(run.settings, table, "value")
    by_class: dict[str, list[tuple[dict[str, Any], float]]] = defaultdict(list)
    for r, w in rows:
        by_class[run.klass[r["uid"]]].append((r, w))
    counts = Counter(r.klass for r in requests)
    total_requests = sum(w for _, w in rows)

    def group(items: Sequence[tuple[dict[str, Any], float]]) -> dict[str, Any]:
        tokens = tokens_of(items)
        n = sum(w for _, w in items)
        tiers = Counter()
        for r, w in items:
            tiers[r["tier"] or "(failed)"] += w
        cost = usd_of(items)
        billed = cloud_tokens_of(items)  # local KV-cache reads are uncached input to a cloud
        flag = flag_price.cost(billed)
        value = value_price.cost(billed)
        sent_in = tokens.input + tokens.cache_read + tokens.cache_write
        return {
            "requests": round(n),
            "rows": len(items),
            "tiers": {t: round(c) for t, c in sorted(tiers.items())},
            "tier_share": {t: share(c, n) for t, c in sorted(tiers.items())},
            "tokens": dataclasses.asdict(tokens) | {"total": tokens.total},
            "cache_read_share": share(tokens.cache_read, sent_in),
            "cost_usd": cost,
            "all_flagship_usd": flag,
            "all_value_usd": value,
            "saved_vs_flagship": share(flag - cost, flag),
            "saved_vs_value": share(value - cost, value),
            "outcomes": dict(Counter(r["outcome"] for r, _ in items)),
        }

    classes = {k: group(by_class[k]) for k in CLASSES if k in by_class}
    total = group(rows)
    for k in classes:
        classes[k]["share_of_requests"] = share(classes[k]["requests"], total_requests)
        classes[k]["share_of_all_flagship_usd"] = share(
            classes[k]["all_flagship_usd"], total["all_flagship_usd"]
        )
        if k in run.estimates and classes[k]["rows"]:
            est_tokens, est_usd = run.estimates[k]
            sent_rows = [r for r, _ in by_class[k] if r["outcome"] != "error" or r["tier"]]
            actual = sum(
                r["input_tokens"] + r["cache_read_tokens"] + r["cache_write_tokens"]
                for r in sent_rows
            )
            classes[k]["router_estimate"] = {
                "prompt_tokens": int(est_tokens),
                "actual_prompt_tokens": actual,
                "usd": est_usd,
                "actual_usd": math.fsum(float(r["cost_usd"]) for r in sent_rows),
            }
    on_flagship = {
        k: {
            "requests": classes[k]["requests"] if k in classes else 0,
            "flagship": classes[k]["tiers"].get("flagship", 0) if k in classes else 0,
            "routed_flagship": run.decisions[k].get("flagship", 0),
            "routed": sum(run.decisions[k].values()),
        }
        for k in MUST_BE_FLAGSHIP
    }
    all_on_flagship = all(v["flagship"] == v["requests"] for v in on_flagship.values())
    if args.llama_server:  # the sample says nothing about the others' tiers: the router does
        all_on_flagship = all(v["routed_flagship"] == v["routed"] for v in on_flagship.values())
    savings = total["saved_vs_flagship"]
    flagship_bound = math.fsum(
        classes[k]["all_flagship_usd"] for k in MUST_BE_FLAGSHIP if k in classes
    )
    ceiling = share(total["all_flagship_usd"] - flagship_bound, total["all_flagship_usd"])
    # The same, had those requests' input cost nothing, on both sides: their answers alone.
    pinned_output = math.fsum(
        flag_price.cost(Tokens(output=classes[k]["tokens"]["output"]))
        for k in MUST_BE_FLAGSHIP
        if k in classes
    )
    free_input_ceiling = share(
        total["all_flagship_usd"] - flagship_bound,
        total["all_flagship_usd"] - flagship_bound + pinned_output,
    )
    accounting = [
        (r, w)
        for r, w in rows
        if r["provider"]
        and abs(provider_cost(run.settings, r["provider"], row_tokens(r)) - r["cost_usd"]) > 1e-12
    ]
    answered = [r for r, _ in rows if r["cloud"] and r["provider"]]
    no_usage = [r for r in answered if not row_tokens(r).total]
    unmeasured = [
        k
        for k in CLASSES
        if k != "autocomplete" and counts.get(k) and not any(r["provider"] for r, _ in by_class[k])
    ]
    server_usd = math.fsum(
        (table.get(model) or Price()).cost(
            Tokens(
                input=b.get("prompt_tokens", 0) - b.get("cached_tokens", 0),
                cache_read=b.get("cached_tokens", 0),
                output=b.get("completion_tokens", 0),
            )
        )
        for model, b in billed.items()
    )
    report = {
        "mode": "llama_cpp.server sample" if args.llama_server else "local benchmark server",
        "team": {
            "developers": args.devs,
            "working_days": args.days,
            "requests_per_developer_day": args.per_dev_day,
            "first_day": working_days(args.start, args.days)[0].isoformat(),
            "last_day": working_days(args.start, args.days)[-1].isoformat(),
            "seed": args.seed,
            "mix_percent": args.mix,
        },
        "requests": len(requests),
        "requests_by_class": {k: counts.get(k, 0) for k in CLASSES},
        "escalations_sent_over_http": sent,
        "ledger": {
            "path": str(run.ledger.path),
            "rows": len(rows),
            "days": len({r["day"] for r, _ in rows}),
            "answered_escalations": len(answered),
            "answered_usd": math.fsum(float(r["cost_usd"]) for r in answered),
            "dropped": run.ledger.dropped,
            "rows_whose_cost_differs_from_the_price_table": len(accounting),
        },
        "prices_usd_per_million_tokens": {
            "flagship": {"model": flag_model} | per_million(flag_price),
            "value": {"model": value_model} | per_million(value_price),
        },
        "routed": {
            k: {t: run.decisions[k].get(t, 0) for t in TIERS if run.decisions[k].get(t)}
            for k in CLASSES
        },
        "classes": classes,
        "total": total,
        "complex_and_refactor_on_flagship": on_flagship,
        "every_complex_and_refactor_on_flagship": all_on_flagship,
        "savings_vs_all_flagship": savings,
        "savings_vs_all_value": total["saved_vs_value"],
        "best_possible_savings_with_complex_and_refactor_on_flagship": ceiling,
        "best_possible_savings_were_their_input_free": free_input_ceiling,
        "target": {"min_savings_vs_all_flagship": TARGET_SAVINGS, "all_complex_on_flagship": True},
        "answered_without_usage": len(no_usage),
        "classes_without_an_answer": unmeasured,
        "pass": savings >= TARGET_SAVINGS and all_on_flagship and not no_usage and not unmeasured,
        "failures": dict(run.failures.most_common(20)),
        "server": {
            "billed_requests": sum(b.get("requests", 0) for b in billed.values()),
            "billed_usd": server_usd,
            "by_model": billed,
        }
        if billed
        else None,
        "runtime_s": round(elapsed_s, 1),
    }
    return report


def row_tokens(r: dict[str, Any]) -> Tokens:
    return Tokens(
        r["input_tokens"], r["cache_read_tokens"], r["cache_write_tokens"], r["output_tokens"]
    )


def per_million(price: Price) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for f in PRICE_FIELDS:
        value = getattr(price, f)
        out[f] = None if value is None else round(value * 1e6, 6)
    return out


def fmt_usd(value: float) -> str:
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"


def fmt_tokens(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def print_report(report: dict[str, Any], settings_toml: list[str], server: str) -> None:
    team = report["team"]
    print("nearline cost benchmark: a simulated month")
    print(
        f"  {team['developers']} developers x {team['working_days']} working days "
        f"({team['first_day']} .. {team['last_day']}) x {team['requests_per_developer_day']} "
        f"requests a day = {report['requests']:,} requests (seed {team['seed']})"
    )
    mix = ", ".join(f"{LABELS[k]} {v:g}%" for k, v in team["mix_percent"].items())
    print(f"  mix: {mix}")
    print(f"  answers: {server}")
    print(f"  escalations sent over HTTP: {report['escalations_sent_over_http']:,}")
    led = report["ledger"]
    print(f"  ledger: {led['rows']:,} rows over {led['days']} days read back from {led['path']}")
    print(
        f"  ledger: {led['answered_escalations']:,} answered escalations, "
        f"{fmt_usd(led['answered_usd'])}; dropped rows: {led['dropped']}; rows whose cost is "
        f"not the price table's: {led['rows_whose_cost_differs_from_the_price_table']}"
    )
    billed = report.get("server")
    if billed:
        print(
            f"  server: billed {billed['billed_requests']:,} requests, "
            f"{fmt_usd(billed['billed_usd'])} at the same prices"
        )
    print()
    print("policy (.nearline.toml):")
    while settings_toml and not settings_toml[0]:
        settings_toml = settings_toml[1:]
    for line in settings_toml:
        print(f"  {line}" if line else "")
    print()
    prices = report["prices_usd_per_million_tokens"]
    for tier in ("flagship", "value"):
        p = prices[tier]
        cached = p["cache_read_input_token_cost"]
        print(
            f"price, {tier}: {p['model']}: ${p['input_cost_per_token']:g} in, "
            f"${p['output_cost_per_token']:g} out, "
            f"${cached if cached is not None else p['input_cost_per_token']:g} cached "
            "per million tokens"
        )
    print()
    head = (
        f"{'class':<20}{'requests':>9}{'local':>8}{'value':>8}{'flagship':>9}"
        f"{'tokens':>9}{'cached':>8}{'cost':>11}{'all-flagship':>14}{'all-value':>11}{'saved':>7}"
    )
    print(head)
    print("-" * len(head))
    rows = [(LABELS[k], g) for k, g in report["classes"].items()]
    rows.append(("total", report["total"]))
    for label, g in rows:
        ts = g["tier_share"]
        line = (
            f"{label:<20}{g['requests']:>9,}"
            + "".join(f"{ts.get(t, 0):>8.1%}" for t in ("local", "value"))
            + f"{ts.get('flagship', 0):>9.1%}"
            f"{fmt_tokens(g['tokens']['total']):>9}{g['cache_read_share']:>8.0%}"
            f"{fmt_usd(g['cost_usd']):>11}{fmt_usd(g['all_flagship_usd']):>14}"
            f"{fmt_usd(g['all_value_usd']):>11}{g['saved_vs_flagship']:>7.0%}"
        )
        if label == "total":
            print("-" * len(head))
        print(line)
    print()
    t = report["total"]
    tok = t["tokens"]
    print(
        f"tokens: {fmt_tokens(tok['input'])} uncached input, {fmt_tokens(tok['cache_read'])} "
        f"cache reads, {fmt_tokens(tok['cache_write'])} cache writes, "
        f"{fmt_tokens(tok['output'])} output"
    )
    print(
        "share of the all-flagship cost: "
        + ", ".join(
            f"{LABELS[k]} {g['share_of_all_flagship_usd']:.0%}"
            for k, g in report["classes"].items()
        )
    )
    est = [
        (LABELS[k], g["router_estimate"])
        for k, g in report["classes"].items()
        if "router_estimate" in g
    ]
    if est:
        print(
            "router estimate / actual prompt tokens: "
            + ", ".join(
                f"{label} {share(e['prompt_tokens'], e['actual_prompt_tokens']):.2f}"
                for label, e in est
            )
        )
    failures = report["failures"]
    if failures:
        print("not answered or not applied:")
        for why, n in failures.items():
            print(f"  {n:>6}  {why}")
    print()
    print(f"actual cost:             {fmt_usd(t['cost_usd'])}")
    print(
        f"all-flagship cost:       {fmt_usd(t['all_flagship_usd'])}  "
        f"(saved {report['savings_vs_all_flagship']:.1%})"
    )
    print(
        f"all-value cost:          {fmt_usd(t['all_value_usd'])}  "
        f"(saved {report['savings_vs_all_value']:.1%})"
    )
    per_dev = t["cost_usd"] / max(1, report["team"]["developers"])
    print(f"per developer:           {fmt_usd(per_dev)} a month")
    best = report["best_possible_savings_with_complex_and_refactor_on_flagship"]
    print(
        "best possible with every complex and debugging/refactor request on the flagship "
        f"(everything else free): {best:.1%}; were their input tokens free too: "
        f"{report['best_possible_savings_were_their_input_free']:.1%}"
    )
    for k, v in report["complex_and_refactor_on_flagship"].items():
        print(
            f"{LABELS[k]} on the flagship tier: {v['flagship']:,} of {v['requests']:,} in the "
            f"ledger; routed {v['routed_flagship']:,} of {v['routed']:,}"
        )
    if report["answered_without_usage"]:
        print(
            f"WARNING: {report['answered_without_usage']} answers came without token usage "
            "(recorded as 0 tokens, $0): the costs are too low"
        )
    if report["classes_without_an_answer"]:
        names = ", ".join(LABELS[k] for k in report["classes_without_an_answer"])
        print(f"WARNING: no answered request measures {names}: their cost counts as 0")
    ok_savings = report["savings_vs_all_flagship"] >= TARGET_SAVINGS
    ok_tiers = report["every_complex_and_refactor_on_flagship"]
    print()
    print(
        f"target: >= {TARGET_SAVINGS:.0%} cheaper than all-flagship: "
        f"{'yes' if ok_savings else 'no'} ({report['savings_vs_all_flagship']:.1%}); "
        f"every complex and refactor request on flagship: {'yes' if ok_tiers else 'no'}"
    )
    print(f"{'PASS' if report['pass'] else 'FAIL'}  ({report['runtime_s']:.0f} s)")
