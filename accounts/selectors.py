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


def socket_identity(
    raw_token: str, session_key: str, address: str = ""
) -> tuple[object, int | None, str]:
    """Who opens a WebSocket: (user or None, API token id, session key). A token is one query
    (its user and company joined; its last use noted at most once a minute); a session cookie
    is the session (from Redis with cached_db sessions) and one query for the user and their
    company, with the session's password hash checked, as every page does. Wrong tokens count
    against `address` as the API's do; a throttled address gets no user even for a right one."""
    from types import SimpleNamespace

    from django.conf import settings
    from django.contrib.auth import get_user
    from django.utils.module_loading import import_string

    from accounts.authentication import count_wrong_token, tokens_throttled
    from accounts.models import ApiToken

    if raw_token:
        if tokens_throttled(address, "ws"):
            return None, None, ""
        token = ApiToken.find(raw_token)
        if token is None:
            count_wrong_token(address, "ws")
            return None, None, ""
        return token.user, token.pk, ""
    if not session_key:
        return None, None, ""
    session = import_string(f"{settings.SESSION_ENGINE}.SessionStore")(session_key)
    user = get_user(SimpleNamespace(session=session))
    if not user.is_authenticated:
        return None, None, ""
    return user, None, session.session_key or ""
