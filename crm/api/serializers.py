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
