"""Replies by SMTP from the account, threaded for the recipient's mail program: From, To, Cc
(Bcc in the envelope only), the subject as queued, a new Message-ID, In-Reply-To and
References; the agent's text, the mailbox's signature and the answered mail quoted, as plain
text with an HTML alternative. And the "Test connection" check of an account's IMAP and SMTP
settings, in the same words a send gets."""

import html
import ipaddress
import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

from django.conf import settings
from django.utils.translation import gettext as _

from messaging.channels import (
    OutboundFile,
    OutboundMessage,
    SendError,
    SendReceipt,
    TransientSendError,
)

from .. import outbound
from ..outbound import AddressNotAllowed
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
    subject = " ".join((subject or "").split())
    if subject.lower().startswith(("re:", "aw:", "sv:")):
        return subject
    return f"Re: {subject}" if subject else "Re: your message"


def quoted_lines(text: str) -> str:
    """`text` quoted the way mail programs do: each line behind "> "."""
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def reply_text(body: str, route: SmtpRoute) -> str:
    """The plain text of a reply: the agent's text, the signature ("-- " line), the quote."""
    parts = [body.rstrip()]
    if route.signature.strip():
        parts.append(f"-- \n{route.signature.strip()}")
    if route.quote is not None and route.quote.text.strip():
        parts.append(f"{route.quote.attribution}\n{quoted_lines(route.quote.text.strip())}")
    return "\n\n".join(parts) + "\n"


def _html_lines(text: str) -> str:
    return "<br>\n".join(html.escape(line) for line in text.splitlines())


def reply_html(body: str, route: SmtpRoute) -> str:
    """The same reply as HTML: the quote in a <blockquote type="cite">."""
    parts = [f"<div>{_html_lines(body.rstrip())}</div>"]
    if route.signature.strip():
        parts.append(
            f'<div class="signature">-- <br>\n{_html_lines(route.signature.strip())}</div>'
        )
    if route.quote is not None and route.quote.text.strip():
        parts.append(
            f"<div>{html.escape(route.quote.attribution)}</div>\n"
            f'<blockquote type="cite">{_html_lines(route.quote.text.strip())}</blockquote>'
        )
    return "<!doctype html>\n<html><body>\n" + "\n<br>\n".join(parts) + "\n</body></html>\n"


def build_reply(route: SmtpRoute, message: OutboundMessage) -> EmailMessage:
    """The MIME message: From, To, Cc (Bcc only in the envelope), the subject as queued, a new
    Message-ID, In-Reply-To and References; text/plain with an HTML alternative."""
    address = route.address
    mail = EmailMessage()
    mail["From"] = formataddr((route.display_name or "", address))
    mail["To"] = message.to_address
    if route.cc:
        mail["Cc"] = ", ".join(route.cc)
    mail["Subject"] = route.subject or reply_subject(message.subject)
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain=address.rpartition("@")[2] or None)
    if route.in_reply_to:
        mail["In-Reply-To"] = f"<{route.in_reply_to}>"
    if route.references:
        mail["References"] = " ".join(f"<{ref}>" for ref in route.references)
    if message.auto_submitted:  # RFC 3834: responders must not answer this one
        mail["Auto-Submitted"] = "auto-replied"
        mail["X-Auto-Response-Suppress"] = "All"
    mail.set_content(reply_text(message.body, route))
    mail.add_alternative(reply_html(message.body, route), subtype="html")
    for file in message.files:
        add_file(mail, file)
    return mail


def add_file(mail: EmailMessage, file: OutboundFile) -> None:
    """One file as a MIME attachment (base64, its name and type). smtplib sends a mail from
    memory, so a mail's files are read here: EMAIL_MAX_MESSAGE_BYTES bounds them."""
    maintype, _slash, subtype = (file.content_type or "application/octet-stream").partition("/")
    try:
        with file.open() as handle:
            content = handle.read()
    except FileNotFoundError as exc:
        raise SendError(
            _("The file “%(name)s” is missing from our storage.") % {"name": file.filename}
        ) from exc
    mail.add_attachment(
        content,
        maintype=maintype or "application",
        subtype=subtype or "octet-stream",
        filename=file.filename,
    )


def recipients(route: SmtpRoute, message: OutboundMessage) -> list[str]:
    """Everyone the envelope names (To, Cc and Bcc), once each."""
    seen, found = set(), []
    for address in (message.to_address, *route.cc, *route.bcc):
        if address and address.lower() not in seen:
            seen.add(address.lower())
            found.append(address)
    return found


# ---------------------------------------------------------------- refusals, in words
# One set of words for a send and for "Test connection". An unreachable server is temporary
# (retried); a refused login, a server that takes no login, a refused message are permanent.


def _unreachable(route: SmtpRoute, exc: BaseException | None = None) -> TransientSendError:
    # One answer for a closed, silent, reset, non-SMTP or failed-TLS port: no port scanning
    # through us. The real cause goes to the log.
    if exc is not None:
        logger.warning(
            "email: cannot reach SMTP %s:%s (%s: %s)",
            route.smtp_host,
            route.smtp_port,
            exc.__class__.__name__,
            exc,
        )
    return TransientSendError(
        _("Could not connect to the SMTP server at %(host)s:%(port)s.")
        % {"host": route.smtp_host, "port": route.smtp_port},
        connection=True,
    )


