"""The sources of the two Meta channels: a Facebook Page (Messenger) and an Instagram
professional account. Loaded by channels_integrations.models (every channel folder's
`models.py`), migrated by the app's migrations."""

import uuid

from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.scoping import TenantManager
from crm.fields import SecretField
from teams.models import distribution_field, team_field

graph_id_validator = RegexValidator(r"^[0-9]{1,30}$", _("A Graph id is digits only."))


class MetaSource(models.Model):
    """What a Facebook Page and an Instagram account share: the Graph credentials, the
    webhook (its own URL by uuid, verify token, app secret) and the state shown to admins."""

    tenant_path = "company"

    class Status(models.TextChoices):
        NEW = "new", _("Not tested yet")
        OK = "ok", _("Connected")
        ERROR = "error", _("Error")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)  # webhook URL
    name = models.CharField(_("name"), max_length=100)
    page_id = models.CharField(
        _("Facebook Page id"), max_length=30, validators=[graph_id_validator]
    )
    page_access_token = SecretField()
    app_secret = SecretField()
    verify_token = SecretField()
    # The HUMAN_AGENT message tag (an app permission Meta grants): replies up to 7 days after
    # the client wrote instead of 24 hours.
    human_agent_tag = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    # Lead distribution (teams): the team this row's conversations go to, and how.
    team = team_field()
    distribution = distribution_field()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NEW)
    last_error = models.TextField(blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        abstract = True
        ordering = ["name", "id"]

    def __str__(self):
        return self.name


class MessengerPage(MetaSource):
    """A Facebook Page: its Messenger conversations (platform `facebook`)."""

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="messenger_pages"
    )

    class Meta(MetaSource.Meta):
        app_label = "channels_integrations"
        verbose_name = "Messenger page"
        constraints = [
            models.UniqueConstraint(fields=["company", "page_id"], name="messenger_page_unique_id")
        ]


class InstagramAccount(MetaSource):
    """An Instagram professional account linked to a Facebook Page: its Direct conversations
    (platform `instagram`). Sends go through the Page, as the Messenger Platform does."""

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="instagram_accounts"
    )
    ig_user_id = models.CharField(
        _("Instagram account id"), max_length=30, validators=[graph_id_validator]
    )
    username = models.CharField(max_length=100, blank=True)  # read by "Test connection"

    class Meta(MetaSource.Meta):
        app_label = "channels_integrations"
        verbose_name = "Instagram account"
        constraints = [
            models.UniqueConstraint(
                fields=["company", "ig_user_id"], name="instagram_account_unique_id"
            )
        ]
