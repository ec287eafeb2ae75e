"""Meta's webhook signature, one rule for every channel Meta delivers (WhatsApp Cloud,
Messenger, Instagram): X-Hub-Signature-256 is "sha256=" + the HMAC-SHA256 of the raw body with
the app secret."""

import hmac


def hub_signature_is_valid(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """Checked in constant time; a missing header or secret is never valid."""
    if not header or not app_secret or not header.startswith("sha256="):
        return False
    expected = hmac.digest(app_secret.encode(), raw_body, "sha256").hex().encode()
    # Bytes: compare_digest raises TypeError on non-ASCII str (a 500 from a forged header).
    given = header.removeprefix("sha256=").strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)
