"""Settings → Telegram forms (the account, and the log-in's code and password steps)."""

from django import forms
from django.utils.translation import gettext_lazy as _
from phonenumber_field.formfields import PhoneNumberField

from teams.forms import TeamRoutingMixin

from ..forms import SecretInput


class TelegramAccountForm(TeamRoutingMixin, forms.Form):
    name = forms.CharField(max_length=100)
    phone = PhoneNumberField(
        help_text="The account's number, international format, e.g. +49 151 23456789.",
        widget=forms.TextInput(attrs={"type": "tel", "placeholder": "+49 151 23456789"}),
    )
    api_id = forms.IntegerField(
        min_value=1,
        max_value=2**31 - 1,
        label="api_id",
        help_text="From my.telegram.org → API development tools.",
        error_messages={
            "invalid": _("api_id must be a positive whole number (from my.telegram.org).")
        },
    )
    api_hash = forms.CharField(required=False, widget=SecretInput, label="api_hash")
    session_string = forms.CharField(
        required=False,
        widget=SecretInput,
        label="Session string (optional)",
        help_text="Paste a Telethon string session, or log in from Switchboard after saving.",
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    def __init__(self, *args, secrets_set: dict[str, bool] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if secrets_set is None:
            self.fields["api_hash"].required = True
            self.fields["api_hash"].help_text = "32 hexadecimal characters, from my.telegram.org."
            return
        for name in ("api_hash", "session_string"):
            if secrets_set.get(name):
                self.fields[name].help_text = "Set. Leave blank to keep the stored value."


class TelegramLoginForm(forms.Form):
    code = forms.CharField(required=False, max_length=16, label="Code from Telegram")
    password = forms.CharField(
        required=False, widget=SecretInput, label="Two-step verification password"
    )
