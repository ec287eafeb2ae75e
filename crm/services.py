"""Writes shared by every app, and the Client writes."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, router, transaction

from crm.models import Client


def save_validated(instance: models.Model, unique_per_company: tuple[str, ...] = ()) -> models.Model:
    """Validate and save one tenant row.

    Field validators run on the model; each field in `unique_per_company` that has a value
    must not repeat within the row's company, and a clash is reported on that field (also
    when a concurrent insert wins the race and the database constraint fires).
    """
    errors = {}
    company_field = instance.tenant_path
    company_id = getattr(instance, f"{company_field}_id", None) if "__" not in company_field else None
    try:
        instance.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            errors.setdefault(field, []).extend(messages)
    for field in unique_per_company:
        if field in errors:
            continue
        value = getattr(instance, field)
        if value in (None, ""):
            continue
        clash = type(instance)._default_manager.filter(
            **{f"{company_field}_id": company_id, field: value}
        ).exclude(pk=instance.pk)
        if clash.exists():
            label = instance._meta.get_field(field).verbose_name
            errors[field] = [f"Another {instance._meta.verbose_name} in your company has this {label}."]
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError:
        if unique_per_company:
            raise ValidationError(
                {unique_per_company[0]: ["This conflicts with a record saved at the same time."]}
            ) from None
        raise
    return instance


def delete_in_database(instance: models.Model) -> int:
    """Delete a row with one SQL DELETE; PostgreSQL's ON DELETE CASCADE removes its tree.

    Unlike Model.delete(), nothing is loaded into Python, so a parent with a million
    children takes one statement and flat memory.
    """
    queryset = type(instance)._base_manager.filter(pk=instance.pk)
    with transaction.atomic(using=router.db_for_write(type(instance))):
        return queryset._raw_delete(queryset.db)


CLIENT_FIELDS = ("name", "phone", "email", "telegram_user_id", "telegram_username", "notes")
CLIENT_UNIQUE_FIELDS = ("phone", "email", "telegram_user_id")


def _apply(instance, fields, allowed):
    for name, value in fields.items():
        if name not in allowed:
            raise TypeError(f"unexpected field {name!r}")
        setattr(instance, name, value)


def create_client(actor, **fields) -> Client:
    client = Client(company=actor.company)
    _apply(client, fields, CLIENT_FIELDS)
    return save_validated(client, CLIENT_UNIQUE_FIELDS)


def update_client(actor, client: Client, **fields) -> Client:
    _apply(client, fields, CLIENT_FIELDS)
    return save_validated(client, CLIENT_UNIQUE_FIELDS)
