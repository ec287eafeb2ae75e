"""Serializer parts every channel's API shares."""

from rest_framework import serializers


class StrictPositiveIntegerField(serializers.IntegerField):
    """Only whole numbers: DRF's IntegerField would take 1.0, "1.0" and true."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not (
            (isinstance(data, int)) or (isinstance(data, str) and data.strip().isdigit())
        ):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if value < 1:
            self.fail("invalid")
        return value


class SecretsSerializerMixin:
    """Secrets are write-only; the read side has `<name>_set: true/false` instead."""

    secret_fields: tuple[str, ...] = ()

    def to_representation(self, instance):
        data = super().to_representation(instance)
        for name in self.secret_fields:
            data[f"{name}_set"] = bool(getattr(instance, name))
        return data
