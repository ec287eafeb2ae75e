"""Account pages: the page guard every page uses, and the user's own API tokens."""

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts import services
from accounts.forms import ApiTokenForm, ProfileForm


def company_member_required(view):
    """The one guard for pages: signed in, and a member of a company.

    Anonymous users go to the login page; platform superusers without a company have no
    tenant data to show, so they go to the admin. Put it outermost (above require_POST etc.)
    so an anonymous request always gets the login redirect first.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            response = redirect_to_login(request.get_full_path())
            if getattr(request, "htmx", False):
                # A partial swap would paste the login page into the page; reload instead.
                return HttpResponseClientRedirect(response.url)
            return response
        if not user.company_id:
            return redirect("admin:index")
        if not user.company.is_active:
            logout(request)
            messages.error(request, COMPANY_INACTIVE)
            return redirect_to_login(request.get_full_path())
        if (
            user.is_read_only
            and request.method not in ("GET", "HEAD", "OPTIONS")
            and getattr(request.resolver_match, "url_name", "") not in PERSONAL_WRITES
        ):
            raise PermissionDenied(_("Supervisors can read but not change anything."))
        return view(request, *args, **kwargs)

    return wrapper


# Pages a read-only supervisor may still post to: their own password, tokens and presence.
PERSONAL_WRITES = {"password_change", "api_tokens", "api_token_revoke", "presence_away"}
COMPANY_INACTIVE = gettext_lazy(
    "Your company's account is deactivated. Contact Switchboard support to reactivate it."
)


@company_member_required
@never_cache  # the response after creation carries the raw token
def api_tokens(request):
    form = ApiTokenForm(request.POST if request.method == "POST" else None)
    raw_token = None
    if form.is_valid():
        token, raw_token = services.issue_api_token(request.user, form.cleaned_data["name"])
        messages.success(
            request,
            _("Token “%(name)s” created. Copy it now: it is shown only once.")
            % {"name": token.name},
        )
        form = ApiTokenForm()
    # Rendered, not redirected: the raw token must not be stored anywhere to survive a redirect.
    return render(
        request,
        "accounts/api_tokens.html",
        {"form": form, "raw_token": raw_token, "tokens": request.user.api_tokens.all()},
    )


@company_member_required
@require_POST
def api_token_revoke(request, pk):
    token = get_object_or_404(request.user.api_tokens.all(), pk=pk)  # only your own tokens
    services.revoke_api_token(request.user, token)
    messages.success(request, _("Token “%(name)s” revoked.") % {"name": token.name})
    return redirect("api_tokens")


def locked_out(request, credentials=None, *args, **kwargs):
    """django-axes: too many wrong passwords for this account or from this address. The log-in
    page again, saying so plainly, with 429."""
    from django.conf import settings
    from django.contrib.auth.forms import AuthenticationForm
    from django.utils.translation import gettext as _

    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = _(
        "Too many failed log-ins for this account or from this network. Try again in "
        "%(minutes)d minutes, or ask your company admin to reset your password."
    ) % {"minutes": minutes}
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    context = {"form": form, "locked_out": message, "next": request.POST.get("next", "")}
    return render(request, "registration/login.html", context, status=429)


@company_member_required
def profile(request):
    """The user's own settings: the language of their pages."""
    form = ProfileForm(request.POST or None, initial={"language": request.user.language})
    if request.method == "POST" and form.is_valid():
        services.set_language(request.user, form.cleaned_data["language"])
        translation.activate(request.user.language or translation.get_language())
        messages.success(request, _("Your profile is saved."))
        response = redirect("profile")
        # The login page (before anyone is signed in) follows the same choice.
        if request.user.language:
            response.set_cookie(
                settings.LANGUAGE_COOKIE_NAME, request.user.language, max_age=365 * 24 * 3600
            )
        else:
            response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)
        return response
    return render(request, "accounts/profile.html", {"form": form})
