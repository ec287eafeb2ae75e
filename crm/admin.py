from django.contrib import admin

from crm.admin_utils import restrict_to_superusers
from crm.models import Client

# The one place that closes the admin to everyone but platform superusers.
restrict_to_superusers(admin.site)


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = ("__str__", "phone", "email", "telegram_username", "company", "created_at")
    list_filter = ("company", "created_at")
    list_select_related = ("company",)
    search_fields = ("name", "phone", "email", "telegram_username", "=telegram_user_id")
    autocomplete_fields = ("company",)
    readonly_fields = ("created_at", "updated_at")
    show_full_result_count = False
