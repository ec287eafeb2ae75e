from django.apps import AppConfig


class WebhookInboxConfig(AppConfig):
    name = "webhook_inbox"
    verbose_name = "Webhook inbox"
