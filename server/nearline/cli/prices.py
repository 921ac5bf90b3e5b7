"""``nearline prices``: the price table; ``prices import FILE`` reads LiteLLM's over it."""

from __future__ import annotations

import argparse
from pathlib import Path

from nearline.cli.common import settings_for
from nearline.errors import NearlineError


def run(args: argparse.Namespace) -> int:
    from nearline.accounting import prices

    if args.action == "import":
        if not args.file:
            raise NearlineError("usage: nearline prices import FILE")
        count = prices.import_litellm(Path(args.file))
        print(f"imported prices of {count} models into {prices.imported_path()}")
        return 0
    if args.file:
        raise NearlineError(f"nearline prices: unexpected {args.file!r} (did you mean import?)")
    table = prices.table_for(settings_for(args))
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
