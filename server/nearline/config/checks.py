"""Range checks shared by the settings' dataclasses, and spending caps."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


class RangeError(ValueError):
    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(f"{key} = {value!r} is not allowed; expected {allowed}")


def check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise RangeError(key, value, allowed)


@dataclass(frozen=True)
class Caps:
    """Spending caps; None means no cap. Tokens count requests sent off this machine."""

    daily_usd: float | None = None
    monthly_usd: float | None = None
    daily_tokens: int | None = None
    monthly_tokens: int | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            check(value is None or value >= 0, f"budget.*.{f.name}", value, "a number >= 0")
