"""Address headers (To, Cc) as lists a person reads: "Name <address>", or the bare address."""

from email.utils import formataddr, getaddresses

ADDRESSES_KEPT = 50


def address_list(value: str) -> list[str]:
    """The addresses of one decoded header value, each once, at most ADDRESSES_KEPT."""
    found, seen = [], set()
    for name, address in getaddresses([value or ""]):
        address = address.strip()
        if not address or "@" not in address or address.lower() in seen:
            continue
        seen.add(address.lower())
        name = " ".join(name.split())
        found.append(formataddr((name, address)) if name else address)
        if len(found) == ADDRESSES_KEPT:
            break
    return found
