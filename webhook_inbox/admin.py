from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import services
from .models import Delivery


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """Platform admins see what waits and what was parked (with its reason), and can send a
    parked delivery round again once the cause is fixed."""

    list_display = (
        "id",
        "source",
        "source_id",
        "company",
        "received_at",
        "attempts",
        "parked_at",
        "last_error",
    )
    list_select_related = ("company",)
    list_filter = ("source", ("parked_at", admin.EmptyFieldListFilter))
    readonly_fields = (
        "company",
        "source",
        "source_id",
        "received_at",
        "attempts",
        "retry_at",
        "parked_at",
        "last_error",
        "body_text",
    )
    exclude = ("body",)
    actions = ("retry",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("Body"))
    def body_text(self, obj):
        return bytes(obj.body).decode("utf-8", errors="replace")

    @admin.action(description=_("Retry the selected parked deliveries"))
    def retry(self, request, queryset):
        count = services.retry_parked(queryset.values_list("pk", flat=True))
        services.kick()
        self.message_user(
            request,
            ngettext(
                "%(count)d delivery queued again.", "%(count)d deliveries queued again.", count
            )
            % {"count": count},
            messages.SUCCESS,
        )
