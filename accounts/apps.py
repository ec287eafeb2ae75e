from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Companies and people"

    def ready(self):
        from . import revocation  # noqa: F401  (closes the sockets of revoked access)
