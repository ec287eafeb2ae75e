"""Page forms for connected channels. Plain forms: model validation and per-company uniqueness
are the service's job (services.save_channel), whose errors the views put back on these fields."""

import re

from django import forms
from phonenumber_field.formfields import PhoneNumberField

from .models import EmailAccount, WhatsAppNumber

NUMBER_SECRETS = ("cloud_access_token", "cloud_app_secret", "cloud_verify_token")


def _max_length(name):
    return WhatsAppNumber._meta.get_field(name).max_length


class SecretInput(forms.PasswordInput):
    """A password input that never carries a value into the page, not even the one just
    posted when the form comes back with an error."""

    def __init__(self, attrs=None):
        super().__init__(
            attrs={"autocomplete": "new-password", **(attrs or {})}, render_value=False
        )


class WhatsAppNumberForm(forms.Form):
    phone = PhoneNumberField(
        help_text="International format with country code, e.g. +49 151 23456789.",
        widget=forms.TextInput(attrs={"type": "tel", "placeholder": "+49 151 23456789"}),
    )
    display_name = forms.CharField(max_length=_max_length("display_name"), required=False)
    provider = forms.ChoiceField(
        choices=WhatsAppNumber.Provider.choices,
        initial=WhatsAppNumber.Provider.CLOUD,
        widget=forms.RadioSelect,
    )
    cloud_phone_number_id = forms.CharField(
        max_length=_max_length("cloud_phone_number_id"),
        required=False,
        label="Cloud API phone number id",
    )
    cloud_business_account_id = forms.CharField(
        max_length=_max_length("cloud_business_account_id"),
        required=False,
        label="Cloud API business account id",
    )
    cloud_access_token = forms.CharField(
        required=False, widget=SecretInput, label="Cloud API access token"
    )
    cloud_app_secret = forms.CharField(required=False, widget=SecretInput, label="App secret")
    cloud_verify_token = forms.CharField(
        required=False, widget=SecretInput, label="Webhook verify token"
    )

    def __init__(self, *args, secrets_set: dict[str, bool] | None = None, **kwargs):
        """`secrets_set` (editing): which secrets are stored, so the help text can say that a
        blank field keeps the stored value. The values themselves never reach the form."""
        super().__init__(*args, **kwargs)
        for name in NUMBER_SECRETS:
            if secrets_set is None:
                self.fields[name].help_text = "Only for the Cloud API."
            elif secrets_set.get(name):
                self.fields[name].help_text = "Set. Leave blank to keep the stored value."
            else:
                self.fields[name].help_text = "Not set."


class ConfirmDeleteForm(forms.Form):
    """The user types the number's phone to confirm; spaces and dashes don't matter."""

    confirm_phone = forms.CharField(
        label="Type the phone number to confirm",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args, expected: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.expected = expected
        self.fields["confirm_phone"].widget.attrs["placeholder"] = expected

    def clean_confirm_phone(self):
        typed = re.sub(r"[\s\-().]", "", self.cleaned_data["confirm_phone"])
        if typed.lstrip("+") != self.expected.lstrip("+"):
            raise forms.ValidationError(
                f"That is not this number. Type {self.expected} to confirm the deletion."
            )
        return typed


class TelegramAccountForm(forms.Form):
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
            "invalid": "api_id must be a positive whole number (from my.telegram.org)."
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


class EmailAccountForm(forms.Form):
    address = forms.EmailField()
    display_name = forms.CharField(max_length=100, required=False)
    imap_host = forms.CharField(max_length=255, label="IMAP host")
    imap_port = forms.IntegerField(min_value=1, max_value=65535, initial=993, label="IMAP port")
    imap_ssl = forms.BooleanField(required=False, initial=True, label="IMAP over SSL/TLS")
    smtp_host = forms.CharField(max_length=255, label="SMTP host")
    smtp_port = forms.IntegerField(min_value=1, max_value=65535, initial=465, label="SMTP port")
    smtp_security = forms.ChoiceField(
        choices=EmailAccount.SmtpSecurity.choices, initial="ssl", label="SMTP security"
    )
    username = forms.CharField(max_length=255)
    password = forms.CharField(required=False, widget=SecretInput)
    is_active = forms.BooleanField(required=False, initial=True, label="Active")
    poll_interval_seconds = forms.IntegerField(
        min_value=10, initial=60, label="Poll every (seconds)"
    )
    first_sync_days = forms.IntegerField(min_value=0, initial=30, label="First sync: last N days")
    use_idle = forms.BooleanField(
        required=False,
        label="Use IMAP IDLE",
        help_text="Near-instant delivery where the server offers it; polling stays on.",
    )

    def __init__(self, *args, password_set: bool | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if password_set is None:
            self.fields["password"].required = True
        elif password_set:
            self.fields["password"].help_text = "Set. Leave blank to keep the stored value."
