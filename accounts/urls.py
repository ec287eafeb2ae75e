from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from accounts import views
from accounts.forms import LoginForm
from accounts.views import company_member_required

# The password templates have their own names: "registration/password_change_form.html"
# is also the admin's template, which ours would otherwise replace.
password_change = auth_views.PasswordChangeView.as_view(
    template_name="registration/change_password.html",
    success_url=reverse_lazy("password_change_done"),
)
password_change_done = auth_views.PasswordChangeDoneView.as_view(
    template_name="registration/change_password_done.html",
)

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            redirect_authenticated_user=True, authentication_form=LoginForm
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", company_member_required(password_change), name="password_change"),
    path(
        "password/done/",
        company_member_required(password_change_done),
        name="password_change_done",
    ),
    path("settings/profile/", views.profile, name="profile"),
    path("settings/tokens/", views.api_tokens, name="api_tokens"),
    path("settings/tokens/<int:pk>/revoke/", views.api_token_revoke, name="api_token_revoke"),
]
