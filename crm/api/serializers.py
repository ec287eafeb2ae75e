from phonenumber_field.serializerfields import PhoneNumberField
from rest_framework import serializers

from crm.models import Client


class ClientSerializer(serializers.ModelSerializer):
    phone = PhoneNumberField(required=False, allow_blank=True)

    class Meta:
        model = Client
        fields = [
            "id",
            "name",
            "phone",
            "email",
            "telegram_user_id",
            "telegram_username",
            "notes",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class ClientMergeInputSerializer(serializers.Serializer):
    other = serializers.IntegerField(
        help_text="The duplicate's id (your company's): it is merged into the client in the "
        "path and deleted"
    )


class ClientMergeSerializer(serializers.Serializer):
    """What a merge did (the ClientMerge record)."""

    id = serializers.IntegerField()
    kept = serializers.IntegerField(source="kept_id")
    merged_client_id = serializers.IntegerField()
    snapshot = serializers.JSONField(help_text="The merged client as it was")
    conversations_moved = serializers.IntegerField()
    deals_moved = serializers.IntegerField()
    actor = serializers.IntegerField(source="actor_id", allow_null=True)
    created_at = serializers.DateTimeField()
    client = ClientSerializer(source="kept", help_text="The kept client after the merge")


class ClientImportInputSerializer(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True,
        use_url=False,
        help_text="UTF-8 CSV, a header naming some of: name, phone, email, telegram_user_id, "
        "telegram_username, notes; at most 10 MB and 50,000 lines",
    )


class ClientImportLineErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField(help_text="The line's number in the file (1: the header)")
    field = serializers.CharField()
    message = serializers.CharField()


class ClientImportResultSerializer(serializers.Serializer):
    imported = serializers.IntegerField()


class ClientImportErrorSerializer(serializers.Serializer):
    """A 400: `file` as sentences; `lines` when the CSV was read (bad lines, their numbers and
    fields). A request without a file gets `file` alone."""

    file = serializers.ListField(child=serializers.CharField(), required=False)
    lines = ClientImportLineErrorSerializer(many=True, required=False)
