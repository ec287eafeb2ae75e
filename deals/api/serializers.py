from rest_framework import serializers

from crm.api.status import StatusLabelMixin

from ..currencies import ISO_4217
from ..models import Deal, Pipeline, Stage, StageChange


class StageSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(
        required=False, help_text="an existing stage's id; omit for a new one"
    )
    name = serializers.CharField(max_length=100)

    class Meta:
        model = Stage
        fields = ["id", "name", "position"]
        read_only_fields = ["position"]


class PipelineSerializer(serializers.ModelSerializer):
    stages = StageSerializer(many=True, help_text="in board order; a stage left out is removed")

    class Meta:
        model = Pipeline
        fields = ["id", "name", "is_default", "stages", "created_at"]
        read_only_fields = ["id", "is_default", "created_at"]


class PipelineDeletePreviewSerializer(serializers.Serializer):
    deals = serializers.IntegerField()
    open = serializers.IntegerField()
    won = serializers.IntegerField()
    lost = serializers.IntegerField()
    stages = serializers.IntegerField()
    history = serializers.IntegerField()


class DealSerializer(StatusLabelMixin, serializers.ModelSerializer):
    pipeline = serializers.IntegerField(source="pipeline_id", required=False, allow_null=True)
    stage = serializers.IntegerField(source="stage_id", required=False, allow_null=True)
    client = serializers.IntegerField(source="client_id")
    owner = serializers.IntegerField(source="owner_id", required=False, allow_null=True)
    conversation = serializers.IntegerField(
        source="conversation_id", required=False, allow_null=True
    )
    currency = serializers.ChoiceField(choices=sorted(ISO_4217), required=False)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0, required=False)

    class Meta:
        model = Deal
        fields = [
            "id",
            "title",
            "amount",
            "currency",
            "pipeline",
            "stage",
            "client",
            "owner",
            "conversation",
            "expected_close_date",
            "status",
            "status_label",
            "lost_reason",
            "closed_at",
            "auto_created",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "status",
            "lost_reason",
            "closed_at",
            "auto_created",
            "created_at",
            "updated_at",
        ]


class DealMoveSerializer(serializers.Serializer):
    stage = serializers.IntegerField(help_text="a stage of the deal's pipeline")


class DealCloseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Deal.Status.choices)
    lost_reason = serializers.CharField(
        max_length=300, required=False, allow_blank=True, default=""
    )


class StageChangeSerializer(serializers.ModelSerializer):
    actor = serializers.IntegerField(source="actor_id", allow_null=True)

    class Meta:
        model = StageChange
        fields = [
            "id",
            "from_stage",
            "to_stage",
            "from_name",
            "to_name",
            "from_status",
            "to_status",
            "reason",
            "actor",
            "created_at",
        ]
