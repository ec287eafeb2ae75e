from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from . import views

urlpatterns = [
    path("settings/members/", views.members_page, name="members"),
    path("settings/members/<int:pk>/", views.member_update, name="member_update"),
    path("settings/members/<int:pk>/active/", views.member_active, name="member_active"),
    path(
        "settings/members/<int:pk>/reset-password/",
        views.member_reset_password,
        name="member_reset_password",
    ),
    path(
        "settings/invitations/<int:pk>/withdraw/",
        views.invitation_withdraw,
        name="invitation_withdraw",
    ),
    path("settings/members/visibility/", views.visibility_update, name="visibility_update"),
    path("settings/teams/", views.teams_page, name="teams"),
    path("settings/teams/new/", views.team_create, name="team_create"),
    path("settings/teams/<int:pk>/", views.team_edit, name="team_edit"),
    path("settings/teams/<int:pk>/delete/", views.team_delete, name="team_delete"),
    path("presence/away/", views.presence_away, name="presence_away"),
    # Public: the link is the credential.
    path("invite/<str:key>/", views.invitation_accept, name="invitation_accept"),
    path(
        "password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="teams/password_reset_confirm.html",
            success_url=reverse_lazy("password_reset_complete"),
        ),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="teams/password_reset_complete.html"
        ),
        name="password_reset_complete",
    ),
]
