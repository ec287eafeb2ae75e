"""Secrets at rest: Fernet-encrypted with keys derived from SECRET_KEY (and every
SECRET_KEY_FALLBACKS entry) and each of FIELD_ENCRYPTION_KEYS. The first combination encrypts,
all of them decrypt, so either can be rotated: put the new key first (or move the old
SECRET_KEY into SECRET_KEY_FALLBACKS), re-save the rows (`manage.py reencrypt_secrets`), then
drop the old one. A stored secret that no key decrypts is an error, never its ciphertext."""

from cryptography.fernet import InvalidToken
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import models
from django.dispatch import receiver
from encrypted_fields.fields import EncryptedTextField

KEY_SETTINGS = {"SECRET_KEY", "SECRET_KEY_FALLBACKS", "SALT_KEY", "FIELD_ENCRYPTION_KEYS"}


class SecretUnreadable(ImproperlyConfigured):
    """A stored secret cannot be decrypted with the configured keys."""


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

    def from_db_value(self, value, expression, connection):
        """Decrypt what the database holds; the library would hand back the ciphertext (and
        a webhook would then fail its signature check in silence) when no key fits."""
        if value is None or value == "":
            return value
        try:
            return self.f.decrypt(value.encode("utf-8")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise SecretUnreadable(
                f"{self.model.__name__}.{self.name}: a stored secret cannot be decrypted with "
                "SECRET_KEY, SECRET_KEY_FALLBACKS and FIELD_ENCRYPTION_KEYS. Put the key it was "
                "saved with back (SECRET_KEY_FALLBACKS, or among FIELD_ENCRYPTION_KEYS)."
            ) from None

    def forget_keys(self) -> None:
        self.__dict__.pop("keys", None)
        self.__dict__.pop("f", None)


def secret_field_names(model) -> tuple[str, ...]:
    """The names of a model's SecretFields (what the API, pages and admin must never show)."""
    return tuple(
        field.name for field in model._meta.concrete_fields if isinstance(field, SecretField)
    )


def secret_fields():
    from django.apps import apps

    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, SecretField):
                yield model, field


@receiver(setting_changed, dispatch_uid="crm.fields.keys_changed")
def _keys_changed(setting, **kwargs):
    """Each field caches its derived keys; a changed key setting (tests) derives them anew."""
    if setting in KEY_SETTINGS:
        for _model, field in secret_fields():
            field.forget_keys()
