"""An organisation's usage export from its provider's admin API, for the spend no local log
sees: Anthropic's ``/v1/organizations/usage_report/messages`` and OpenAI's
``/v1/organization/usage/completions`` (a page ``{"data": [buckets]}``, a list of pages, or
one page a line). Each bucket's results are summed per model: one record per bucket and model,
its time the bucket's start (``Usage.until`` its end), priced from the price table (these
exports carry no cost). Group the export by model (``group_by[]=model``), or the model is
unknown and unpriced. Read whole each time the file changes.

Anthropic: ``uncached_input_tokens`` excludes the cache's, ``cache_creation`` holds the 5-minute
and 1-hour writes. OpenAI: ``input_tokens`` includes the cached ones (and, where given, the
cache writes)."""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nearline.accounting.imports.records import (
    FileRead,
    Usage,
    number,
    report_objects,
    text,
    timestamp,
)

ANTHROPIC = "anthropic-usage"
OPENAI = "openai-usage"

WHOLE_MAX = 64 << 20
"""A bigger export is read one page a line (JSONL), never whole."""
Counts = tuple[int, int, int, int, int]
"""(uncached input, cache read, cache write, output, the part of the writes kept an hour)."""


@dataclass(frozen=True)
class Shape:
    """What one provider's export looks like: its buckets' start and end keys, the fields a
    result of its holds (one at least), and how its counts read."""

    start: str
    end: str
    fields: tuple[str, ...]
    counts: Callable[[dict[str, Any]], Counts]


def anthropic_counts(result: dict[str, Any]) -> Counts:
    writes = result.get("cache_creation")
    hour = number(writes.get("ephemeral_1h_input_tokens")) if isinstance(writes, dict) else 0
    written = (
        number(writes.get("ephemeral_5m_input_tokens")) + hour
        if isinstance(writes, dict)
        else number(result.get("cache_creation_input_tokens"))
    )
    return (
        number(result.get("uncached_input_tokens")),
        number(result.get("cache_read_input_tokens")),
        written,
        number(result.get("output_tokens")),
        hour,
    )


def openai_counts(result: dict[str, Any]) -> Counts:
    cached = number(result.get("input_cached_tokens"))
    written = number(result.get("input_cache_write_tokens"))
    uncached = max(number(result.get("input_tokens")) - cached - written, 0)
    return uncached, cached, written, number(result.get("output_tokens")), 0


ANTHROPIC_SHAPE = Shape(
    "starting_at",
    "ending_at",
    ("uncached_input_tokens", "cache_read_input_tokens", "cache_creation"),
    anthropic_counts,
)
OPENAI_SHAPE = Shape(
    "start_time", "end_time", ("input_tokens", "input_cached_tokens"), openai_counts
)
LATEST = 4_102_444_800
"""2100-01-01 in Unix seconds: a bigger number is no bucket's time (milliseconds, say)."""


def when(value: Any) -> float | None:
    """A bucket's time: Unix seconds (OpenAI) or RFC 3339 (Anthropic); None when it is not a
    time between 1970 and 2100."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        found: float | None = float(value)
    else:
        found = timestamp(value)
    return found if found is not None and 0 <= found < LATEST else None


def reader(source: str, shape: Shape) -> Any:
    def read(
        path: Path, start: int = 0, *, hold_last: bool = False
    ) -> tuple[Iterator[Usage], FileRead]:
        """The export's records, whole (``start`` and ``hold_last`` do not apply)."""
        found = FileRead(path, 0)

        def records() -> Iterator[Usage]:
            sums: dict[tuple[float, float, str], list[int]] = collections.defaultdict(
                lambda: [0, 0, 0, 0, 0]
            )
            too_big = "JSON arrays too big to read whole (export one page a line)"
            for page in report_objects(path, found, WHOLE_MAX, too_big):
                buckets = page.get("data")
                for bucket in buckets if isinstance(buckets, list) else []:
                    if not isinstance(bucket, dict):
                        continue
                    start, end = when(bucket.get(shape.start)), when(bucket.get(shape.end))
                    results = bucket.get("results", bucket.get("result"))
                    if (
                        start is None
                        or end is None
                        or end <= start
                        or not isinstance(results, list)
                    ):
                        found.skipped["buckets without a start, an end or results"] += 1
                        continue
                    for result in results:
                        if not isinstance(result, dict) or not any(
                            f in result for f in shape.fields
                        ):
                            found.skipped["results of another shape (another provider's?)"] += 1
                            continue
                        total = sums[(start, end, text(result.get("model")))]
                        for i, n in enumerate(shape.counts(result)):
                            total[i] += n
            for (start, end, model), (i, cr, cw, o, hour) in sorted(sums.items()):
                day = dt.datetime.fromtimestamp(start, dt.timezone.utc).isoformat()
                yield Usage(
                    source=source,
                    key=f"{day}:{end - start:.0f}:{model}",
                    ts=start,
                    model=model,
                    input_tokens=i,
                    cache_read_tokens=cr,
                    cache_write_tokens=cw,
                    output_tokens=o,
                    project="",
                    until=end,
                    cache_write_1h_tokens=hour,
                )

        return records(), found

    return read


read_anthropic = reader(ANTHROPIC, ANTHROPIC_SHAPE)
read_openai = reader(OPENAI, OPENAI_SHAPE)
