"""/api/v1/members/, /api/v1/invitations/, /api/v1/teams/ and /api/v1/me/presence/.
Members and invitations are for company admins (supervisors read them); teams are read by everyone and changed by
admins. Writes go through teams.services."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action, api_view
from rest_framework.response import Response

from accounts import presence
from accounts.models import Role, User
from accounts.permissions import IsCompanyAdminOrReadOnly, IsCompanyAdminOrSupervisor
from accounts.scoping import scoped

from . import selectors, services
from .models import Invitation, Team


class MemberSerializer(serializers.ModelSerializer):
    presence = serializers.SerializerMethodField()
    team_ids = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "first_name",
            "last_name",
            "email",
            "role",
            "is_active",
            "max_open_conversations",
            "is_away",
            "presence",
            "team_ids",
        ]
        read_only_fields = ["id", "username", "first_name", "last_name", "email", "is_away"]

    def get_presence(self, member) -> str:
        online = self.context.get("online")
        if online is None:
            online = self.context["online"] = presence.online_user_ids(member.company_id)
        return presence.status_of(member, online)

    def get_team_ids(self, member) -> list[int]:
        return [team.pk for team in member.teams.all()]


class MemberViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """The company's people. PATCH changes role, `is_active` (false: logged out everywhere,
    tokens revoked, sockets closed) and `max_open_conversations`."""

    serializer_class = MemberSerializer
    permission_classes = [IsCompanyAdminOrSupervisor]
    queryset = User.objects.none()  # for the schema

    def get_queryset(self):
        return scoped(User, self.request.user).prefetch_related("teams").order_by("username")

    def perform_update(self, serializer):
        data = serializer.validated_data
        kwargs = {}
        if "max_open_conversations" in data:
            kwargs["max_open_conversations"] = data["max_open_conversations"]
        serializer.instance = services.update_member(
            self.request.user,
            serializer.instance,
            role=data.get("role"),
            is_active=data.get("is_active"),
            **kwargs,
        )

    @extend_schema(request=None, responses={202: None})
    @action(detail=True, methods=["post"], url_path="reset-password")
    def reset_password(self, request, pk=None):
        """Mail the member a link to choose a new password."""
        services.send_password_reset(
            request.user, self.get_object(), base_url=request.build_absolute_uri("/")
        )
        return Response(status=status.HTTP_202_ACCEPTED)


class InvitationSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.AGENT)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "state", "created_at", "expires_at", "accepted_at"]
        read_only_fields = ["id", "state", "created_at", "expires_at", "accepted_at"]


class InvitationViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Invitations. Create with `email` (a mail with the link goes there) or without (copy
    the returned `link`; it is returned once, on creation). Delete withdraws one."""

    serializer_class = InvitationSerializer
    permission_classes = [IsCompanyAdminOrSupervisor]
    queryset = Invitation.objects.none()

    def get_queryset(self):
        return scoped(Invitation, self.request.user)

    @extend_schema(
        responses={
            201: inline_serializer(
                "InvitationCreated",
                {"id": serializers.IntegerField(), "link": serializers.URLField()},
            )
        }
    )
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation, link = services.invite(
            request.user,
            email=serializer.validated_data.get("email", ""),
            role=serializer.validated_data["role"],
            base_url=request.build_absolute_uri("/"),
        )
        data = dict(InvitationSerializer(invitation).data, link=link)
        return Response(data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.withdraw_invitation(self.request.user, instance)


class TeamSerializer(serializers.ModelSerializer):
    member_ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, write_only=True
    )
    members = serializers.SerializerMethodField()
    hours = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField(), min_length=2, max_length=2),
        required=False,
        help_text='By weekday, Monday "0": ["09:00", "18:00"]; a missing day is closed.',
    )

    class Meta:
        model = Team
        fields = [
            "id",
            "name",
            "members",
            "member_ids",
            "hours_enabled",
            "timezone",
            "hours",
            "away_message",
            "created_at",
        ]
        read_only_fields = ["id", "members", "created_at"]

    def get_members(self, team) -> list[int]:
        return [member.pk for member in team.members.all()]


class TeamViewSet(viewsets.ModelViewSet):
    """Teams with members and business hours. Channel rows name their team (`team`) and
    how new conversations are assigned (`distribution`) in their own endpoints."""

    serializer_class = TeamSerializer
    permission_classes = [IsCompanyAdminOrReadOnly]
    queryset = Team.objects.none()

    def get_queryset(self):
        return selectors.teams(self.request.user)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        member_ids = data.pop("member_ids", None)
        serializer.instance = services.save_team(self.request.user, member_ids=member_ids, **data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        member_ids = data.pop("member_ids", None)
        serializer.instance = services.save_team(
            self.request.user, serializer.instance, member_ids=member_ids, **data
        )

    def perform_destroy(self, instance):
        services.delete_team(self.request.user, instance)


PresenceSerializer = inline_serializer(
    "Presence",
    {
        "away": serializers.BooleanField(),
        "status": serializers.ChoiceField(choices=["online", "away", "offline"]),
        "online_user_ids": serializers.ListField(child=serializers.IntegerField()),
    },
)


@extend_schema(
    methods=["GET"], responses=PresenceSerializer, description="Your presence and who is online."
)
@extend_schema(
    methods=["POST"],
    request=inline_serializer("AwayToggle", {"away": serializers.BooleanField()}),
    responses=PresenceSerializer,
    description="Set yourself away (no new conversations) or back.",
)
@api_view(["GET", "POST"])
def my_presence(request):
    if request.method == "POST":
        away = request.data.get("away") if isinstance(request.data, dict) else None
        if not isinstance(away, bool):
            return Response({"away": ["Must be true or false."]}, status=400)
        services.set_away(request.user, away)
    online = presence.online_user_ids(request.user.company_id)
    return Response(
        {
            "away": request.user.is_away,
            "status": presence.status_of(request.user, online),
            "online_user_ids": sorted(online),
        }
    )


my_presence.cls.personal_writes = True  # supervisors may set themselves away

ROUTES = (
    ("members", MemberViewSet, "member"),
    ("invitations", InvitationViewSet, "invitation"),
    ("teams", TeamViewSet, "team"),
)
