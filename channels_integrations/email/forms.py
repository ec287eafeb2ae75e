"""Settings → Email form."""

from django import forms
from django.utils.translation import gettext_lazy as _

from teams.forms import TeamRoutingMixin

from ..forms import SecretInput
from ..models import EmailAccount


class EmailAccountForm(TeamRoutingMixin, forms.Form):
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

    signature = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4}),
        label=_("Signature"),
        help_text=_("Added below every reply from this mailbox, after a “-- ” line."),
    )

    def __init__(self, *args, password_set: bool | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if password_set is None:
            self.fields["password"].required = True
        elif password_set:
            self.fields["password"].help_text = "Set. Leave blank to keep the stored value."