def _login_refused(exc: Exception) -> SendError:
    """Why the server did not take our login: wrong credentials, or no login at all."""
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return SendError(
            _(
                "SMTP login failed: the server does not accept a login on this connection "
                "(it offers no AUTH; it may need STARTTLS or SSL/TLS). Check the SMTP security "
                "setting and the server."
            ),
            connection=True,
        )
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        if exc.smtp_code == 454:  # RFC 4954: a temporary authentication failure
            return TransientSendError(
                _("The SMTP server could not check the login just now (454); retrying.")
            )
        return SendError(
            _("SMTP login failed: the server refused the username or password (%(code)s %(text)s).")
            % {"code": exc.smtp_code, "text": _server_text(exc.smtp_error)},
            connection=True,
        )
    return SendError(  # smtplib: "No suitable authentication method found."
        _(
            "SMTP login failed: the server offers no login method Switchboard supports "
            "(PLAIN, LOGIN or CRAM-MD5)."
        ),
        connection=True,
    )


def _server_text(raw) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
    return " ".join(text.split())[:200]


LOGIN_REQUIRED_CODES = {530}  # "Authentication required" (RFC 4954)


class _CheckedSMTP(smtplib.SMTP):
    """Connects only to addresses outbound.connect checked (no second DNS look-up)."""

    def _get_socket(self, host, port, timeout):
        return outbound.connect(host, port, timeout)


class _CheckedSMTPSSL(smtplib.SMTP_SSL, _CheckedSMTP):
    """SMTP_SSL wraps what _CheckedSMTP connected (its _get_socket calls the next class's)."""


def open_smtp(route: SmtpRoute):
    """A connected (and logged-in, when the account has a username) SMTP client; otherwise
    SendError / TransientSendError with the reason in words."""
    host, port, security = route.smtp_host, route.smtp_port, route.smtp_security
    timeout = settings.EMAIL_SMTP_TIMEOUT
    if security == "none" and not is_loopback(host):
        raise SendError(_("Unencrypted SMTP is allowed to loopback only; choose STARTTLS or SSL."))
    try:
        if security == "ssl":
            server = _CheckedSMTPSSL(
                host, port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            server = _CheckedSMTP(host, port, timeout=timeout)
    except AddressNotAllowed as exc:
        raise SendError(
            _("%(host)s is a private or local address; connections there are off.") % {"host": host}
        ) from exc
    except (smtplib.SMTPException, OSError, UnicodeError) as exc:  # UnicodeError: a bad name
        raise _unreachable(route, exc) from exc
    try:
        if security == "starttls":
            try:
                server.starttls(context=ssl.create_default_context())
            except smtplib.SMTPNotSupportedError as exc:
                raise SendError(
                    _("The SMTP server does not offer STARTTLS; choose SSL/TLS or another port.")
                ) from exc
        if route.username:
            try:
                server.login(route.username, route.password)
            except smtplib.SMTPServerDisconnected as exc:
                raise _unreachable(route, exc) from exc
            except smtplib.SMTPException as exc:
                raise _login_refused(exc) from exc
    except SendError:
        _close(server)
        raise
    except (smtplib.SMTPException, OSError) as exc:
        _close(server)
        raise _unreachable(route, exc) from exc
    return server


def _close(server) -> None:
    try:
        server.quit()
    except (smtplib.SMTPException, OSError):
        server.close()


def send_reply(message: OutboundMessage) -> SendReceipt:
    route: SmtpRoute = message.route
    if not message.to_address:
        raise SendError(_("This conversation has no email address to reply to."))
    mail = build_reply(route, message)
    server = open_smtp(route)
    try:
        refused = server.send_message(
            mail, from_addr=route.address, to_addrs=recipients(route, message)
        )
    except smtplib.SMTPRecipientsRefused as exc:
        raise SendError(
            _("The SMTP server refused every recipient (%(who)s).")
            % {"who": ", ".join(exc.recipients)}
        ) from exc
    except smtplib.SMTPSenderRefused as exc:
        if exc.smtp_code in LOGIN_REQUIRED_CODES:
            raise SendError(
                _(
                    "SMTP login failed: the server requires a login; set the mailbox's "
                    "username and password."
                )
            ) from exc
        raise _refused(exc) from exc
    except smtplib.SMTPResponseException as exc:
        raise _refused(exc) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise _unreachable(route, exc) from exc
    finally:
        _close(server)
    if refused:
        logger.warning(
            "email: account=%s %s: %d recipient(s) refused",
            message.source_id,
            message.key,
            len(refused),
        )
    message_id = mail["Message-ID"].strip("<>")
    logger.info("email: account=%s sent %s", message.source_id, message.key)
    return SendReceipt(external_id=message_id)


def _refused(exc: smtplib.SMTPResponseException) -> SendError:
    if 400 <= exc.smtp_code < 500:
        return TransientSendError(
            _("The SMTP server asks to retry later (%(code)s).") % {"code": exc.smtp_code}
        )
    return SendError(
        _("The SMTP server refused the message (%(code)s %(text)s).")
        % {"code": exc.smtp_code, "text": _server_text(exc.smtp_error)}
    )


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
        try:
            server.noop()
        finally:
            _close(server)
        result["smtp"] = {
            "ok": True,
            "detail": _("Connected and logged in.")
            if account.username
            else _("Connected (no login configured)."),
        }
    except SendError as exc:  # the same words a send gets
        result["smtp"] = {"ok": False, "detail": exc.reason}
    except (smtplib.SMTPException, OSError) as exc:
        result["smtp"] = {"ok": False, "detail": _unreachable(SmtpRoute.of(account), exc).reason}
    return result
