"""The base of nearline's typed vocabularies: a string enum whose members are their values
(in f-strings, JSON, SQLite and comparisons with plain strings alike), on Python 3.10 too."""

from __future__ import annotations

import enum


class StrEnum(str, enum.Enum):
    """``enum.StrEnum`` (3.11+): ``str(member)`` and ``f"{member}"`` give the value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)
