"""Typed inbound content that is not plain text (a location, a contact card, a chosen button,
an order, a form's answers, a system notice, an unsupported kind): channel-neutral plain data,
kept in a message's metadata as `content` ({"kind": ..., ...}) and shown as what it is by
templates/messaging/_message_content.html. `describe()` gives the text stored as the
message's body (the conversation preview, the API, search).

Kinds and their fields:
- location: latitude, longitude, name, address
- contacts: contacts: [{name, phones: [...], emails: [...]}]
- choice: title, description, payload (a button or list reply)
- form: name, text, fields: [[label, value], ...] (a WhatsApp Flow's answers)
- order: catalog_id, text, items: [{product, quantity, price, currency}], total, currency
- notice: text, type (a system notice: not counted unread, no bot answers it)
- unsupported: type, detail
"""

from urllib.parse import urlencode

from django.utils.translation import gettext as _

KINDS = ("location", "contacts", "choice", "form", "order", "notice", "unsupported")


def map_url(content: dict) -> str:
    """A link that opens the place on a map (OpenStreetMap: no key, no tracking script)."""
    latitude, longitude = content.get("latitude"), content.get("longitude")
    if not isinstance(latitude, int | float) or not isinstance(longitude, int | float):
        return ""
    query = urlencode({"mlat": f"{latitude:.6f}", "mlon": f"{longitude:.6f}"})
    return f"https://www.openstreetmap.org/?{query}#map=16/{latitude:.6f}/{longitude:.6f}"


def _number(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if value is None else str(value)


def describe(content: dict | None) -> str:
    """The body text of typed content (what a preview or a plain client shows)."""
    if not content:
        return ""
    kind = content.get("kind")
    if kind == "location":
        place = " — ".join(filter(None, (content.get("name"), content.get("address"))))
        return "\n".join(filter(None, (f"📍 {place}" if place else "📍", map_url(content))))
    if kind == "contacts":
        cards = []
        for person in content.get("contacts", []):
            details = ", ".join([*person.get("phones", []), *person.get("emails", [])])
            cards.append(
                f"👤 {person.get('name') or _('Contact')}" + (f": {details}" if details else "")
            )
        return "\n".join(cards)
    if kind == "choice":
        return content.get("title", "")
    if kind == "form":
        lines = [f"{label}: {value}" for label, value in content.get("fields", [])]
        return "\n".join([f"📝 {content.get('text') or _('Form answers')}", *lines])
    if kind == "order":
        lines = [
            f"{_number(item.get('quantity'))} × {item.get('product')}"
            f" ({_number(item.get('price'))} {item.get('currency', '')})".rstrip()
            for item in content.get("items", [])
        ]
        total = ""
        if content.get("total") is not None:
            total = _("Total: %(total)s %(currency)s") % {
                "total": _number(content["total"]),
                "currency": content.get("currency", ""),
            }
        return "\n".join(filter(None, [f"🛒 {_('Order')}", content.get("text"), *lines, total]))
    if kind == "notice":
        return content.get("text") or _("The customer's account changed.")
    if kind == "unsupported":
        return _("Unsupported message (%(type)s): it can only be seen in the app on the phone.") % {
            "type": content.get("type") or "?"
        }
    return ""
