"""Reads of export jobs: tenant-scoped (another company's job is a 404, as anywhere), then
the permission rule of services.may_access (403)."""

from django.db.models import QuerySet

from accounts.scoping import get_scoped_or_404, scoped

from .models import ExportJob


def jobs(actor) -> QuerySet:
    """The jobs `actor` may see: every job of the company for admins; an agent's own client
    exports otherwise."""
    rows = scoped(ExportJob, actor)
    if getattr(actor, "is_company_admin", False):
        return rows
    return rows.filter(kind="client", requested_by_id=getattr(actor, "pk", None))


def job_or_404(actor, pk) -> ExportJob:
    return get_scoped_or_404(ExportJob, actor, pk=pk)


def latest_for(actor, kind: str, object_id: int) -> ExportJob | None:
    """The newest job of this subject that `actor` may see (the delete pages' offer)."""
    return jobs(actor).filter(kind=kind, object_id=object_id).first()
