from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Inbox and team chats"

    def ready(self):
        # Registers the sending tasks in every process (web included), so services queue them
        # by name (messaging.services.outbox) without importing this module.
        from . import tasks  # noqa: F401
