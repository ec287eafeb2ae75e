import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.db import connections, models, router
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Company(models.Model):
    """The tenant: every tenant-owned row reaches exactly one company."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    is_active = models.BooleanField(default=True)
    # False: agents see only the conversations assigned to them and unassigned ones (admins
    # and supervisors always see all). Enforced by accounts.scoping and messaging.events.
    agents_see_all_conversations = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "companies"

    def __str__(self):
        return self.name


class Role(models.TextChoices):
    ADMIN = "admin", _("Admin")  # manages numbers, accounts and members
    AGENT = "agent", _("Agent")  # works the inbox
    SUPERVISOR = "supervisor", _("Supervisor")  # sees everything, changes nothing


class User(AbstractUser):
    tenant_path = "company"

    # Superusers (platform staff) may have no company; everyone else belongs to exactly one.
    company = models.ForeignKey(
        Company, on_delete=models.CASCADE, null=True, blank=True, related_name="members"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.AGENT)
    # Lead distribution (teams.distribution): at most this many open conversations assigned
    # by round-robin (None: no cap); "away" takes the agent out of it while online.
    max_open_conversations = models.PositiveIntegerField(null=True, blank=True)
    is_away = models.BooleanField(default=False)
    # The language pages are shown in for this user (settings.LANGUAGES); blank: the browser's.
    language = models.CharField(
        _("language"), max_length=10, blank=True, choices=settings.LANGUAGES
    )

    objects = UserManager()

    class Meta:
        ordering = ["username"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(company__isnull=False) | models.Q(is_superuser=True),
                name="user_has_company_unless_superuser",
            )
        ]

    @property
    def is_company_admin(self) -> bool:
        return self.company_id is not None and self.role == Role.ADMIN

    @property
    def is_read_only(self) -> bool:
        """Supervisors read everything and write nothing (API 403, pages 403)."""
        return self.role == Role.SUPERVISOR

    @property
    def sees_all_conversations(self) -> bool:
        if self.role != Role.AGENT or self.company_id is None:
            return True
        return self.company.agents_see_all_conversations

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the raw value is shown once."""

    tenant_path = "user__company"

    PREFIX = "sb_"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_hint = models.CharField(max_length=12, editable=False)  # first characters, to recognise it
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.key_hint}…)"

    @classmethod
    def issue(cls, user: User, name: str) -> tuple["ApiToken", str]:
        raw = cls.PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, name=name, key_hash=hash_token(raw), key_hint=raw[:10]
        )
        return token, raw

    @classmethod
    def authenticate(cls, raw: str) -> User | None:
        token = cls.find(raw)
        return token.user if token is not None else None

    @classmethod
    def find(cls, raw: str) -> "ApiToken | None":
        """The token of an active user with this raw value (its last use noted, at most once
        a minute), else None."""
        token = _find_active_token(hash_token(raw))
        if token is None:
            return None
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            cls.objects.filter(pk=token.pk).update(last_used_at=now)
        return token


def _columns(model, alias: str) -> list[str]:
    return [f'{alias}."{field.column}"' for field in model._meta.concrete_fields]


def _find_active_token(key_hash: str) -> ApiToken | None:
    """The token with this hash, its user and the user's company in one plain SQL statement,
    or None when the token, the user or the company is missing or inactive.

    Every API request runs this: the same as `select_related("user", "user__company")`
    with the filters, without building and compiling an ORM query each time (~1.5 ms of CPU
    per request; see bench/api_list_cpu.py). None of these models' columns needs a converter
    from the database value, so rows become instances with `from_db` directly."""
    models_ = (ApiToken, User, Company)
    columns = [*_columns(ApiToken, "t"), *_columns(User, "u"), *_columns(Company, "c")]
    db = router.db_for_read(ApiToken)
    with connections[db].cursor() as cursor:
        cursor.execute(
            f'SELECT {", ".join(columns)} FROM "{ApiToken._meta.db_table}" t '  # noqa: S608
            f'JOIN "{User._meta.db_table}" u ON u.id = t.user_id '
            f'JOIN "{Company._meta.db_table}" c ON c.id = u.company_id '
            "WHERE t.key_hash = %s AND u.is_active AND c.is_active",
            [key_hash],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    instances, start = [], 0
    for model in models_:
        width = len(model._meta.concrete_fields)
        instances.append(model.from_db(db, None, row[start : start + width]))
        start += width
    token, user, company = instances
    ApiToken.user.field.set_cached_value(token, user)
    User.company.field.set_cached_value(user, company)
    return token
