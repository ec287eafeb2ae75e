"""What the page forms of every channel share (each channel keeps its forms in its folder). Plain forms: model validation and per-company uniqueness
are the service's job (services.save_channel), whose errors the views put back on these fields."""

from django import forms


class SecretInput(forms.PasswordInput):
    """A password input that never carries a value into the page, not even the one just
    posted when the form comes back with an error."""

    def __init__(self, attrs=None):
        super().__init__(
            attrs={"autocomplete": "new-password", **(attrs or {})}, render_value=False
        )
