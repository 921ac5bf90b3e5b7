"""The baselines the month is compared with, and what each lever saved.

From the most naive bill to the actual one, one lever at a time (each lever's saving is the
step it takes, so the savings add up to the whole; the order is part of the definition)::

    naive all-flagship      every request on the flagship, no provider caching (each prompt
                            without nearline's project map, at the full input price), a change
                            answered as the whole rewritten files; autocomplete too
      - diffs               changes answered as unified diffs: the ledger's output tokens
      - project map         the map nearline puts in each cloud prompt, at the full input
                            price (a cost: this lever's saving is negative)
      - provider caching    the same prompts billed with the cache reads and writes the
                            providers reported
    = same-prompt flagship  every request's ledger tokens at the flagship's prices
      - local model         autocomplete on the embedded model: free
      - routing             each escalation at its tier's model instead of the flagship
    = actual cost
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from nearline.accounting.prices import Price, Tokens, as_cloud_request

Rows = Sequence[tuple[Mapping[str, Any], float]]
TIERS = ("local", "value", "flagship")


def _cost(price: Price, items: Sequence[tuple[Tokens, float]]) -> float:
    return math.fsum(price.cost(t) * w for t, w in items)


def baselines(
    rows: Rows, naive: Mapping[str, tuple[int, int, int]], flag: Price
) -> dict[str, float]:
    """USD of each step from naive all-flagship to the actual cost."""
    completions = [(r, w) for r, w in rows if r["uid"] not in naive]
    escalations = [(r, w) for r, w in rows if r["uid"] in naive]
    local = _cost(flag, [(as_cloud_request(r), w) for r, w in completions])
    whole = [
        (Tokens(input=naive[r["uid"]][0], output=naive[r["uid"]][1]), w) for r, w in escalations
    ]
    diffs = [
        (Tokens(input=naive[r["uid"]][0], output=int(r["output_tokens"] or 0)), w)
        for r, w in escalations
    ]
    with_map = [
        (Tokens(input=naive[r["uid"]][0] + naive[r["uid"]][2], output=t.output), w)
        for (t, w), (r, _) in zip(diffs, escalations, strict=True)
    ]
    sent = _cost(flag, [(as_cloud_request(r), w) for r, w in escalations])
    return {
        "naive_all_flagship": local + _cost(flag, whole),
        "with_diffs": local + _cost(flag, diffs),
        "with_project_map": local + _cost(flag, with_map),
        "same_prompt_flagship": local + sent,
        "with_local_model": sent,
        "actual": math.fsum(float(r["cost_usd"] or 0) * w for r, w in rows),
    }


def levers(steps: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Each lever's saving in USD and as a share of the naive bill."""
    order = list(steps)
    names = ("diffs", "project_map", "provider_caching", "local_model", "routing")
    naive = steps["naive_all_flagship"]
    out = {}
    for name, before, after in zip(names, order[:-1], order[1:], strict=True):
        usd = steps[before] - steps[after]
        out[name] = {"usd": usd, "share_of_naive": usd / naive if naive else 0.0}
    return out


def cache_by_tier(rows: Rows) -> dict[str, dict[str, float]]:
    """Per tier: input tokens sent, of them read from and written to the provider cache, the
    hit share, and tokens per request."""
    out: dict[str, dict[str, float]] = {}
    for tier in TIERS:
        mine = [(r, w) for r, w in rows if r["tier"] == tier and r["cloud"]]
        n = math.fsum(w for _, w in mine)
        if not n:
            continue
        sums = {
            c: math.fsum(float(r[c] or 0) * w for r, w in mine)
            for c in ("input_tokens", "cache_read_tokens", "cache_write_tokens")
        }
        sent = sum(sums.values())
        out[tier] = {
            "requests": round(n),
            "input_tokens_sent": round(sent),
            "cache_read_tokens": round(sums["cache_read_tokens"]),
            "cache_write_tokens": round(sums["cache_write_tokens"]),
            "cache_hit_share": sums["cache_read_tokens"] / sent if sent else 0.0,
            "prompt_tokens_per_request": sent / n,
            "uncached_tokens_per_request": sums["input_tokens"] / n,
        }
    return out


def prefix_needed(uncached_per_request: float, target: float) -> float:
    """The cached prefix a request needs for ``target`` hit share, given what it sends
    uncached: read / (read + uncached) = target."""
    return uncached_per_request * target / (1 - target)


def print_levers(report: Mapping[str, Any], fmt_usd: Any) -> None:
    steps = report["baselines_usd"]
    labels = {
        "naive_all_flagship": "naive all-flagship",
        "with_diffs": "  + answers as diffs",
        "with_project_map": "  + the project map in each cloud prompt",
        "same_prompt_flagship": "  + provider caching (= same prompts on the flagship)",
        "with_local_model": "  + local model for autocomplete",
        "actual": "  + routing (= actual)",
    }
    naive = steps["naive_all_flagship"]
    print("from the naive bill to the actual one, lever by lever:")
    for key, label in labels.items():
        saved = 1 - steps[key] / naive if naive else 0.0
        print(f"  {label:<56}{fmt_usd(steps[key]):>12}  ({saved:.1%} below naive)")
    parts = ", ".join(
        f"{k.replace('_', ' ')} {v['share_of_naive']:.1%}" for k, v in report["levers"].items()
    )
    print(f"  saved by lever (shares of the naive bill, adding up): {parts}")
    both = report["levers"]["project_map"]["share_of_naive"]
    both += report["levers"]["provider_caching"]["share_of_naive"]
    print(f"  the project map and provider caching together: {both:.1%}")
    print("provider cache, per tier (share of input tokens read from the cache):")
    for tier, c in report["cache_by_tier"].items():
        print(
            f"  {tier:<9}{c['cache_hit_share']:>6.1%} of {c['input_tokens_sent']:,.0f} tokens; "
            f"per request {c['prompt_tokens_per_request']:,.0f} sent, "
            f"{c['uncached_tokens_per_request']:,.0f} uncached; "
            f"{c['cache_write_tokens']:,.0f} written"
        )
    print(f"  project map: {report['project_map_tokens']:,} tokens")
