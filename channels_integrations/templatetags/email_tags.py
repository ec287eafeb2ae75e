"""Template tags of the email channel's pieces of the conversation page."""

from django import template

from channels_integrations.email import display
from channels_integrations.email.smtp import reply_subject

register = template.Library()


@register.simple_tag
def mail_view(message, conversation):
    """{% mail_view message conversation as mail %}: headers, folded text, HTML frame."""
    return display.mail_view(message, conversation)


@register.simple_tag
def mail_reply_subject(conversation):
    """The subject a reply is prefilled with: "Re: " + the conversation's."""
    return reply_subject(conversation.subject)
