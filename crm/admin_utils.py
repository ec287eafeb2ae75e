"""Pieces shared by every app's admin.

- `restrict_to_superusers(site)`: the admin is for platform superusers only (company admins
  manage their company through the app's own Settings pages).
- `SecretFieldsAdminMixin`: SecretField values are write-only in the admin.
- `DatabaseCascadeDeleteMixin`: delete with one SQL DELETE (PostgreSQL's ON DELETE CASCADE
  removes the tree) and show counts instead of every object on the confirmation page.
- `ReadOnlyInlineMixin`, `count_subquery`: small helpers.
"""

from collections import defaultdict

from django import forms
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.utils import quote
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models, router, transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.text import capfirst

from crm.db import cascades
from crm.fields import SecretField
from crm.services import delete_in_database

# ---------------------------------------------------------------- superusers only


def superuser_only(request) -> bool:
    user = request.user
    return user.is_active and user.is_staff and user.is_superuser


class SuperuserAuthenticationForm(AdminAuthenticationForm):
    """The admin login refuses staff who are not superusers (same message as a bad password)."""

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not user.is_superuser:
            raise ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


def restrict_to_superusers(site: admin.AdminSite) -> None:
    """Let only active superusers into `site` (called once, for the default site)."""
    site.has_permission = superuser_only
    site.login_form = SuperuserAuthenticationForm


# ---------------------------------------------------------------- secrets

SECRET_HELP_TEXT = "Leave blank to keep the current value."
SECRET_ADD_HELP_TEXT = "Leave blank to leave it unset."


class SecretFormField(forms.CharField):
    """A write-only secret: never rendered, blank means "keep what is stored"."""

    def __init__(self, **kwargs):
        kwargs.update(
            required=False,
            strip=False,  # a password may legitimately start or end with a space
            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        )
        kwargs.setdefault("help_text", SECRET_HELP_TEXT)
        super().__init__(**kwargs)


