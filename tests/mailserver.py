"""Real mail servers for the email tests: Dovecot (Debian's dovecot-imapd) with a temporary
configuration on a free loopback port, a passwd-file of test users and maildirs in a temp
directory; and an SMTP server (aiosmtpd) on loopback that keeps what it receives.

    fixtures dovecot_server (session), dovecot, smtp_server: see tests/conftest.py
"""

import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient

from .processes import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"
CORPUS = Path(__file__).with_name("mail_corpus")
_users = itertools.count(1)
USERS = 500

CONFIG = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


class Dovecot:
    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        # Mail is owned by an unprivileged user (Dovecot refuses uid 0 for mail).
        self.uid = os.getuid() or 65534
        self.gid = os.getgid() or 65534
        self.config = root / "dovecot.conf"
        self.process = None
        for folder in ("run", "state", "home"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        # Users are written up front: Dovecot notices a changed passwd-file by its mtime, which
        # misses a user added within the same second as the last look.
        (root / "passwd").write_text(
            "".join(f"agent{n}:{{PLAIN}}mail-pass-{n}\n" for n in range(1, USERS + 1))
        )
        (root / "passwd").chmod(0o644)
        self.config.write_text(CONFIG.format(root=root, port=self.port, uid=self.uid, gid=self.gid))
        if os.getuid() == 0:
            os.chown(root / "home", self.uid, self.gid)

    def start(self):
        (self.root / "run" / "master.pid").unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=1).logout()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start:\n{self.log()}")

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)

    def restart(self):
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def add_user(self) -> tuple[str, str]:
        """A user of its own for a test (a fresh, empty mailbox)."""
        number = next(_users)
        assert number <= USERS, "raise USERS in tests/mailserver.py"
        return f"agent{number}", f"mail-pass-{number}"

    def account_fields(self, user: str, password: str, **fields) -> dict:
        """An EmailAccount's fields for a mailbox here (IMAP on this Dovecot, SMTP on a loopback
        port nobody answers unless the test says otherwise)."""
        return {
            "address": "help@acme.test",
            "imap_host": "127.0.0.1",
            "imap_port": self.port,
            "imap_ssl": False,
            "smtp_host": "127.0.0.1",
            "smtp_port": 25,
            "smtp_security": "none",
            "username": user,
            "password": password,
            **fields,
        }

    def client(self, user: str, password: str) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.login(user, password)
        return client

    def deliver(self, user: str, password: str, *messages: bytes) -> None:
        """Put messages into the user's INBOX (IMAP APPEND), as a mail server would."""
        client = self.client(user, password)
        try:
            for raw in messages:
                client.append("INBOX", re.sub(rb"\r?\n", b"\r\n", raw))
        finally:
            client.logout()

    def set_uidvalidity(self, user: str, value: int) -> None:
        subprocess.run(
            [DOVEADM, "-c", str(self.config), "mailbox", "update", "-u", user,
             "--uid-validity", str(value), "INBOX"],
            check=True, capture_output=True,
        )  # fmt: skip


def corpus() -> dict[str, bytes]:
    return {path.stem: path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))}


def corpus_raw(path: Path) -> bytes:
    """A corpus file as a server holds it: CRLF line ends (some files have bare LF)."""
    return path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def with_message_id(raw: bytes, message_id: str) -> bytes:
    """The mail with a Message-ID of its own: a header put first (the first one counts), so a
    copy of a mail is stored as a new mail instead of being known already."""
    return f"Message-ID: <{message_id}>\r\n".encode() + raw


@pytest.fixture(scope="session")
def dovecot_server():
    if not os.path.exists(DOVECOT):
        pytest.fail("The email tests need Dovecot: apt-get install dovecot-imapd")
    # Not under pytest's tmp (mode 0700): Dovecot's own processes must read the passwd file.
    root = Path(tempfile.mkdtemp(prefix="switchboard-dovecot-"))
    root.chmod(0o755)
    server = Dovecot(root)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dovecot(dovecot_server):
    if dovecot_server.process.poll() is not None:  # a test stopped it
        dovecot_server.start()
    return dovecot_server


class SmtpSink:
    """aiosmtpd on loopback; `messages` holds what it received (parsed), `envelopes` the
    envelopes (`rcpt_tos`: every recipient, Bcc included), `login` the credentials it accepts.
    `options` go to aiosmtpd's Controller (e.g. `auth_require_tls=True`: a server that takes
    no login on a plain connection — no AUTH in EHLO, and AUTH answered 538)."""

    def __init__(self, login=("smtp-user", "smtp-pass"), **options):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.login = login
        self.messages = []
        self.envelopes = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                import email
                import email.policy

                sink.envelopes.append(envelope)
                sink.messages.append(
                    email.message_from_bytes(envelope.content, policy=email.policy.default)
                )
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and (auth_data.login.decode(), auth_data.password.decode()) == sink.login
            )
            return AuthResult(success=ok, handled=False)  # a refusal answers 535

        self.port = free_port()
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticator,
            **{"auth_require_tls": False, **options},
        )

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


@pytest.fixture
def smtp_server():
    with SmtpSink() as sink:
        yield sink
