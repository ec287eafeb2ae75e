"""{{ row|status_label }}: the words for a row's status, from the one vocabulary
(crm.vocabulary) that the API's `status_label` and realtime events use too."""

from django import template

from crm import vocabulary

register = template.Library()


@register.filter
def status_label(row) -> str:
    return vocabulary.status_label(row)


@register.filter
def status_code(row) -> str:
    return vocabulary.status_of(row)[0]
