"""The Meta accounts in the platform admin (superusers): secrets write-only, deletion by one
SQL DELETE with counts. Loaded by channels_integrations.apps with the folder."""

from django.contrib import admin

from crm.admin_utils import DatabaseCascadeDeleteMixin, SecretFieldsAdminMixin

from .models import InstagramAccount, MessengerPage

SECRETS = ("page_access_token", "app_secret", "verify_token")


class MetaSourceAdmin(SecretFieldsAdminMixin, DatabaseCascadeDeleteMixin, admin.ModelAdmin):
    secret_fields = SECRETS
    list_display = ("name", "page_id", "company", "status", "is_active", "last_event_at")
    list_filter = ("status", "is_active", "company")
    list_select_related = ("company",)
    search_fields = ("name", "=page_id", "company__name")
    autocomplete_fields = ("company",)
    readonly_fields = ("uuid", "status", "last_error", "last_event_at", "created_at", "updated_at")
    credentials = (
        "page_id",
        ("page_access_token", "page_access_token_status"),
        ("app_secret", "app_secret_status"),
        ("verify_token", "verify_token_status"),
        "human_agent_tag",
    )

    def get_fieldsets(self, request, obj=None):
        return (
            (None, {"fields": ("company", "name", "is_active")}),
            ("Graph API", {"fields": self.credentials}),
            ("State", {"fields": ("status", "last_error", "last_event_at", "uuid")}),
            ("Dates", {"fields": ("created_at", "updated_at")}),
        )


@admin.register(MessengerPage)
class MessengerPageAdmin(MetaSourceAdmin):
    pass


@admin.register(InstagramAccount)
class InstagramAccountAdmin(MetaSourceAdmin):
    list_display = ("name", "username", "ig_user_id", "company", "status", "is_active")
    search_fields = ("name", "username", "=ig_user_id", "=page_id", "company__name")
    credentials = ("ig_user_id", *MetaSourceAdmin.credentials)
