"""Email sync speed against a local Dovecot (started here, as the tests start it): the initial
sync of a mailbox (messages per second through the whole path: IMAP fetch, parsing, threading,
ingest_inbound, attachments), and the wall time of a steady-state poll with nothing new.

    .venv/bin/python bench/imap_sync.py [--quick]

Figures: initial_sync_messages, initial_sync_s, initial_sync_per_s (goal >= 500),
steady_poll_ms (select + search after login, nothing new; median of 20; goal < 50),
steady_poll_with_login_ms (the whole poll: connect, login, select, search, logout).
The mailbox holds a realistic mix: threads of 1-5 mails, a tenth with a small attachment.
Then a second mailbox of real-world mails (tests/mail_corpus: public test mails of mail
libraries and the defect cases of issue #15: forwards, bounces, nested multiparts, 8-bit
headers, odd charsets), each copy with a Message-ID of its own: corpus_mails,
corpus_mails_per_s, corpus_crashes (quarantined mails plus polls that failed; goal 0).
"""

import statistics
import time

import _common as common

DB_NAME = "switchboard_bench_imap"
REDIS_DB = 12
CHANNEL = "switchboard:events:bench:imap"


def mails(count: int) -> list[bytes]:
    out = []
    for n in range(count):
        thread = n // 4
        refs = f"References: <t{thread}.0@bench.example>\r\n" if n % 4 else ""
        attachment = n % 10 == 0
        head = (
            f"From: Customer {thread} <c{thread}@bench.example>\r\nTo: help@acme.test\r\n"
            f"Subject: Question {thread}\r\nDate: Mon, 23 Nov 2026 09:00:00 +0100\r\n"
            f"Message-ID: <t{thread}.{n % 4}@bench.example>\r\n{refs}MIME-Version: 1.0\r\n"
        )
        text = f"Hello, this is message {n} about order {thread}.\r\nRegards\r\n"
        if attachment:
            body = (
                'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
                "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "--b\r\n"
                'Content-Type: application/pdf; name="a.pdf"\r\n'
                'Content-Disposition: attachment; filename="a.pdf"\r\n'
                "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
            )
        else:
            body = "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text
        out.append((head + body).encode())
    return out


def corpus_mails(count: int) -> list[bytes]:
    from tests.mailserver import CORPUS, corpus_raw, with_message_id

    raws = [corpus_raw(path) for path in sorted(CORPUS.rglob("*.eml"))]
    return [with_message_id(raws[n % len(raws)], f"corpus-{n}@bench.example") for n in range(count)]


def corpus_run(dovecot, company, count: int) -> dict:
    from channels_integrations.email import imap
    from channels_integrations.models import EmailAccount

    user, password = dovecot.add_user()
    client = dovecot.client(user, password)
    batch = corpus_mails(count)
    for start in range(0, count, 200):
        client.multiappend("INBOX", batch[start : start + 200])
    client.logout()
    account = EmailAccount.objects.create(
        company=company,
        **dovecot.account_fields(user, password, address="corpus@acme.test", first_sync_days=36500),
    )
    started = time.perf_counter()
    result = imap.poll_account(account.pk)
    elapsed = time.perf_counter() - started
    crashes = result.get("quarantined", 0) + (1 if "error" in result else 0)
    return {"mails": result.get("imported", 0), "seconds": elapsed, "crashes": crashes}


def main():
    args = common.parse_args(__doc__.splitlines()[0])
    count = 500 if args.quick else 5_000
    corpus_count = 400 if args.quick else 2_000
    common.setup_django(DB_NAME, REDIS_DB, CHANNEL)
    import tempfile
    from pathlib import Path

    from accounts.models import Company
    from channels_integrations.email import imap
    from channels_integrations.models import EmailAccount
    from tests.mailserver import Dovecot

    common.truncate_tenants()
    root = Path(tempfile.mkdtemp(prefix="switchboard-bench-dovecot-"))
    root.chmod(0o755)
    dovecot = Dovecot(root)
    dovecot.start()
    try:
        user, password = dovecot.add_user()
        client = dovecot.client(user, password)
        batch = mails(count)
        for start in range(0, count, 500):
            client.multiappend("INBOX", batch[start : start + 500])
        client.logout()
        company = Company.objects.create(name="Bench Mail", slug="bench-mail")
        account = EmailAccount.objects.create(
            company=company, **dovecot.account_fields(user, password, first_sync_days=3650)
        )
        started = time.perf_counter()
        result = imap.poll_account(account.pk)
        initial = time.perf_counter() - started
        if result.get("imported") != count:
            raise SystemExit(f"initial sync imported {result}, expected {count}")

        account.refresh_from_db()
        after_login, whole = [], []
        for _ in range(20):
            with imap.imap_session(account) as session:
                counts = {"found": 0, "imported": 0, "known": 0, "quarantined": 0}
                tick = time.perf_counter()
                imap._sync_inbox(account, session, counts)
                after_login.append((time.perf_counter() - tick) * 1000)
            tick = time.perf_counter()
            imap.poll_account(account.pk)
            whole.append((time.perf_counter() - tick) * 1000)
            if counts["found"]:
                raise SystemExit("a steady-state poll found new mail")
        corpus = corpus_run(dovecot, company, corpus_count)
    finally:
        dovecot.stop()
    common.emit("initial_sync_messages", count)
    common.emit("initial_sync_s", initial)
    common.emit("initial_sync_per_s", count / initial)
    common.emit("steady_poll_ms", statistics.median(after_login))
    common.emit("steady_poll_with_login_ms", statistics.median(whole))
    common.emit("corpus_mails", corpus["mails"])
    common.emit("corpus_mails_per_s", corpus["mails"] / corpus["seconds"])
    common.emit("corpus_crashes", corpus["crashes"])
    common.truncate_tenants()


if __name__ == "__main__":
    main()
