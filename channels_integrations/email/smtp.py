"""Replies by SMTP from the account, threaded for the recipient's mail program: From, To,
"Re:" subject, a new Message-ID, In-Reply-To and References. And the "Test connection"
check of an account's IMAP and SMTP settings, in words."""

import ipaddress
import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

from django.conf import settings

from messaging.channels import OutboundMessage, SendError, SendReceipt, TransientSendError

from ..outbound import AddressNotAllowed, check_destination
from .route import SmtpRoute

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def reply_subject(subject: str) -> str:
    subject = (subject or "").strip()
    if subject.lower().startswith(("re:", "aw:", "sv:")):
        return subject
    return f"Re: {subject}" if subject else "Re: your message"


def build_reply(route: SmtpRoute, message: OutboundMessage) -> EmailMessage:
    address = route.address
    mail = EmailMessage()
    mail["From"] = formataddr((route.display_name or "", address))
    mail["To"] = message.to_address
    mail["Subject"] = reply_subject(message.subject)
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain=address.rpartition("@")[2] or None)
    if route.in_reply_to:
        mail["In-Reply-To"] = f"<{route.in_reply_to}>"
    if route.references:
        mail["References"] = " ".join(f"<{ref}>" for ref in route.references)
    mail.set_content(message.body)
    return mail


def open_smtp(route: SmtpRoute):
    host, port, security = route.smtp_host, route.smtp_port, route.smtp_security
    timeout = settings.EMAIL_SMTP_TIMEOUT
    check_destination(host, port)
    if security == "ssl":
        server = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        if security == "none" and not is_loopback(host):
            raise SendError("Unencrypted SMTP is allowed to loopback only; choose STARTTLS or SSL.")
        server = smtplib.SMTP(host, port, timeout=timeout)
        if security == "starttls":
            server.starttls(context=ssl.create_default_context())
    if route.username:
        server.login(route.username, route.password)
    return server


def send_reply(message: OutboundMessage) -> SendReceipt:
    route: SmtpRoute = message.route
    if not message.to_address:
        raise SendError("This conversation has no email address to reply to.")
    mail = build_reply(route, message)
    try:
        server = open_smtp(route)
        try:
            server.send_message(mail)
        finally:
            try:
                server.quit()
            except smtplib.SMTPException:
                pass
    except AddressNotAllowed as exc:
        raise SendError(
            f"{route.smtp_host} is a private or local address; connections there are off."
        ) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise SendError("SMTP login failed: the server refused the username or password.") from exc
    except smtplib.SMTPRecipientsRefused as exc:
        raise SendError(f"The SMTP server refused the recipient {message.to_address}.") from exc
    except smtplib.SMTPResponseException as exc:
        if 400 <= exc.smtp_code < 500:
            raise TransientSendError(
                f"The SMTP server asks to retry later ({exc.smtp_code})."
            ) from exc
        raise SendError(f"The SMTP server refused the message ({exc.smtp_code}).") from exc
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        raise TransientSendError(
            f"The SMTP server {route.smtp_host}:{route.smtp_port} could not be reached."
        ) from exc
    message_id = mail["Message-ID"].strip("<>")
    logger.info("email: account=%s sent %s", message.source_id, message.key)
    return SendReceipt(external_id=message_id)


def test_connection(account) -> dict:
    """Log in to IMAP and to SMTP; each result in words ({"imap": {...}, "smtp": {...}})."""
    from .imap import error_words, imap_session

    result = {}
    try:
        with imap_session(account) as client:
            folder = client.select_folder("INBOX", readonly=True)
            result["imap"] = {
                "ok": True,
                "detail": f"Logged in; INBOX holds {folder[b'EXISTS']} messages.",
            }
    except Exception as exc:
        result["imap"] = {"ok": False, "detail": error_words(exc, account)}
    try:
        server = open_smtp(SmtpRoute.of(account))
        server.noop()
        server.quit()
        result["smtp"] = {"ok": True, "detail": "Connected and logged in."}
    except SendError as exc:
        result["smtp"] = {"ok": False, "detail": exc.reason}
    except smtplib.SMTPAuthenticationError:
        result["smtp"] = {"ok": False, "detail": "SMTP login failed: wrong username or password."}
    except AddressNotAllowed:
        result["smtp"] = {
            "ok": False,
            "detail": f"{account.smtp_host} is a private or local address; connections there "
            "are off.",
        }
    except (smtplib.SMTPException, OSError, UnicodeError):  # UnicodeError: a bad name
        # One answer for a closed port and a silent one: no port scanning through us.
        result["smtp"] = {
            "ok": False,
            "detail": f"Could not connect to the SMTP server at {account.smtp_host}:"
            f"{account.smtp_port}.",
        }
    return result
