"""Per-queue throttling: App Engine's token bucket and the max_concurrent_requests gate (SPEC 5.3).

A queue's bucket holds up to ``bucket_size`` tokens, starts full, and refills continuously at
``rate`` tokens per second. Every dispatch, first attempt or retry, takes one token. ``rate 0``
pauses the queue: no refill, and no dispatch even with tokens left.

The arithmetic is exact. A rate is a :class:`~fractions.Fraction` ``p/q`` tokens per second; the
bucket counts in units of ``1 / (q * 1_000_000)`` of a token, so one microsecond of refill adds
exactly ``p`` units and every deadline is an integer microsecond. With rate 5/s and bucket 10,
ten tokens are there at t=0 and the next one is due at exactly t=200000 µs.

Nothing here reads a clock or sleeps: every call takes ``now_us``, and :meth:`TokenBucket.next_token_us`
tells the scheduler how long it may sleep. The scheduler passes its monotonic clock: a bucket
measures durations, and a step of the wall clock must neither stall nor fill it.

Time is whole microseconds but a token may be earned between two of them (rate 3/s: every
333333⅓ µs). A full bucket keeps the refill of the microsecond it filled in, less than one
microsecond's worth (the *carry*), instead of dropping it at the cap: otherwise a bucket of size
1 would lose a fraction of a microsecond on every token and run below its rate (3/s would give
tokens at 0, 333334, 666668, 1000002 µs: 3 in the first second, not 4). The carry is kept only
while the bucket stays full for less than a microsecond; tokens are never counted above
``bucket_size``.
"""

from __future__ import annotations

from fractions import Fraction

from pushd import clock

US = clock.US_PER_SECOND


