"""A send rate shared by every connection of a process: per second and per hour."""

from __future__ import annotations

from aiolimiter import AsyncLimiter


class RateLimit:
    """Wait before each message so the process stays under its rates."""

    def __init__(self, per_second: float | None = None, per_hour: int | None = None) -> None:
        rates = [r for r in (per_second, per_hour / 3600 if per_hour else None) if r]
        # The sustained rate messages go out at, at most (None: unlimited).
        self.per_second: float | None = min(rates) if rates else None
        self._limiters: list[AsyncLimiter] = []
        if per_second is not None:
            # Slow rates (0.5/s) become one message per 1/rate seconds.
            self._limiters.append(
                AsyncLimiter(per_second, 1.0)
                if per_second >= 1
                else AsyncLimiter(1, 1 / per_second)
            )
        if per_hour is not None:
            self._limiters.append(AsyncLimiter(per_hour, 3600.0))

    async def wait(self) -> None:
        """Return when one more message may go out."""
        for limiter in self._limiters:
            await limiter.acquire()
