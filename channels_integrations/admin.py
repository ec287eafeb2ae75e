from django.contrib import admin
from django.utils.translation import gettext as _

from channels_integrations.models import (
    Bot,
    BotRule,
    Broadcast,
    BroadcastRecipient,
    EmailAccount,
    EmailMessageRecord,
    TelegramAccount,
    WhatsAppNumber,
    WhatsAppSession,
)
from crm.admin_utils import (
    DatabaseCascadeDeleteMixin,
    SecretFieldsAdminMixin,
    SecretFieldsModelForm,
    count_subquery,
)

# ---------------------------------------------------------------- WhatsApp


@admin.register(WhatsAppNumber)
class WhatsAppNumberAdmin(SecretFieldsAdminMixin, DatabaseCascadeDeleteMixin, admin.ModelAdmin):
    secret_fields = ("cloud_access_token", "cloud_app_secret", "cloud_verify_token")
    list_display = (
        "phone",
        "display_name",
        "company",
        "provider",
        "status",
        "is_active",
        "created_at",
    )
    list_filter = ("provider", "status", "is_active", "company")
    list_select_related = ("company",)
    search_fields = ("phone", "display_name", "company__name", "=cloud_phone_number_id")
    autocomplete_fields = ("company",)
    readonly_fields = ("uuid", "status", "last_error", "web_jid", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("company", "phone", "display_name", "provider", "is_active")}),
        ("State", {"fields": ("status", "last_error", "uuid", "web_jid")}),
        (
            "Cloud API",
            {
                "fields": (
                    "cloud_phone_number_id",
                    "cloud_business_account_id",
                    ("cloud_access_token", "cloud_access_token_status"),
                    ("cloud_app_secret", "cloud_app_secret_status"),
                    ("cloud_verify_token", "cloud_verify_token_status"),
                )
            },
        ),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    )


class BotRuleInline(admin.TabularInline):
    model = BotRule
    fields = ("position", "match_type", "trigger", "reply_text", "is_active")
    extra = 0


@admin.register(Bot)
class BotAdmin(admin.ModelAdmin):
    list_display = ("name", "number", "sandbox", "company", "is_active", "created_at")
    list_filter = ("is_active", "company")
    list_select_related = ("number", "sandbox", "company")
    search_fields = ("name", "number__phone", "number__display_name")
    autocomplete_fields = ("number",)
    readonly_fields = ("company", "sandbox", "created_at")  # company: its source's
    inlines = (BotRuleInline,)


@admin.register(BotRule)
class BotRuleAdmin(admin.ModelAdmin):
    list_display = ("trigger", "bot", "match_type", "position", "is_active")
    list_filter = ("match_type", "is_active", "bot__company")
    list_select_related = ("bot",)
    search_fields = ("trigger", "reply_text", "bot__name")
    autocomplete_fields = ("bot",)


@admin.register(Broadcast)
class BroadcastAdmin(DatabaseCascadeDeleteMixin, admin.ModelAdmin):
    list_display = (
        "__str__",
        "number",
        "company",
        "status",
        "recipient_count",
        "scheduled_at",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "company")
    list_select_related = ("number", "company")
    search_fields = ("name", "text", "number__phone")
    autocomplete_fields = ("number", "created_by")
    readonly_fields = ("company", "sandbox", "created_at", "started_at", "finished_at")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(recipient_count=count_subquery(BroadcastRecipient, "broadcast"))
        )

    @admin.display(description="recipients", ordering="recipient_count")
    def recipient_count(self, obj):
        return obj.recipient_count


@admin.register(BroadcastRecipient)
class BroadcastRecipientAdmin(admin.ModelAdmin):
    list_display = ("phone", "broadcast", "client", "status", "sent_at", "updated_at")
    list_filter = ("status", "broadcast__company")
    list_select_related = ("broadcast", "client")
    search_fields = ("=phone", "=provider_message_id")
    raw_id_fields = ("broadcast", "client")
    readonly_fields = ("updated_at",)
    ordering = ("-id",)
    show_full_result_count = False