class TokenBucket:
    """A token bucket with exact integer arithmetic (see the module docstring)."""

    __slots__ = ("_bucket_size", "_capacity", "_carry", "_level", "_p", "_q", "_stamp_us", "_unit")

    def __init__(self, rate: Fraction | int, bucket_size: int, now_us: int) -> None:
        self._stamp_us = now_us
        self._set(Fraction(rate), bucket_size)
        self._level = self._capacity  # starts full (SPEC 5.3)

    def _set(self, rate: Fraction, bucket_size: int) -> None:
        if rate < 0:
            raise ValueError(f"rate must be >= 0, got {rate}")
        if bucket_size < 0:
            raise ValueError(f"bucket_size must be >= 0, got {bucket_size}")
        self._p, self._q = rate.numerator, rate.denominator
        self._unit = self._q * US  # units per token
        self._bucket_size = bucket_size
        self._capacity = bucket_size * self._unit
        # Most a full bucket carries past its capacity: under one µs of refill, under a token.
        self._carry = min(self._p, self._unit) - 1

    @property
    def rate(self) -> Fraction:
        return Fraction(self._p, self._q)

    @property
    def bucket_size(self) -> int:
        return self._bucket_size

    @property
    def paused(self) -> bool:
        return self._p == 0

    def _refill(self, now_us: int) -> int:
        """Add what was earned since the last call; return the effective now (never backwards)."""
        elapsed = now_us - self._stamp_us
        if elapsed > 0:
            level = self._level + elapsed * self._p
            if level > self._capacity + self._carry or self._level > self._capacity:
                # Full for a whole microsecond or more (or full already): the cap applies.
                level = min(level, self._capacity)
            self._level = level
            self._stamp_us = now_us
        return self._stamp_us

    def reconfigure(self, rate: Fraction | int, bucket_size: int, now_us: int) -> None:
        """Change rate and size in place, keeping the tokens already earned (capped at the new size)."""
        self._refill(now_us)
        tokens = Fraction(min(self._level, self._capacity), self._unit)
        self._set(Fraction(rate), bucket_size)
        self._level = min(self._capacity, int(tokens * self._unit))

    def tokens(self, now_us: int) -> Fraction:
        """Tokens available at ``now_us``, fractional part included (the carry left out)."""
        self._refill(now_us)
        return Fraction(min(self._level, self._capacity), self._unit)

    def available(self, now_us: int) -> int:
        """Whole tokens that could be taken at ``now_us`` (0 when paused)."""
        if self.paused:
            return 0
        self._refill(now_us)
        return self._level // self._unit

    def try_take(self, now_us: int, n: int = 1) -> bool:
        """Take ``n`` tokens if they are there; a paused bucket never gives any."""
        if self.paused:
            return False
        self._refill(now_us)
        cost = n * self._unit
        if self._level < cost:
            return False
        self._level -= cost
        return True

    def take_up_to(self, now_us: int, n: int) -> int:
        """Take as many of ``n`` tokens as are there (what ``n`` calls of :meth:`try_take`
        would take, in one refill); how many were taken."""
        if self.paused or n <= 0:
            return 0
        self._refill(now_us)
        taken = min(n, max(0, self._level // self._unit))
        self._level -= taken * self._unit
        return taken

    def reserve(self, now_us: int) -> int:
        """Take one token now, into debt if need be; return when it is covered (``now_us`` if
        it was there). Reservations are served in order, one token apart: a pacer. A paused
        bucket reserves nothing and answers ``now_us``."""
        if self.paused:
            return now_us
        now_us = self._refill(now_us)
        self._level -= self._unit
        if self._level >= 0:
            return now_us
        debt = -self._level
        return now_us + -(-debt // self._p)  # when the debt is paid (ceiling): never early

    def refund(self, now_us: int, n: int = 1) -> None:
        """Give back the tokens of ``n`` reservations that will not be used (or be made again)."""
        self._refill(now_us)
        self._level = min(self._capacity, self._level + n * self._unit)

    def next_token_us(self, now_us: int) -> int | None:
        """When a token can next be taken: ``now_us`` if one is there, None if never (paused)."""
        if self.paused or self._capacity < self._unit:
            return None
        now_us = self._refill(now_us)
        missing = self._unit - self._level
        if missing <= 0:
            return now_us
        return now_us + -(-missing // self._p)  # ceiling division: never early


class ConcurrencyGate:
    """Counts requests in flight against ``max_concurrent_requests`` (None: no per-queue cap)."""

    __slots__ = ("in_flight", "limit")

    def __init__(self, limit: int | None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"max_concurrent_requests must be >= 1, got {limit}")
        self.limit = limit
        self.in_flight = 0

    @property
    def free(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.in_flight)

    def can_start(self) -> bool:
        return self.limit is None or self.in_flight < self.limit

    def start(self) -> None:
        if not self.can_start():
            raise RuntimeError("ConcurrencyGate.start() past its limit")
        self.in_flight += 1

    def finish(self) -> None:
        if self.in_flight <= 0:
            raise RuntimeError("ConcurrencyGate.finish() without a matching start()")
        self.in_flight -= 1


class QueueThrottle:
    """Everything that decides whether one queue may dispatch: bucket, gate, pause.

    The bucket is applied twice. At claim time it decides how many tasks the scheduler takes
    from the store (:meth:`try_take`); at send time a second bucket of the same rate and size
    paces the requests themselves (:meth:`send_at`), so the receiver never sees more than
    ``bucket_size`` at once even when a slow claim and a fast one hand over two batches back to
    back. ``max_concurrent_requests`` (the gate) counts requests at send time: tasks may be
    claimed ahead of a free slot, so the next request starts the moment one ends.
    """

    __slots__ = ("bucket", "gate", "paused", "wire")

    def __init__(
        self,
        rate: Fraction | int,
        bucket_size: int,
        max_concurrent_requests: int | None,
        now_us: int,
        *,
        paused: bool = False,
    ) -> None:
        self.bucket = TokenBucket(rate, bucket_size, now_us)
        self.wire = TokenBucket(rate, bucket_size, now_us)
        self.gate = ConcurrencyGate(max_concurrent_requests)
        self.paused = paused

    def reconfigure(self, rate: Fraction | int, bucket_size: int, now_us: int) -> None:
        """A new enforced rate or bucket size, for claims and sends alike."""
        self.bucket.reconfigure(rate, bucket_size, now_us)
        self.wire.reconfigure(rate, bucket_size, now_us)

    def try_take(self, now_us: int) -> bool:
        """Take the token of one dispatch at claim time (none while paused)."""
        return not self.paused and self.bucket.try_take(now_us)

    def take_claimed(self, now_us: int, n: int) -> int:
        """:meth:`try_take` for each of ``n`` tasks one claim took, in one go."""
        return 0 if self.paused else self.bucket.take_up_to(now_us, n)

    def send_at(self, now_us: int) -> int:
        """When a claimed task may go out: at once, unless sends bunch up beyond the bucket."""
        return self.wire.reserve(now_us)

    def ready_at(self, now_us: int) -> int | None:
        """When the next token for a claim is there, or None if only an outside event (a resume,
        a reconfiguration) can allow one."""
        if self.paused:
            return None
        return self.bucket.next_token_us(now_us)


class AdaptiveRate:
    """Adaptive back-off (beyond App Engine): slow a queue whose receiver answers 503 or 429.

    Multiplicative decrease, gradual recovery, the policy documented in the README:

    * each 503/429 halves the queue's enforced rate, at most once per ``cooldown_us`` (a burst
      of concurrent refusals counts once), down to ``1/64`` of the configured rate;
    * ``recovery_us`` after the last refusal, the enforced rate grows by a quarter, and again
      every further ``recovery_us``, until it is back at the configured rate.

    Recovery goes with time alone, not with deliveries: a queue slowed by refusals and then
    left idle is back at its configured rate when tasks come again (it used to recover only a
    step per delivery, and stayed slowed while idle). The steps fall on exact instants
    (:meth:`next_step_us`), so the scheduler applies each where it falls, however late it looks.

    The factor is an exact fraction, so the bucket's arithmetic stays exact.
    """

    DECREASE = Fraction(1, 2)
    INCREASE = Fraction(5, 4)
    MIN_FACTOR = Fraction(1, 64)

    __slots__ = (
        "_last_decrease_us",
        "_quiet_since_us",
        "_slowed",
        "cooldown_us",
        "factor",
        "recovery_us",
    )

    def __init__(self, *, cooldown_us: int = 1 * US, recovery_us: int = 5 * US) -> None:
        self.factor = Fraction(1)
        #: factor < 1, kept as a bool: next_step_us runs once per delivery, and comparing
        #: Fractions costs a microsecond each time.
        self._slowed = False
        self.cooldown_us = cooldown_us
        self.recovery_us = recovery_us
        self._last_decrease_us: int | None = None
        self._quiet_since_us = 0  # the last refusal or recovery step

    def enforced(self, configured: Fraction) -> Fraction:
        return configured * self.factor

    def on_throttled(self, now_us: int) -> bool:
        """A 503/429 arrived; returns True if the enforced rate changed. Steps due before
        ``now_us`` must have been taken first (:meth:`next_step_us`)."""
        self._quiet_since_us = now_us
        last = self._last_decrease_us
        if last is not None and now_us - last < self.cooldown_us:
            return False
        self._last_decrease_us = now_us
        new = max(self.MIN_FACTOR, self.factor * self.DECREASE)
        changed = new != self.factor
        self.factor = new
        self._slowed = new < 1
        return changed

    def next_step_us(self) -> int | None:
        """When the enforced rate next grows by a quarter, or None: it is at the configured rate."""
        if not self._slowed:
            return None
        return self._quiet_since_us + self.recovery_us

    def step(self) -> bool:
        """Take the step due at :meth:`next_step_us`; True when it brings the configured rate back."""
        at = self.next_step_us()
        if at is None:
            return False
        self.factor = min(Fraction(1), self.factor * self.INCREASE)
        self._quiet_since_us = at
        self._slowed = self.factor < 1
        return not self._slowed