class SecretFieldsModelForm(forms.ModelForm):
    """A ModelForm whose SecretFormFields start blank and, left blank, keep the stored value."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.secret_field_names:
            # Never carry the decrypted value in the form, and don't report it as changed.
            self.initial[name] = ""
            if self.instance.pk is None:
                self.fields[name].help_text = SECRET_ADD_HELP_TEXT

    @property
    def secret_field_names(self) -> list[str]:
        return [name for name, field in self.fields.items() if isinstance(field, SecretFormField)]

    def clean(self):
        cleaned_data = super().clean()
        for name in self.secret_field_names:
            value = cleaned_data.get(name)
            if value is None or not value.strip():
                # Not in cleaned_data -> construct_instance() leaves the stored value alone.
                cleaned_data.pop(name, None)
        return cleaned_data


def _secret_status(name: str):
    @admin.display(description=f"{name.replace('_', ' ')} stored")
    def status(self, obj):
        return "set" if obj is not None and getattr(obj, name) else "not set"

    status.__name__ = f"{name}_status"
    return status


class SecretFieldsAdminMixin:
    """Masks the model's SecretFields in the change form.

    Each secret is a PasswordInput that never renders a value ("leave blank to keep"), and a
    read-only `<name>_status` field ("set" / "not set") is added for each one listed in
    `secret_fields` (use those names in `fieldsets`). Every SecretField of the model must be
    listed; any SecretField is masked regardless.
    """

    secret_fields: tuple[str, ...] = ()
    form = SecretFieldsModelForm

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        status_fields = []
        for name in cls.secret_fields:
            setattr(cls, f"{name}_status", _secret_status(name))
            status_fields.append(f"{name}_status")
        cls.readonly_fields = tuple(dict.fromkeys([*cls.readonly_fields, *status_fields]))

    def __init__(self, model, admin_site):
        missing = [
            field.name
            for field in model._meta.get_fields()
            if isinstance(field, SecretField) and field.name not in self.secret_fields
        ]
        if missing:
            raise ImproperlyConfigured(
                f"{type(self).__name__}.secret_fields must list {', '.join(missing)}"
            )
        if not issubclass(self.form, SecretFieldsModelForm):
            raise ImproperlyConfigured(
                f"{type(self).__name__}.form must be a SecretFieldsModelForm"
            )
        super().__init__(model, admin_site)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, SecretField):
            return SecretFormField(
                label=capfirst(db_field.verbose_name), validators=db_field.validators
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)


# ---------------------------------------------------------------- deletion


def _cascade_relations(model):
    """(child model, condition(doomed parents) -> Q on the child) for each relation that
    cascades from model: its ON DELETE CASCADE foreign keys and the deletes its triggers do."""
    for rel in model._meta.get_fields(include_hidden=True):
        if (
            rel.auto_created
            and not rel.concrete
            and (rel.one_to_many or rel.one_to_one)
            and rel.on_delete is models.CASCADE
        ):
            fk, target = rel.field.name, rel.field.target_field.name
            yield (
                rel.related_model,
                lambda doomed, fk=fk, target=target: Q(**{f"{fk}__in": doomed.values(target)}),
            )
    for label, condition in cascades.by_trigger(model):
        yield apps.get_model(label), condition


def cascade_querysets(model, pks, using=None) -> dict:
    """{model: queryset of its rows that deleting `model` rows `pks` removes}.

    Follows every ON DELETE CASCADE relation; a row goes if any of its cascading foreign keys
    points at a row that goes. Nothing is evaluated here: the querysets nest as subqueries.
    """
    using = using or router.db_for_write(model)
    parents_of = defaultdict(list)  # child -> [(condition, parent model)]
    found, queue = [model], [model]
    while queue:
        parent = queue.pop(0)
        for child, condition in _cascade_relations(parent):
            if child is parent:
                continue  # self-references: not followed (no such relation in this project)
            parents_of[child].append((condition, parent))
            if child not in found:
                found.append(child)
                queue.append(child)

    doomed = {model: model._base_manager.using(using).filter(pk__in=pks)}
    pending = found[1:]
    while pending:
        ready = [m for m in pending if all(p in doomed for _, p in parents_of[m])]
        if not ready:  # a cycle: resolve what is left from the parents resolved so far
            ready = pending[:1]
        for child in ready:
            condition = Q()
            for relation, parent in parents_of[child]:
                if parent in doomed:
                    condition |= relation(doomed[parent])
            doomed[child] = child._base_manager.using(using).filter(condition)
            pending.remove(child)
    return doomed


def _admin_link(admin_site, obj) -> str:
    opts = obj._meta
    try:
        url = reverse(
            f"{admin_site.name}:{opts.app_label}_{opts.model_name}_change", args=(quote(obj.pk),)
        )
    except NoReverseMatch:
        return f"{capfirst(opts.verbose_name)}: {obj}"
    return format_html('{}: <a href="{}">{}</a>', capfirst(opts.verbose_name), url, obj)


class DatabaseCascadeDeleteMixin:
    """Delete through one SQL DELETE per object; the database cascades.

    The confirmation page lists the selected objects and, per model, a COUNT of the rows that
    go with them, instead of loading every related row as Django's collector would.
    """

    def delete_model(self, request, obj):
        delete_in_database(obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic(using=router.db_for_write(self.model)):
            for obj in queryset.only("pk"):
                delete_in_database(obj)

    def get_deleted_objects(self, objs, request):
        objs = list(objs)
        if not objs:
            return [], {}, set(), []
        model_count, perms_needed, lines = {}, set(), []
        for model, queryset in cascade_querysets(self.model, [o.pk for o in objs]).items():
            count = len(objs) if model is self.model else queryset.count()
            if not count:
                continue
            opts = model._meta
            model_count[opts.verbose_name_plural] = count
            if model is not self.model:
                lines.append(f"{capfirst(opts.verbose_name_plural)}: {count}")
            if self.admin_site.is_registered(model):
                if not self.admin_site.get_model_admin(model).has_delete_permission(request):
                    perms_needed.add(opts.verbose_name)
        to_delete = [_admin_link(self.admin_site, obj) for obj in objs]
        if lines:
            if len(objs) > 1:
                to_delete.append("With them:")
            to_delete.append(lines)
        return to_delete, model_count, perms_needed, []


# ---------------------------------------------------------------- small helpers


class ReadOnlyInlineMixin:
    """An inline that only shows rows (with a link to each one's own admin page)."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def count_subquery(model, fk: str, **filters):
    """An annotation: how many `model` rows point at the outer row through `fk` (0 if none).

    A correlated subquery per row instead of JOIN + COUNT, so several counts don't multiply.
    """
    counts = (
        model._base_manager.filter(**{fk: OuterRef("pk")}, **filters)
        .order_by()
        .values(fk)
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(counts, output_field=models.IntegerField()), 0)
