from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


class CompanyModelBackend(ModelBackend):
    """Django's model backend; the signed-in user comes with their company (one query: every
    page checks the company is active and shows its name)."""

    def get_user(self, user_id):
        model = get_user_model()
        user = model._default_manager.select_related("company").filter(pk=user_id).first()
        return user if user is not None and self.user_can_authenticate(user) else None
