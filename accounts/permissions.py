from rest_framework.permissions import SAFE_METHODS, BasePermission


class IsCompanyMember(BasePermission):
    """Signed in, belonging to an active company (platform superusers without one use the
    admin); supervisors read only."""

    message = "You must belong to a company to use the API."

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated and user.company_id):
            return False
        if not user.company.is_active:
            self.message = "Your company's account is deactivated."
            return False
        personal = getattr(view, "personal_writes", False)  # e.g. one's own API tokens
        if user.is_read_only and request.method not in SAFE_METHODS and not personal:
            self.message = "Supervisors can read but not change anything."
            return False
        return True


class IsCompanyAdminOrReadOnly(IsCompanyMember):
    """Agents may read; only company admins may change."""

    message = "Only company admins can change this."

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        return request.method in SAFE_METHODS or request.user.is_company_admin


class IsCompanyAdmin(IsCompanyMember):
    """Only company admins, for reading too (members, invitations)."""

    message = "Only company admins can do this."

    def has_permission(self, request, view):
        return super().has_permission(request, view) and request.user.is_company_admin


class IsCompanyAdminOrSupervisor(IsCompanyMember):
    """Company admins; supervisors read (their writes are refused by IsCompanyMember); agents
    get 403 (members, invitations)."""

    message = "Only company admins can do this."

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        return request.user.is_company_admin or request.user.is_read_only
