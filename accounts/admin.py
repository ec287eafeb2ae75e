from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.utils.translation import gettext as _

from accounts.models import ApiToken, Company, User
from channels_integrations.models import EmailAccount, TelegramAccount, WhatsAppNumber
from crm.admin_utils import DatabaseCascadeDeleteMixin, ReadOnlyInlineMixin, count_subquery
from messaging.models import Conversation

# ---------------------------------------------------------------- Company


class MemberInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = User
    fields = ("username", "email", "role", "is_active")
    readonly_fields = fields
    verbose_name = "member"
    verbose_name_plural = "members"


class WhatsAppNumberInline(ReadOnlyInlineMixin, admin.TabularInline):
    # Only these columns: the secrets are never part of an inline.
    model = WhatsAppNumber
    fields = ("phone", "display_name", "provider", "status", "is_active")
    readonly_fields = fields


class TelegramAccountInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = TelegramAccount
    fields = ("name", "phone", "status", "is_active", "last_event_at")
    readonly_fields = fields


class EmailAccountInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = EmailAccount
    fields = ("address", "owner", "status", "is_active", "last_poll_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner")


@admin.register(Company)
class CompanyAdmin(DatabaseCascadeDeleteMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "slug",
        "is_active",
        "member_count",
        "number_count",
        "conversation_count",
        "created_at",
    )
    list_filter = ("is_active", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at",)
    inlines = (MemberInline, WhatsAppNumberInline, TelegramAccountInline, EmailAccountInline)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_count=count_subquery(User, "company"),
                number_count=count_subquery(WhatsAppNumber, "company"),
                conversation_count=count_subquery(Conversation, "company"),
            )
        )

    @admin.display(description="members", ordering="member_count")
    def member_count(self, obj):
        return obj.member_count

    @admin.display(description="WhatsApp numbers", ordering="number_count")
    def number_count(self, obj):
        return obj.number_count

    @admin.display(description="conversations", ordering="conversation_count")
    def conversation_count(self, obj):
        return obj.conversation_count


# ---------------------------------------------------------------- User


class CompanyRequiredMixin:
    """A clear field error instead of the database's check constraint."""

    def clean(self):
        cleaned_data = super().clean()
        is_superuser = cleaned_data.get(
            "is_superuser", getattr(self.instance, "is_superuser", False)
        )
        if "company" in self.fields and not cleaned_data.get("company") and not is_superuser:
            self.add_error("company", _("Every user except a superuser belongs to a company."))
        return cleaned_data


class UserAdminChangeForm(CompanyRequiredMixin, UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User


class UserAdminCreationForm(CompanyRequiredMixin, AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserAdminChangeForm
    add_form = UserAdminCreationForm
    fieldsets = (
        *DjangoUserAdmin.fieldsets[:1],
        ("Company", {"fields": ("company", "role")}),
        *DjangoUserAdmin.fieldsets[1:],
    )
    add_fieldsets = (
        *DjangoUserAdmin.add_fieldsets,
        ("Company", {"classes": ("wide",), "fields": ("email", "company", "role")}),
    )
    list_display = (
        "username",
        "email",
        "company",
        "role",
        "is_active",
        "is_staff",
        "is_superuser",
        "last_login",
    )
    list_filter = ("role", "is_active", "is_staff", "is_superuser", "company")
    list_select_related = ("company",)
    search_fields = ("username", "first_name", "last_name", "email", "company__name")
    autocomplete_fields = ("company",)


# ---------------------------------------------------------------- API tokens


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("name",)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued by the app (the raw value is shown once there); here: view, rename,
    revoke. The hash is never shown."""

    form = ApiTokenForm
    fields = ("name", "user", "company", "key_hint", "created_at", "last_used_at")
    readonly_fields = ("user", "company", "key_hint", "created_at", "last_used_at")
    exclude = ("key_hash",)
    list_display = ("name", "user", "company", "key_hint", "created_at", "last_used_at")
    list_filter = ("user__company", "created_at", "last_used_at")
    list_select_related = ("user", "user__company")
    search_fields = ("name", "^key_hint", "user__username", "user__email")

    def has_add_permission(self, request):
        return False

    @admin.display(description="company", ordering="user__company__name")
    def company(self, obj):
        return obj.user.company
