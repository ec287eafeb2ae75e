from rest_framework import serializers

from ..models import ExportJob


class ExportJobSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "kind",
            "object_id",
            "subject_name",
            "state",
            "error",
            "conversations_done",
            "conversations_total",
            "messages_done",
            "files_done",
            "percent",
            "size",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "expires_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, job) -> str | None:
        """The archive's URL once it is `done` (None before, and after it expired)."""
        if job.state != ExportJob.State.DONE:
            return None
        request = self.context.get("request")
        path = f"/api/v1/exports/{job.pk}/download/"
        return request.build_absolute_uri(path) if request else path


class ExportStartSerializer(serializers.Serializer):
    kind = serializers.CharField(
        max_length=10,
        help_text="A channel's platform (whatsapp, telegram, email, messenger, instagram, …) "
        "for one of its numbers/accounts, or `client`.",
    )
    object_id = serializers.IntegerField(
        min_value=1, help_text="The number's, account's, mailbox's, page's or client's id."
    )
