"""What ``nearline eval`` keeps between runs, per repository, in the cache folder's ``eval/``:
each commit's cases (by commit id) and each candidate's results on a commit. Values are plain
JSON-able data. A commit's results are written in one SQLite transaction once all its cases
are done, so an interrupted run leaves whole commits or none; a store that cannot be opened
is made anew."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import Any

import diskcache

from nearline.evaluation.cases import (
    CASES_VERSION,
    CaseFile,
    CommitCases,
    CompletionCase,
    EscalationCase,
)

log = logging.getLogger(__name__)


class EvalStore:
    def __init__(self, folder: Path | None) -> None:
        """``folder`` None: kept in memory only (the disk cache is off)."""
        self._memory: dict[str, Any] = {}
        self._disk: diskcache.Cache | None = None
        if folder is not None:
            self._disk = self._open(folder)

    @staticmethod
    def _open(folder: Path) -> diskcache.Cache | None:
        for attempt in range(2):
            try:
                # Never evicted: a tier's results were paid for.
                return diskcache.Cache(str(folder), eviction_policy="none")
            except Exception as exc:  # a corrupt store: start again
                if attempt:
                    log.warning("cannot keep evaluation results in %s (%s)", folder, exc)
                    return None
                log.warning("the evaluation store in %s is unreadable (%s): made anew", folder, exc)
                shutil.rmtree(folder, ignore_errors=True)
        return None

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()

    def _get(self, key: str) -> Any:
        if key in self._memory:
            return self._memory[key]
        if self._disk is None:
            return None
        try:
            return self._disk.get(key)
        except Exception as exc:
            log.warning("cannot read %s from the evaluation store: %s", key, exc)
            return None

    def _set(self, key: str, value: Any) -> None:
        self._memory[key] = value
        if self._disk is not None:
            try:
                self._disk.set(key, value)
            except Exception as exc:
                log.warning("cannot keep %s in the evaluation store: %s", key, exc)

    # -- cases -------------------------------------------------------------------------------
    @staticmethod
    def _cases_key(sha: str, per_commit: int) -> str:
        return f"cases/{CASES_VERSION}/{per_commit}/{sha}"

    def cases(self, sha: str, per_commit: int) -> CommitCases | None:
        data = self._get(self._cases_key(sha, per_commit))
        try:
            return commit_cases_from(data) if data is not None else None
        except (KeyError, TypeError, ValueError):
            return None

    def put_cases(self, cases: CommitCases, per_commit: int) -> None:
        self._set(self._cases_key(cases.commit, per_commit), dataclasses.asdict(cases))

    # -- results -----------------------------------------------------------------------------
    def results(self, candidate: str, sha: str) -> list[dict[str, Any]] | None:
        data = self._get(f"results/{candidate}/{sha}")
        return data if isinstance(data, list) else None

    def put_results(self, candidate: str, sha: str, results: list[dict[str, Any]]) -> None:
        self._set(f"results/{candidate}/{sha}", results)


def commit_cases_from(data: dict[str, Any]) -> CommitCases:
    esc = data["escalation"]
    return CommitCases(
        commit=data["commit"],
        subject=data["subject"],
        completion=tuple(CompletionCase(**c) for c in data["completion"]),
        escalation=None
        if esc is None
        else EscalationCase(**{**esc, "files": tuple(CaseFile(**f) for f in esc["files"])}),
    )
