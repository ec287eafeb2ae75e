"""Sales pipelines: ordered stages per company, deals moving through them, and their history.

Every foreign key is ON DELETE CASCADE / SET NULL in PostgreSQL too (crm.db), so deleting a
pipeline is one SQL DELETE whatever the number of deals."""

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.scoping import TenantManager
from crm.models import AuditedChange
from crm.vocabulary import label_for

from .currencies import ISO_4217


def validate_currency(value: str) -> None:
    from django.core.exceptions import ValidationError

    if value not in ISO_4217:
        raise ValidationError(
            _("“%(code)s” is not an ISO 4217 currency code."), params={"code": value}
        )


class Pipeline(models.Model):
    tenant_path = "company"

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="pipelines", db_index=False
    )
    name = models.CharField(_("name"), max_length=100)
    is_default = models.BooleanField(_("default"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        ordering = ["-is_default", "name", "id"]
        verbose_name = _("pipeline")
        constraints = [
            models.UniqueConstraint(fields=["company", "name"], name="pipeline_unique_name"),
            models.UniqueConstraint(
                fields=["company"], condition=Q(is_default=True), name="pipeline_one_default"
            ),
        ]

    def __str__(self):
        return self.name


class Stage(models.Model):
    tenant_path = "pipeline__company"

    pipeline = models.ForeignKey(
        Pipeline, on_delete=models.CASCADE, related_name="stages", db_index=False
    )
    name = models.CharField(_("name"), max_length=100)
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    objects = TenantManager()

    class Meta:
        ordering = ["pipeline", "position", "id"]
        verbose_name = _("stage")
        indexes = [models.Index(fields=["pipeline", "position"], name="stage_order_idx")]

    def __str__(self):
        return self.name


class Deal(models.Model):
    tenant_path = "company"

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        WON = "won", _("Won")
        LOST = "lost", _("Lost")

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="deals", db_index=False
    )
    pipeline = models.ForeignKey(
        Pipeline, on_delete=models.CASCADE, related_name="deals", db_index=False
    )
    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="deals")
    title = models.CharField(_("title"), max_length=200)
    amount = models.DecimalField(
        _("amount"),
        max_digits=14,
        decimal_places=2,
        default=0,
        validators=[MinValueValidator(0)],
    )
    currency = models.CharField(
        _("currency"),
        max_length=3,
        default="EUR",
        validators=[RegexValidator(r"^[A-Z]{3}$"), validate_currency],
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_deals",
        verbose_name=_("owner"),
    )
    client = models.ForeignKey(
        "crm.Client", on_delete=models.CASCADE, related_name="deals", verbose_name=_("client")
    )
    conversation = models.ForeignKey(
        "messaging.Conversation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deals",
        verbose_name=_("conversation"),
    )
    expected_close_date = models.DateField(_("expected close date"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=4, choices=Status.choices, default=Status.OPEN
    )
    lost_reason = models.CharField(_("reason"), max_length=300, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Opened by the channel setting for a new client: at most one such deal per client.
    auto_created = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        ordering = ["-updated_at", "-id"]
        verbose_name = _("deal")
        constraints = [
            models.UniqueConstraint(
                fields=["client"], condition=Q(auto_created=True), name="deal_one_auto_per_client"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="deal_amount_not_negative"),
        ]
        indexes = [
            models.Index(fields=["pipeline", "status", "-updated_at"], name="deal_board_idx"),
            models.Index(fields=["company", "-created_at"], name="deal_company_created_idx"),
            models.Index(
                fields=["company", "closed_at"],
                condition=Q(status="won"),
                name="deal_won_idx",
            ),
            models.Index(fields=["client"], name="deal_client_idx"),
            models.Index(
                fields=["conversation"],
                condition=Q(conversation__isnull=False),
                name="deal_conversation_idx",
            ),
            models.Index(fields=["owner"], condition=Q(owner__isnull=False), name="deal_owner_idx"),
            models.Index(
                fields=["created_by"],
                condition=Q(created_by__isnull=False),
                name="deal_created_by_idx",
            ),
        ]

    def __str__(self):
        return self.title


class StageChange(AuditedChange):
    """One step of a deal's history: created in a stage, moved, won, lost or reopened."""

    tenant_path = "deal__company"

    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="history", db_index=False)
    from_stage = models.ForeignKey(
        Stage, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    to_stage = models.ForeignKey(
        Stage, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    # Names kept as they were, so history reads the same after a stage is renamed or removed.
    from_name = models.CharField(max_length=100, blank=True)
    to_name = models.CharField(max_length=100, blank=True)
    from_status = models.CharField(max_length=4, blank=True)
    to_status = models.CharField(max_length=4)
    reason = models.CharField(max_length=300, blank=True)

    objects = TenantManager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["deal", "created_at"], name="stagechange_deal_idx"),
            # SET NULL when a stage or a user goes: partial indexes keep them cheap.
            models.Index(
                fields=["to_stage"], condition=Q(to_stage__isnull=False), name="stagechange_to_idx"
            ),
            models.Index(
                fields=["from_stage"],
                condition=Q(from_stage__isnull=False),
                name="stagechange_from_idx",
            ),
            models.Index(
                fields=["actor"], condition=Q(actor__isnull=False), name="stagechange_actor_idx"
            ),
        ]

    def __str__(self):
        return f"{self.from_name or '—'} → {self.to_name} ({self.to_status})"

    # The history page shows words, not codes (the one vocabulary: Deal.Status's labels).
    @property
    def from_status_label(self):
        return label_for(Deal, self.from_status) if self.from_status else ""

    @property
    def to_status_label(self):
        return label_for(Deal, self.to_status)


class ChannelDealSetting(models.Model):
    """A channel source (number, account, mailbox: by platform and id, like a conversation)
    whose new clients get a deal in `pipeline` with their first message."""

    tenant_path = "company"

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    platform = models.CharField(max_length=10)
    source_id = models.BigIntegerField()
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="+")
    # Clients created from this moment on count as new.
    enabled_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "source_id"], name="channel_deal_setting_unique_source"
            )
        ]
        indexes = [models.Index(fields=["company"], name="channel_deal_setting_company")]

    def __str__(self):
        return f"{self.platform}:{self.source_id}"
