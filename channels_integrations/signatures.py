"""Meta's webhook signature, one rule for every channel Meta delivers (WhatsApp Cloud,
Messenger, Instagram): X-Hub-Signature-256 is "sha256=" + the HMAC-SHA256 of the raw body with
the app secret."""

import functools
import hmac


@functools.lru_cache(maxsize=1024)
def _keyed_hmac(app_secret: str) -> hmac.HMAC:
    """An HMAC-SHA256 already keyed with `app_secret`, copied per body: hmac.digest() looks the
    algorithm up in OpenSSL and keys it anew on every call, 9% of the busy web process's samples
    on the webhook fast path (README, "The web tier and webhooks, measured")."""
    return hmac.new(app_secret.encode(), digestmod="sha256")


def hub_signature_is_valid(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """Checked in constant time; a missing header or secret is never valid."""
    if not header or not app_secret or not header.startswith("sha256="):
        return False
    mac = _keyed_hmac(app_secret).copy()
    mac.update(raw_body)
    expected = mac.hexdigest().encode()
    # Bytes: compare_digest raises TypeError on non-ASCII str (a 500 from a forged header).
    given = header.removeprefix("sha256=").strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)
