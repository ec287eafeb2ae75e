"""What the page forms of every channel share (each channel keeps its forms in its folder). Plain forms: model validation and per-company uniqueness
are the service's job (services.save_channel), whose errors the views put back on these fields."""

from django import forms
from django.utils.translation import gettext_lazy


class SecretInput(forms.PasswordInput):
    """A password input that never carries a value into the page, not even the one just
    posted when the form comes back with an error."""

    def __init__(self, attrs=None):
        super().__init__(
            attrs={"autocomplete": "new-password", **(attrs or {})}, render_value=False
        )


class KeptSecrets:
    """Secrets typed into a form that came back because another field failed: kept
    server-side in the session (never written into the page), and used again when the next
    post leaves them blank, so nobody types an api_hash or a password twice.

    `post = kept.fill(request.POST)` before binding; `kept.keep(form)` when the form comes
    back with errors (it also says so under each kept field); `kept.clear()` once saved."""

    NOTE = gettext_lazy("Kept from your last attempt (not shown). Leave blank to use it.")

    def __init__(self, request, key: str, names):
        self.session = request.session
        self.key = f"kept-secrets:{key}"
        self.names = tuple(names)

    def fill(self, data):
        kept = self.session.get(self.key) or {}
        if not kept:
            return data
        data = data.copy()
        for name in self.names:
            if not data.get(name) and kept.get(name):
                data[name] = kept[name]
        return data

    def keep(self, form) -> None:
        values = {name: form.data.get(name, "") for name in self.names if form.data.get(name)}
        if values:
            self.session[self.key] = values
        for name in values:
            if name in form.fields:
                form.fields[name].help_text = self.NOTE
                form[name].help_text = self.NOTE  # the bound field copied it when cleaning

    def clear(self) -> None:
        self.session.pop(self.key, None)
