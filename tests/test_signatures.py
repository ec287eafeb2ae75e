"""Meta's X-Hub-Signature-256 (channels_integrations.signatures): the keyed HMAC kept per app
secret gives what the standard library's one-shot HMAC gives, for any body and secret, and a
secret that changes is used at once."""

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from channels_integrations.signatures import hub_signature_is_valid

secrets = st.text(min_size=1, max_size=80)
bodies = st.binary(max_size=4096)


def signed(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@given(body=bodies, secret=secrets)
def test_a_signature_is_valid_only_with_its_own_secret_and_body(body, secret):
    header = signed(body, secret)
    assert hub_signature_is_valid(body, header, secret)
    assert hub_signature_is_valid(body, header.upper().replace("SHA256=", "sha256="), secret)
    # Not another secret (one NUL more would be the same HMAC key: keys are padded with NULs).
    assert not hub_signature_is_valid(body, header, secret + "x")
    assert not hub_signature_is_valid(body + b"x", header, secret)


def test_a_rotated_secret_is_used_at_once():
    """The number's app secret is changed: what the old secret signed is refused, and the old
    secret's deliveries are refused from then on while the new one's pass (the same process)."""
    body = b'{"object": "whatsapp_business_account", "entry": []}'
    assert hub_signature_is_valid(body, signed(body, "old-secret"), "old-secret")
    assert not hub_signature_is_valid(body, signed(body, "old-secret"), "new-secret")
    assert hub_signature_is_valid(body, signed(body, "new-secret"), "new-secret")
    # Checking one body must not leave state in the kept key for the next one.
    assert hub_signature_is_valid(b"second", signed(b"second", "new-secret"), "new-secret")
    assert not hub_signature_is_valid(body, None, "new-secret")
    assert not hub_signature_is_valid(body, signed(body, "new-secret"), "")
