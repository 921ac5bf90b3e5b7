"""``privacy.providers``: the data policy a project requires of the providers its requests go
to, and the retention values both sides write (``escalation.policy`` compares them)."""

from __future__ import annotations

from dataclasses import dataclass

from nearline.config.checks import check

RETENTION_FACTS = "zero | days:N (N >= 0) | unknown"
"""What ``providers.NAME.retention`` allows: how long the provider keeps what it is sent."""
RETENTION_LIMITS = "any | zero | days:N (N >= 0, at most N days)"
"""What ``privacy.providers.retention`` allows."""


def retention_days(retention: str) -> int | None:
    """The days a retention value says: "zero" 0, "days:N" N; None for anything else."""
    if retention == "zero":
        return 0
    head, _, days = retention.partition(":")
    if head == "days" and days.isascii() and days.isdigit():
        return int(days)
    return None


@dataclass(frozen=True)
class ProviderPolicy:
    """What a provider must be known to do with the code it is sent. A fact a provider does
    not state never meets a requirement; the embedded model always does."""

    retention: str = "any"
    """"zero": keeps nothing; "days:N": at most N days; "any": no requirement."""
    trains_on_data: bool | None = None
    """False: the provider must be known not to train on what it is sent; unset: no
    requirement."""
    region: tuple[str, ...] = ()
    """The regions where the provider may process the code (e.g. ["eu"]); empty: any."""

    def __post_init__(self) -> None:
        check(
            self.retention == "any" or retention_days(self.retention) is not None,
            "privacy.providers.retention",
            self.retention,
            RETENTION_LIMITS,
        )
        check(
            self.trains_on_data is not True,
            "privacy.providers.trains_on_data",
            self.trains_on_data,
            "false (the provider must be known not to train on the data), or no key",
        )
        for region in self.region:
            check(
                bool(region.strip()),
                "privacy.providers.region",
                region,
                'region names, e.g. ["eu"]',
            )

    @property
    def max_days(self) -> int | None:
        """The longest retention allowed; None: any."""
        return retention_days(self.retention)

    @property
    def requires_anything(self) -> bool:
        return self.max_days is not None or self.trains_on_data is False or bool(self.region)
