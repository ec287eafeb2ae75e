from rest_framework.permissions import SAFE_METHODS, BasePermission


class IsCompanyMember(BasePermission):
    """Signed in and belonging to a company (platform superusers without one use the admin)."""

    message = "You must belong to a company to use the API."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.company_id)


class IsCompanyAdminOrReadOnly(IsCompanyMember):
    """Agents may read; only company admins may change."""

    message = "Only company admins can change this."

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        return request.method in SAFE_METHODS or request.user.is_company_admin
