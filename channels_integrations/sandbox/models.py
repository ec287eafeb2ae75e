"""The sandbox's source: one per company (loaded by channels_integrations.models)."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.scoping import TenantManager


class SandboxInbox(models.Model):
    """The company's test channel: conversations with pretend customers (platform `sandbox`)."""

    tenant_path = "company"

    company = models.OneToOneField(
        "accounts.Company", on_delete=models.CASCADE, related_name="sandbox"
    )
    name = models.CharField(_("name"), max_length=100, default="Sandbox")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        app_label = "channels_integrations"
        verbose_name = "sandbox"

    def __str__(self):
        return self.name
