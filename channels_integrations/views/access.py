from functools import wraps

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _


def company_admin_required(view):
    """Inside company_member_required: agents get 403 on the pages that change channels,
    bots and broadcasts."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_company_admin:
            raise PermissionDenied(_("Only company admins can change this."))
        return view(request, *args, **kwargs)

    return wrapper
