"""Deletes PostgreSQL performs by a trigger instead of a foreign key (a conversation names its
source by platform and id: messaging.db). Registered here so that what walks the cascades — the
admin's deletion preview (crm.admin_utils.cascade_querysets) — counts them like any other."""

from collections.abc import Callable

# parent model -> [(child model label "app.Model", condition(doomed parents) -> Q on the child)]
_BY_TRIGGER: dict[type, list[tuple[str, Callable]]] = {}


def register(parent: type, child_label: str, condition: Callable) -> None:
    """Deleting `parent` rows also deletes the `child_label` rows that `condition(parents)`
    matches, `parents` being a queryset of the doomed parent rows."""
    entries = _BY_TRIGGER.setdefault(parent, [])
    entries[:] = [entry for entry in entries if entry[0] != child_label] + [
        (child_label, condition)
    ]


def by_trigger(parent: type) -> list[tuple[str, Callable]]:
    return list(_BY_TRIGGER.get(parent, ()))
