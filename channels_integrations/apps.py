from django.apps import AppConfig


class ChannelsIntegrationsConfig(AppConfig):
    name = "channels_integrations"
    verbose_name = "Channels"

    def ready(self):
        from . import bots  # noqa: F401  (connects the bots' receiver)
        from .email import signals  # noqa: F401  (remembers sent Message-IDs)
