"""Settings → Instagram & Messenger forms (plain forms: the service validates the rows)."""

from django import forms
from django.utils.translation import gettext_lazy as _

from teams.forms import TeamRoutingMixin

from ..forms import SecretInput

SECRET_NAMES = ("page_access_token", "app_secret", "verify_token")


class MessengerPageForm(TeamRoutingMixin, forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    page_id = forms.RegexField(
        label=_("Facebook Page id"),
        regex=r"^[0-9]{1,30}$",
        max_length=30,
        error_messages={"invalid": _("A Page id is digits only.")},
    )
    page_access_token = forms.CharField(
        label=_("Page access token"), required=False, widget=SecretInput
    )
    app_secret = forms.CharField(label=_("App secret"), required=False, widget=SecretInput)
    verify_token = forms.CharField(
        label=_("Webhook verify token"),
        required=False,
        widget=SecretInput,
        help_text=_("Any phrase; give Meta the same one with the callback URL."),
    )
    human_agent_tag = forms.BooleanField(
        label=_("Human agent tag (replies up to 7 days after the client wrote)"),
        required=False,
        help_text=_("Only if Meta granted your app the Human Agent permission."),
    )
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)

    def __init__(self, *args, secrets_set: dict[str, bool] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        for name in SECRET_NAMES:
            if secrets_set is None:
                self.fields[name].required = True
            elif secrets_set.get(name):
                self.fields[name].help_text = _("Set. Leave blank to keep the stored value.")


class InstagramAccountForm(MessengerPageForm):
    ig_user_id = forms.RegexField(
        label=_("Instagram account id"),
        regex=r"^[0-9]{1,30}$",
        max_length=30,
        help_text=_("The Instagram professional account linked to the Page (digits)."),
        error_messages={"invalid": _("An Instagram account id is digits only.")},
    )

    field_order = ["name", "ig_user_id", "page_id"]
