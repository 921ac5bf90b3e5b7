"""Retries with backoff, a circuit breaker per provider, and the fallback chain.

How one escalation call fails over, from the inside out::

    engine.chat()            one provider; each failure becomes a ProviderError
     └── with_retries()      retryable failures (429, 5xx, cut or slow connections, one malformed
                             answer) are tried again after a backoff; the rest are raised at once
    ProviderChain.chat()     tries each engine in order, skipping those whose CircuitBreaker is
                             open; when all fail, one AllProvidersFailedError names every cause

Errors added here (all are ``nearline.errors.ProviderError``)::

    ProviderError
     ├── ProviderHTTPError           the provider answered with an error status; may carry a
     │                               Retry-After delay
     ├── MalformedResponseError      a 2xx answer that is empty or not the expected JSON
     └── AllProvidersFailedError     every provider of a ProviderChain failed or was skipped
          └── AllProvidersOfflineError   ... and every failure was a connection failure
                                         (also an OfflineError)
"""

from __future__ import annotations

import email.utils
import logging
import random as _random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from nearline.errors import OfflineError, ProviderError, ProviderKeyError
from nearline.providers.types import ChatEngine, ChatRequest, ChatResult

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[object]]
Clock = Callable[[], float]

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
"""429 rate limited, 5xx server trouble; 408 request timeout and Anthropic's 529 overloaded."""
REQUEST_FAULT_STATUSES = frozenset({400, 413, 422})
"""The request itself was refused; says nothing about the provider's health (breaker ignores)."""
DEFAULT_FAILURE_THRESHOLD = 3
DEFAULT_COOLDOWN_S = 60.0


class ProviderHTTPError(ProviderError):
    """The provider answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, status=status, retryable=retryable)
        self.retry_after_s = retry_after_s
        """The provider's own ``Retry-After``, in seconds, when it sent one."""


class MalformedResponseError(ProviderError):
    """A successful status with an empty body, invalid JSON or an unexpected shape.

    Retried once (a proxy hiccup), then reported."""


class AllProvidersFailedError(ProviderError):
    """Every provider of a chain failed or was skipped. ``failures`` maps name → reason."""

    def __init__(self, message: str, *, failures: dict[str, str], retryable: bool) -> None:
        super().__init__(message, retryable=retryable)
        self.failures = failures


class AllProvidersOfflineError(AllProvidersFailedError, OfflineError):
    """Every provider of a chain failed to connect."""


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    """Tries after the first one."""
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result means it said -0000
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(
    attempt: int,
    policy: RetryPolicy,
    *,
    retry_after_s: float | None = None,
    random: Callable[[], float] = _random.random,
) -> float:
    """Seconds to wait after failed try number ``attempt`` (1-based).

    The provider's ``Retry-After`` wins when given; otherwise "full jitter": a uniform draw
    between 0 and ``base * 2**(attempt - 1)``. Both are capped at ``backoff_max_s``.
    """
    if retry_after_s is not None:
        return min(retry_after_s, policy.backoff_max_s)
    ceiling = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (attempt - 1))
    return random() * ceiling


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Sleep,
    random: Callable[[], float] = _random.random,
    provider: str = "",
) -> tuple[T, int]:
    """Await ``attempt()`` until it succeeds; returns its result and how many tries it took.

    Only a ``ProviderError`` with ``retryable`` set is tried again, at most
    ``policy.max_retries`` times, and a ``MalformedResponseError`` only once. The last error is
    raised with the number of tries added to its message. Cancellation propagates at once.
    """
    tries = 0
    malformed = 0
    while True:
        tries += 1
        try:
            return await attempt(), tries
        except ProviderError as exc:
            if isinstance(exc, MalformedResponseError):
                malformed += 1
            give_up = not exc.retryable or tries > policy.max_retries or malformed > 1
            if give_up:
                if tries == 1:
                    raise
                raise _after_tries(exc, tries) from exc
            retry_after = exc.retry_after_s if isinstance(exc, ProviderHTTPError) else None
            delay = backoff_delay(tries, policy, retry_after_s=retry_after, random=random)
            log.debug("%s: try %d failed (%s); next in %.2fs", provider, tries, exc, delay)
            await sleep(delay)