@admin.register(WhatsAppSession)
class WhatsAppSessionAdmin(admin.ModelAdmin):
    list_display = (
        "number",
        "company",
        "status",
        "last_connected_at",
        "last_heartbeat_at",
        "reconnect_attempts",
        "last_error_at",
    )
    list_filter = ("status", "number__company")
    list_select_related = ("number", "number__company")
    search_fields = ("number__phone", "number__display_name")
    autocomplete_fields = ("number",)
    readonly_fields = ("updated_at",)

    @admin.display(description="company", ordering="number__company__name")
    def company(self, obj):
        return obj.number.company


# ---------------------------------------------------------------- Telegram


@admin.register(TelegramAccount)
class TelegramAccountAdmin(SecretFieldsAdminMixin, DatabaseCascadeDeleteMixin, admin.ModelAdmin):
    secret_fields = ("api_hash", "session_string", "login_state")
    list_display = (
        "name",
        "phone",
        "company",
        "status",
        "is_active",
        "messages_received",
        "last_event_at",
    )
    list_filter = ("status", "is_active", "company")
    list_select_related = ("company",)
    search_fields = ("name", "phone", "company__name")
    autocomplete_fields = ("company",)
    readonly_fields = (
        "status",
        "last_event_at",
        "messages_received",
        "last_error",
        "last_error_at",
        "created_at",
    )
    fieldsets = (
        (None, {"fields": ("company", "name", "phone", "is_active")}),
        (
            "Credentials",
            {
                "fields": (
                    "api_id",
                    ("api_hash", "api_hash_status"),
                    ("session_string", "session_string_status"),
                )
            },
        ),
        (
            "State",
            {
                "fields": (
                    "status",
                    "last_event_at",
                    "messages_received",
                    "last_error",
                    "last_error_at",
                    "created_at",
                )
            },
        ),
    )


# ---------------------------------------------------------------- Email


class EmailAccountForm(SecretFieldsModelForm):
    def clean(self):
        cleaned_data = super().clean()
        owner, company = cleaned_data.get("owner"), cleaned_data.get("company")
        if owner is not None and company is not None and owner.company_id != company.pk:
            self.add_error("owner", _("The owner must be a member of the account's company."))
        return cleaned_data


@admin.register(EmailAccount)
class EmailAccountAdmin(SecretFieldsAdminMixin, DatabaseCascadeDeleteMixin, admin.ModelAdmin):
    form = EmailAccountForm
    secret_fields = ("password",)
    list_display = (
        "address",
        "company",
        "owner",
        "status",
        "is_active",
        "last_poll_at",
        "messages_imported",
    )
    list_filter = ("status", "is_active", "smtp_security", "company")
    list_select_related = ("company", "owner")
    search_fields = ("address", "display_name", "username", "company__name")
    autocomplete_fields = ("company", "owner")
    readonly_fields = (
        "status",
        "uidvalidity",
        "last_uid",
        "last_error",
        "last_error_at",
        "last_poll_at",
        "last_success_at",
        "messages_imported",
        "created_at",
    )
    fieldsets = (
        (None, {"fields": ("company", "owner", "address", "display_name", "is_active")}),
        (
            "Server",
            {
                "fields": (
                    ("imap_host", "imap_port", "imap_ssl"),
                    ("smtp_host", "smtp_port", "smtp_security"),
                    "username",
                    ("password", "password_status"),
                )
            },
        ),
        ("Polling", {"fields": ("poll_interval_seconds", "first_sync_days")}),
        (
            "State",
            {
                "fields": (
                    "status",
                    ("uidvalidity", "last_uid"),
                    "messages_imported",
                    "last_error",
                    "last_error_at",
                    "last_poll_at",
                    "last_success_at",
                    "created_at",
                )
            },
        ),
    )


@admin.register(EmailMessageRecord)
class EmailMessageRecordAdmin(admin.ModelAdmin):
    list_display = ("message_id", "account", "direction", "conversation", "uid", "created_at")
    list_filter = ("direction",)
    list_select_related = ("account", "conversation")
    search_fields = ("=message_id",)
    raw_id_fields = ("account", "conversation")
    readonly_fields = ("created_at",)
    ordering = ("-id",)
    show_full_result_count = False
