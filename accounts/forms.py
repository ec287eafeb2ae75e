from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts.models import ApiToken


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        help_text=_("What uses it, e.g. “reporting script”."),
    )


class ProfileForm(forms.Form):
    """What a user sets for themselves: the language of their pages."""

    language = forms.ChoiceField(
        label=_("Language"),
        required=False,
        choices=[("", _("As my browser asks"))] + list(settings.LANGUAGES),
        help_text=_("The language of your pages, dates and numbers."),
    )


class LoginForm(AuthenticationForm):
    """The log-in form: the right password of someone whose company is deactivated is told
    so, in a sentence, and not logged in."""

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if user.company_id and not user.company.is_active:
            from accounts.views import COMPANY_INACTIVE

            raise ValidationError(COMPANY_INACTIVE, code="company_inactive")