def _after_tries(exc: ProviderError, tries: int) -> ProviderError:
    """The same kind of error, its message saying how many tries were made."""
    message = f"{exc} (gave up after {tries} tries)"
    try:
        return type(exc)(message, provider=exc.provider, status=exc.status, retryable=exc.retryable)
    except TypeError:  # a subclass with another constructor
        return ProviderError(message, provider=exc.provider, status=exc.status, retryable=False)


@dataclass
class _BreakerState:
    failures: int = 0
    opened_at: float | None = None
    last_error: ProviderError | None = None


class CircuitBreaker:
    """Per provider name: open after ``failure_threshold`` failures in a row, for ``cooldown_s``.

    Refused requests (400, 413, 422) and a missing key do not count. When the cooldown has
    passed, one caller is let through as a trial (and the cooldown starts again for the others):
    its success closes the breaker, its failure keeps it open. A trial that is cancelled simply
    lets the next cooldown bring another one.
    """

    def __init__(
        self,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        cooldown_s: float = DEFAULT_COOLDOWN_S,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._states: dict[str, _BreakerState] = {}

    def _state(self, name: str) -> _BreakerState:
        return self._states.setdefault(name, _BreakerState())

    def is_open(self, name: str) -> bool:
        return self._state(name).opened_at is not None

    def allow(self, name: str) -> bool:
        """May ``name`` be called now? Lets one trial through when the cooldown is over."""
        state = self._state(name)
        if state.opened_at is None:
            return True
        now = self._clock()
        if now - state.opened_at >= self.cooldown_s:
            state.opened_at = now
            return True
        return False

    def seconds_left(self, name: str) -> float:
        opened_at = self._state(name).opened_at
        if opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (self._clock() - opened_at))

    def record_success(self, name: str) -> None:
        self._states[name] = _BreakerState()

    def record_failure(self, name: str, error: ProviderError) -> None:
        state = self._state(name)
        state.last_error = error
        if error.status in REQUEST_FAULT_STATUSES or isinstance(error, ProviderKeyError):
            return  # the request's or the setup's fault: says nothing about the provider
        state.failures += 1
        if state.failures >= self.failure_threshold:
            if state.opened_at is None:
                log.info(
                    "%s: %d failures in a row; skipped for %gs",
                    name,
                    state.failures,
                    self.cooldown_s,
                )
            state.opened_at = self._clock()

    def last_error(self, name: str) -> ProviderError | None:
        return self._state(name).last_error


class ProviderChain:
    """Tries ``engines`` in order until one answers; see the module docstring."""

    def __init__(self, engines: Sequence[ChatEngine], breaker: CircuitBreaker) -> None:
        if not engines:
            raise ValueError("a ProviderChain needs at least one engine")
        names = [engine.name for engine in engines]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names must be unique, got {names}")
        self.engines = tuple(engines)
        self.breaker = breaker

    async def chat(
        self, request: ChatRequest, on_text: Callable[[str], None] | None = None
    ) -> ChatResult:
        """The first answer of an engine, in order. ``on_text`` sees each engine's text from the
        beginning again, so a caller shows the latest text rather than appending to it."""
        failures: dict[str, str] = {}
        offline: list[bool] = []
        retryable = False
        for engine in self.engines:
            name = engine.name
            if not self.breaker.allow(name):
                last = self.breaker.last_error(name)
                failures[name] = (
                    f"{name}: skipped for {self.breaker.seconds_left(name):.0f}s more after "
                    f"repeated failures (last: {last})"
                )
                offline.append(isinstance(last, OfflineError))
                retryable = True
                continue
            try:
                result = await engine.chat(request, on_text)
            except ProviderError as exc:
                self.breaker.record_failure(name, exc)
                failures[name] = str(exc) if str(exc).startswith(name) else f"{name}: {exc}"
                offline.append(isinstance(exc, OfflineError))
                retryable = retryable or exc.retryable
                log.debug("falling back from %s: %s", name, exc)
                continue
            self.breaker.record_success(name)
            return result
        message = "every provider failed: " + "; ".join(failures.values())
        if all(offline):
            raise AllProvidersOfflineError(message, failures=failures, retryable=True)
        raise AllProvidersFailedError(message, failures=failures, retryable=retryable)

    async def aclose(self) -> None:
        for engine in self.engines:
            await engine.aclose()
