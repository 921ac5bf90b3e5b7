"""The benchmark's report as text: the month, the policy, the table per class, the baselines
and levers, and the targets."""

from __future__ import annotations

from typing import Any

from costbench.levers import print_levers
from costbench.report import TARGET_FLAGSHIP_CACHE, TARGET_SAVINGS, share
from costbench.workload import LABELS


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
        f"naive all-flagship:      {fmt_usd(report['baselines_usd']['naive_all_flagship'])}  "
        f"(saved {report['saved_vs_naive_flagship']:.1%})"
    )
    print(
        f"same prompts, flagship:  {fmt_usd(t['all_flagship_usd'])}  "
        f"(saved {report['saved_vs_same_prompt_flagship']:.1%})"
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
    print()
    print_levers(report, fmt_usd)
    naive, cache = report["saved_vs_naive_flagship"], report["flagship_cache_hit_share"]
    ok_tiers = report["every_complex_and_refactor_on_flagship"]
    print()
    print(
        f"target: >= {TARGET_SAVINGS:.0%} cheaper than naive all-flagship: "
        f"{'yes' if naive >= TARGET_SAVINGS else 'no'} ({naive:.1%}); "
        f"every complex and refactor request on flagship: {'yes' if ok_tiers else 'no'}"
    )
    print(
        f"target: >= {TARGET_FLAGSHIP_CACHE:.0%} of flagship input tokens from the provider "
        f"cache: {'yes' if cache >= TARGET_FLAGSHIP_CACHE else 'no'} ({cache:.1%}); it needs "
        f"a cached prefix of {report['flagship_cached_prefix_needed_for_target']:,.0f} tokens "
        "per flagship request for what each sends uncached"
    )
    print(f"{'PASS' if report['pass'] else 'FAIL'}  ({report['runtime_s']:.0f} s)")
