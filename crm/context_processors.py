"""Which main navigation section the current page belongs to (by its URL name)."""

SECTION_BY_PREFIX = (
    ("dashboard", "dashboard"),
    ("inbox", "inbox"),
    ("conversation", "inbox"),
    ("chat", "chats"),
    ("client", "clients"),
    ("broadcast", "broadcasts"),
    ("deal", "deals"),
    ("pipeline", "deals"),
    ("report", "reports"),
)


def nav_section(request):
    match = getattr(request, "resolver_match", None)
    name = (match.url_name or "") if match else ""
    section = next(
        (section for prefix, section in SECTION_BY_PREFIX if name.startswith(prefix)), "settings"
    )
    return {"nav_section": section}
