"""Reads about companies and their people."""

import time

from accounts.models import Company

# Workers ask on every message whether its company is active: the answer is kept this long
# per process (a deactivation reaches every worker within these seconds; pages, the API and
# sockets check at once).
ACTIVE_CACHE_SECONDS = 5.0
_active: dict[int, tuple[float, bool]] = {}


def company_is_active(company_id: int) -> bool:
    now = time.monotonic()
    cached = _active.get(company_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    active = Company.objects.filter(pk=company_id, is_active=True).exists()
    _active[company_id] = (now + ACTIVE_CACHE_SECONDS, active)
    return active


def forget_company_states() -> None:
    """Forget the cached answers (tests; a company changed in this process)."""
    _active.clear()
