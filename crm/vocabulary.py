"""One status vocabulary per object: the words a person reads for a row's status, the same on
every page (`{{ row|status_label }}`), in the API (`status_label` next to `status`) and in
realtime events (messaging.events gives each socket the words in its user's language).

By default a row's words are its model's `Status` choice label. A model whose rows show more
than their column (a connection: deactivated, not logged in, waiting for capacity) registers
how with `@shows(Model)` (channels_integrations.status). Labels are lazy, so each reader gets
them in their own language.
"""

from collections.abc import Callable
from functools import cache

from django.utils.functional import Promise

Words = Promise | str
_shown: dict[type, Callable[[object], tuple[str, Words]]] = {}


def shows(*models: type) -> Callable:
    """Register `function(row) -> (code, words)` as how rows of `models` show their status."""

    def register(function: Callable[[object], tuple[str, Words]]):
        for model in models:
            _shown[model] = function
        return function

    return register


def label_for(model: type, code: str) -> Words:
    """The choice label of `code` for `model`'s `status` field (the code itself if unknown)."""
    return _labels(model).get(code, code)


@cache
def _labels(model: type) -> dict[str, Words]:
    """{code: lazy label} of `model`'s statuses, read once (every event of a row asks)."""
    return dict(model._meta.get_field("status").flatchoices)


def labels_in_active_language(model: type) -> dict[str, str]:
    """{code: words} of every status of `model`, translated once: for a list whose rows
    would otherwise translate the same few words once per row."""
    return {value: str(label) for value, label in model._meta.get_field("status").flatchoices}


def status_of(row) -> tuple[str, Words]:
    """(code a person is shown, the words for it) of a row with a `status` field."""
    for cls in type(row).__mro__:
        function = _shown.get(cls)
        if function is not None:
            return function(row)
    return row.status, label_for(type(row), row.status)


def status_label(row) -> Words:
    return status_of(row)[1]
