"""Secrets at rest: Fernet-encrypted with keys from FIELD_ENCRYPTION_KEYS (first one encrypts,
all decrypt, so rotation is adding a key in front and re-saving rows)."""

from django.db import models
from encrypted_fields.fields import EncryptedTextField


class SecretField(EncryptedTextField):
    """Encrypted text. Write-only in the API, masked in the admin, never logged.

    Empty values are stored as NULL (the library encrypts only non-empty values).
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("null", True)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def clean(self, value, model_instance):
        # The library flags the (shared) field object while cleaning; a plain value fails
        # decryption harmlessly, so skip that thread-unsafe flag.
        return models.TextField.clean(self, value, model_instance)


def secret_field_names(model) -> tuple[str, ...]:
    """The names of a model's SecretFields (what the API, pages and admin must never show)."""
    return tuple(
        field.name for field in model._meta.concrete_fields if isinstance(field, SecretField)
    )
