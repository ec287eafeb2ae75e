"""Writes shared by every app, and the Client writes."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, router, transaction

from crm.models import Client


def _company_clashes(instance, fields) -> dict[str, list[str]]:
    """Fields whose value another row of the same company already has."""
    errors = {}
    for field in fields:
        value = getattr(instance, field)
        if value in (None, ""):
            continue
        clash = type(instance)._default_manager.filter(
            company_id=instance.company_id, **{field: value}
        )
        if clash.exclude(pk=instance.pk).exists():
            label = instance._meta.get_field(field).verbose_name
            errors[field] = [
                f"Another {instance._meta.verbose_name} in your company has this {label}."
            ]
    return errors


def save_validated(
    instance: models.Model, unique_per_company: tuple[str, ...] = ()
) -> models.Model:
    """Validate and save one row of a model with a direct `company`.

    Field validators run on the model; each field in `unique_per_company` that has a value
    must not repeat within the company, and a clash is reported on that field (also when a
    concurrent insert wins the race and the database constraint fires).
    """
    errors = {}
    try:
        instance.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    for field, messages in _company_clashes(instance, unique_per_company).items():
        errors.setdefault(field, messages)
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError:
        clashes = _company_clashes(instance, unique_per_company)
        if clashes:
            raise ValidationError(clashes) from None
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
