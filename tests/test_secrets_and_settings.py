"""Secrets are encrypted at rest with keys from the environment, keys rotate, and production
mode refuses to start without its secrets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from channels_integrations.models import EmailAccount, TelegramAccount

from .factories import EmailAccountFactory, TelegramAccountFactory

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_secret_columns_hold_ciphertext_not_the_secret():
    account = TelegramAccountFactory(
        api_hash="0123456789abcdef0123456789abcdef", session_string="my-session"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_hash, session_string FROM channels_integrations_telegramaccount WHERE id = %s",
            [account.pk],
        )
        stored = cursor.fetchone()
    assert "0123456789abcdef" not in stored[0] and "my-session" not in stored[1]
    assert stored[0].startswith("gAAAA")  # a Fernet token
    account = TelegramAccount.objects.get(pk=account.pk)
    assert account.api_hash == "0123456789abcdef0123456789abcdef"


def _model_field(model, name):
    """A fresh copy of a field, so key settings are read anew (the library caches keys per field)."""
    field = model._meta.get_field(name)
    clone = field.__class__(*field.deconstruct()[2], **field.deconstruct()[3])
    clone.set_attributes_from_name(name)
    return clone


def test_rotating_the_encryption_key_keeps_old_secrets_readable(settings):
    settings.SALT_KEY = ["old-key"]
    old_field = _model_field(EmailAccount, "password")
    ciphertext = old_field.get_prep_value("mailbox-password")

    settings.SALT_KEY = ["new-key", "old-key"]  # rotation: new key first, old still decrypts
    rotated = _model_field(EmailAccount, "password")
    assert rotated.to_python(ciphertext) == "mailbox-password"
    new_ciphertext = rotated.get_prep_value("mailbox-password")

    settings.SALT_KEY = ["new-key"]  # after re-saving, the old key can be retired
    assert _model_field(EmailAccount, "password").to_python(new_ciphertext) == "mailbox-password"


@pytest.mark.django_db
def test_secrets_are_masked_in_repr_and_str():
    account = EmailAccountFactory(password="hunter2-hunter2")
    assert "hunter2" not in str(account) and "hunter2" not in repr(account)


def _start_django(env_overrides):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DEBUG")
    }
    env.update(env_overrides, DJANGO_SETTINGS_MODULE="crm.settings")
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_production_mode_refuses_to_start_without_secrets():
    result = _start_django({"DEBUG": "false"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr and "FIELD_ENCRYPTION_KEYS" in result.stderr

    result = _start_django(
        {
            "DEBUG": "false",
            "SECRET_KEY": "change-me-to-a-long-random-string",
            "FIELD_ENCRYPTION_KEYS": "k" * 40,
        }
    )
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_production_mode_starts_with_secrets_and_development_needs_nothing():
    result = _start_django(
        {"DEBUG": "false", "SECRET_KEY": "s" * 50, "FIELD_ENCRYPTION_KEYS": "k" * 40}
    )
    assert result.returncode == 0, result.stderr
    assert _start_django({}).returncode == 0


# ---------------------------------------------------------------- key rotation


def _stored_token(number):
    from channels_integrations.models import WhatsAppNumber

    return WhatsAppNumber.objects.get(pk=number.pk).cloud_access_token


@pytest.mark.django_db
def test_a_secret_no_key_decrypts_is_an_error_and_rotation_keeps_it_readable(settings):
    from django.core.management import call_command

    from crm.fields import SecretUnreadable

    from .factories import WhatsAppNumberFactory

    old_secret, old_salts = settings.SECRET_KEY, list(settings.SALT_KEY)
    number = WhatsAppNumberFactory(cloud_access_token="EAAG-rotate-me")

    # SECRET_KEY changed, the old one forgotten: reading fails loudly, never ciphertext.
    settings.SECRET_KEY = "a-brand-new-secret-key-" + "x" * 40
    with pytest.raises(SecretUnreadable, match="cloud_access_token"):
        _stored_token(number)
    # The old key as a fallback: readable again; re-encrypted with the new key, it no longer
    # needs the fallback.
    settings.SECRET_KEY_FALLBACKS = [old_secret]
    assert _stored_token(number) == "EAAG-rotate-me"
    call_command("reencrypt_secrets", stdout=__import__("io").StringIO())
    settings.SECRET_KEY_FALLBACKS = []
    assert _stored_token(number) == "EAAG-rotate-me"

    # FIELD_ENCRYPTION_KEYS: a new key in front, the old one kept, re-saved, then dropped.
    settings.SALT_KEY = ["new-field-key-0123456789", *old_salts]
    assert _stored_token(number) == "EAAG-rotate-me"
    call_command("reencrypt_secrets", stdout=__import__("io").StringIO())
    settings.SALT_KEY = ["new-field-key-0123456789"]
    assert _stored_token(number) == "EAAG-rotate-me"
    settings.SALT_KEY = old_salts  # without the key it was saved with: an error again
    with pytest.raises(SecretUnreadable):
        _stored_token(number)
