from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from accounts.scoping import TenantManager

SHORTCUT_PATTERN = r"^[\w-]+\Z"


class CannedReply(models.Model):
    """A prepared answer an agent inserts with `/` + its shortcut in the reply box.

    Company-wide (`owner` empty; company admins manage them) or personal (its owner's only;
    nobody else sees it). The body may hold variables, `{{client.first_name}}` ...
    (canned.rendering), filled in for the conversation it is inserted into."""

    tenant_path = "company"

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="canned_replies"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="canned_replies",
        help_text=_("Empty: the whole company's; else the owner's personal reply."),
    )
    title = models.CharField(_("title"), max_length=200)
    shortcut = models.CharField(
        _("shortcut"),
        max_length=50,
        validators=[
            RegexValidator(SHORTCUT_PATTERN, _("Letters, digits, “-” and “_” only, no spaces."))
        ],
    )
    body = models.TextField(_("text"), max_length=4000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        ordering = ["shortcut", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "shortcut"],
                condition=Q(owner__isnull=True),
                name="canned_unique_company_shortcut",
            ),
            models.UniqueConstraint(
                fields=["owner", "shortcut"],
                condition=Q(owner__isnull=False),
                name="canned_unique_personal_shortcut",
            ),
        ]

    def __str__(self):
        return f"/{self.shortcut} · {self.title}"

    @property
    def is_personal(self) -> bool:
        return self.owner_id is not None
