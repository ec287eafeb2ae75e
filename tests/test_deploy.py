"""The shipped deployment, proven: real nginx (Debian's package) on a loopback port with the
shipped site file (only ports and paths substituted), a real daphne behind it, and through
nginx: a page, an API call with a token, a static file, an attachment (Django checks, nginx
sends), a WebSocket that receives an event, and the friendly page when daphne is down.
Also: `nginx -t` on the shipped file, `check --deploy` with production settings, the systemd
units and the compose file."""

import configparser
import http.cookiejar
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.files.base import ContentFile

from accounts.models import ApiToken
from messaging import events

from .factories import PASSWORD, AttachmentFactory, UserFactory
from .live import LiveServer
from .processes import database_url, free_port

BASE_DIR = Path(settings.BASE_DIR)
DEPLOY = BASE_DIR / "deploy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

MAIN_CONFIG = """
{user}
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {root}/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {site};
}}
"""


def _main_config(root: Path, site: Path) -> Path:
    path = root / "nginx-main.conf"
    # As root, workers would run as nobody and could not read a temp directory's files.
    user = "user root;" if os.geteuid() == 0 else ""
    path.write_text(MAIN_CONFIG.format(root=root, site=site, user=user))
    return path


def shipped_site(**substitutions) -> str:
    """deploy/nginx.conf with only ports and paths replaced (each must be there)."""
    text = (DEPLOY / "nginx.conf").read_text()
    for old, new in substitutions.items():
        assert old in text, f"{old!r} is no longer in deploy/nginx.conf"
        text = text.replace(old, new)
    return text


def test_nginx_accepts_the_shipped_site_file(tmp_path):
    if not os.path.exists(NGINX):
        pytest.fail("The deployment tests need nginx: apt-get install nginx")
    main = _main_config(tmp_path, DEPLOY / "nginx.conf")
    result = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_the_upload_limit_matches_the_attachment_limit():
    text = (DEPLOY / "nginx.conf").read_text()
    size = re.search(r"client_max_body_size (\d+)m;", text)
    assert size and int(size.group(1)) * 1024 * 1024 == settings.ATTACHMENT_MAX_BYTES
    # Replies with files take the largest file a channel sends (WhatsApp documents, 100 MB).
    from messaging import channels

    largest = max(
        limit.max_bytes
        for channel in channels.registered()
        for limit in channel.capabilities.file_limits
    )
    files = re.search(r"messages/files/.*?client_max_body_size (\d+)m;", text, re.S)
    assert files and int(files.group(1)) * 1024 * 1024 > largest


class Nginx:
    def __init__(
        self, root: Path, daphne_port: int, static_root: Path, media_root: Path, **changes
    ):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.access_log = root / "switchboard.access.log"
        site = root / "site.conf"
        site.write_text(
            shipped_site(**{
                "listen 80;": f"listen 127.0.0.1:{self.port};",
                "server 127.0.0.1:8000 max_fails=0;": f"server 127.0.0.1:{daphne_port};",
                # The web processes' upstream: the same daphne here (it serves both).
                "server 127.0.0.1:8100 max_fails=0;": f"server 127.0.0.1:{daphne_port};",
                "server 127.0.0.1:8101 max_fails=0;": "",
                "/srv/switchboard/staticfiles/": f"{static_root}/",
                "/srv/switchboard/media/": f"{media_root}/",
                "/srv/switchboard/deploy/errors": str(DEPLOY / "errors"),
                "/var/log/nginx/switchboard.access.log": str(self.access_log),
                **changes,
            })
        )  # fmt: skip
        self.config = _main_config(root, site)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.process = subprocess.Popen(
            [NGINX, "-p", str(self.root), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/static/js/realtime.js", timeout=1).close()
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        self.__exit__()  # `with` calls __exit__ only after __enter__ returned
        raise RuntimeError((self.root / "error.log").read_text())

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(10)


def _get(opener, url, **headers):
    request = urllib.request.Request(url, headers=headers)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _log_in(nginx, user) -> urllib.request.OpenerDirector:
    """A browser's log-in, through nginx: the form, its CSRF token, the session cookie."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    status, _, page = _get(opener, nginx.url + "/login/")
    assert status == 200
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
    form = urllib.parse.urlencode(
        {"username": user.username, "password": PASSWORD, "csrfmiddlewaretoken": token}
    ).encode()
    request = urllib.request.Request(
        nginx.url + "/login/", data=form, headers={"Referer": nginx.url + "/login/"}
    )
    with opener.open(request, timeout=10) as response:
        assert response.status == 200 and "/login/" not in response.url
    return opener


@pytest.mark.timeout(180)
@pytest.mark.django_db(transaction=True)
def test_through_nginx_pages_api_static_attachments_websocket_and_the_down_page(tmp_path, settings):
    from django.core.management import call_command
    from websockets.sync.client import connect

    static_root, media_root = tmp_path / "static", tmp_path / "media"
    settings.STATIC_ROOT, settings.MEDIA_ROOT = static_root, media_root
    call_command("collectstatic", interactive=False, verbosity=0)
    media_root.mkdir()
    for path in (tmp_path, static_root, media_root):
        path.chmod(0o755)

    user = UserFactory()
    other = UserFactory()
    token, raw_token = ApiToken.issue(user, "deploy test")
    attachment = AttachmentFactory(message__conversation__company=user.company)
    attachment.file.save("delivery-note.pdf", ContentFile(b"%PDF-1.4 delivery note"))

    daphne_port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
        "DATABASE_URL": database_url(),
        "DEBUG": "true",
        "MEDIA_ROOT": str(media_root),
        "SERVE_MEDIA_WITH_NGINX": "true",
        "CELERY_BROKER_URL": "memory://",
        "PYTHONUNBUFFERED": "1",
    }
    daphne = LiveServer(
        f"http://127.0.0.1:{daphne_port}", daphne_port, env, tmp_path / "daphne.log"
    )
    daphne.start()
    try:
        with Nginx(tmp_path / "nginx", daphne_port, static_root, media_root) as nginx:
            plain = urllib.request.build_opener()

            # A page (daphne, behind nginx).
            status, headers, page = _get(plain, nginx.url + "/login/")
            assert status == 200 and b"csrfmiddlewaretoken" in page

            # A static file: nginx serves it from the collected files.
            status, headers, body = _get(plain, nginx.url + "/static/js/realtime.js")
            assert status == 200 and headers["Cache-Control"] == "max-age=604800"  # nginx, 7 d
            assert body == (static_root / "js" / "realtime.js").read_bytes()

            # The API with a token.
            status, _, body = _get(
                plain, nginx.url + "/api/v1/me/", Authorization=f"Bearer {raw_token}"
            )
            assert status == 200 and json.loads(body)["username"] == user.username

            # An attachment: Django checks the member, nginx sends the file.
            browser = _log_in(nginx, user)
            status, headers, body = _get(browser, f"{nginx.url}/attachments/{attachment.pk}/")
            assert status == 200 and body == b"%PDF-1.4 delivery note"
            assert headers["Content-Disposition"] == 'attachment; filename="invoice.pdf"'
            status, _, _ = _get(_log_in(nginx, other), f"{nginx.url}/attachments/{attachment.pk}/")
            assert status == 404  # another company's file
            status, _, _ = _get(plain, f"{nginx.url}/protected-media/{attachment.file.name}")
            assert status == 404  # never reachable directly

            # A WebSocket through nginx's upgrade, receiving an event.
            with connect(
                f"ws://127.0.0.1:{nginx.port}/ws/?token={raw_token}", open_timeout=10
            ) as ws:
                assert json.loads(ws.recv(timeout=10))["event"] == "welcome"
                events.publish("chat.created", {"id": 4242}, user_ids=[user.pk])
                received = json.loads(ws.recv(timeout=10))
                assert received == {"event": "chat.created", "data": {"id": 4242}}

            # Metrics from this machine (nginx lets loopback through).
            assert _get(plain, nginx.url + "/metrics")[0] == 200
            # Secrets in query strings never reach the access log.
            _get(
                plain, f"{nginx.url}/webhooks/whatsapp/{uuid.uuid4()}/?hub.verify_token=VT-SECRET-1"
            )
            # nginx writes a line when a request ends; the upgraded socket's line can come
            # a moment after the client has closed it.
            deadline = time.monotonic() + 15
            logged = ""
            while time.monotonic() < deadline:
                logged = nginx.access_log.read_text() if nginx.access_log.exists() else ""
                if "/webhooks/whatsapp/" in logged and "/ws/" in logged:
                    break
                time.sleep(0.1)
            assert "/webhooks/whatsapp/" in logged and "/ws/" in logged
            assert "VT-SECRET-1" not in logged and raw_token not in logged

            # daphne goes away: nginx says so in words, not a bare 502.
            daphne.stop()
            status, _, body = _get(plain, nginx.url + "/inbox/")
            assert status == 502
            assert b"Switchboard is not answering right now" in body
    finally:
        if daphne.process and daphne.process.poll() is None:
            daphne.stop()


class _WebProcess:
    """Stands in for one web process behind nginx (nginx's routing is what is tested): answers
    every POST 200 and keeps the paths it was sent. HTTP/1.0, so nginx keeps no connection to
    it that would outlive stop(), as none outlives a process that exits."""

    def __init__(self):
        paths = self.paths = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _post(url) -> int:
    request = urllib.request.Request(url, data=b'{"object": "whatsapp_business_account"}')
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_targets_webhooks_go_to_one_web_process_and_to_another_while_it_is_down(tmp_path):
    """The shipped file's two web processes: all webhooks of one number reach the same one (so
    its fast path stores them in shared commits), the numbers are spread over both, and while
    one process is down (a rolling restart) its numbers' webhooks are answered by the other."""
    first, second = _WebProcess(), _WebProcess()
    static = tmp_path / "static"
    (static / "js").mkdir(parents=True)
    (static / "js" / "realtime.js").write_text("// what Nginx() waits for")
    nginx = Nginx(
        tmp_path / "nginx", first.port, static, tmp_path,
        **{"server 127.0.0.1:8101 max_fails=0;": f"server 127.0.0.1:{second.port} max_fails=0;"},
    )  # fmt: skip
    # An odd number of them: nginx's round robin would send each one's webhooks to both.
    targets = [f"/webhooks/whatsapp/{uuid.uuid4()}/" for _ in range(21)]
    try:
        with nginx:
            for _ in range(5):
                for path in targets:
                    assert _post(nginx.url + path) == 200
            for path in targets:
                assert sorted((first.paths.count(path), second.paths.count(path))) == [0, 5]
            held = [path for path in targets if path in first.paths]
            assert 0 < len(held) < len(targets)

            first.stop()
            for path in held:
                assert _post(nginx.url + path) == 200
                assert second.paths.count(path) == 1
    finally:
        first.stop()
        second.stop()


def test_metrics_are_refused_from_anywhere_but_the_allowed_addresses(tmp_path):
    """The shipped /metrics location with this machine's lines swapped for another address:
    a request from here is denied by nginx before it reaches daphne."""
    static_root = tmp_path / "static"
    (static_root / "js").mkdir(parents=True)
    (static_root / "js" / "realtime.js").write_text("// probe")
    for path in (tmp_path, static_root, static_root / "js"):
        path.chmod(0o755)
    changes = {"allow 127.0.0.1;": "allow 192.0.2.10;", "allow ::1;": ""}
    with Nginx(tmp_path / "nginx", free_port(), static_root, tmp_path, **changes) as nginx:
        status, _, _ = _get(urllib.request.build_opener(), nginx.url + "/metrics")
    assert status == 403


def shipped_daphne_commands() -> dict[str, list[str]]:
    """Every daphne the project ships, as argv (placeholders given their defaults)."""
    procfile = dict(
        line.split(":", 1) for line in (BASE_DIR / "Procfile").read_text().splitlines() if line
    )
    dockerfile = (BASE_DIR / "Dockerfile").read_text()
    compose = yaml.safe_load((BASE_DIR / "docker-compose.production.yml").read_text())
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read(DEPLOY / "systemd" / "switchboard-ws@.service")
    commands = {
        "Procfile": re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", procfile["web"]),
        "Dockerfile": json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M)[1]),
        "docker-compose.production.yml": compose["services"]["web"]["command"],
        "switchboard-ws@.service": unit["Service"]["ExecStart"].replace("%i", "8000"),
    }
    return {
        name: shlex.split(command) if isinstance(command, str) else command
        for name, command in commands.items()
    }


def test_every_shipped_daphne_writes_no_access_log():
    """daphne's access log keeps the whole URL: a webhook's ?hub.verify_token=, a socket's
    ?token=. nginx logs requests with those masked; daphne writes none."""
    from daphne.cli import CommandLineInterface

    commands = shipped_daphne_commands()
    assert len(commands) == 4
    for name, argv in commands.items():
        assert Path(argv[0]).name == "daphne", name
        args = CommandLineInterface().parser.parse_args(argv[1:])
        assert args.access_log == "/dev/null", name
        assert args.verbosity >= 1, f"{name}: errors and start-up lines stay logged"


def test_a_verify_token_in_the_query_string_is_not_in_daphnes_output(transactional_db, tmp_path):
    """The Procfile's own daphne arguments on a free port: a webhook verification with its
    token in the query string is answered, and the token is in nothing daphne printed."""
    port = free_port()
    argv = shipped_daphne_commands()["Procfile"][1:]
    argv[argv.index("-p") + 1] = str(port)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": "memory://",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "daphne.log"
    daphne = LiveServer(f"http://127.0.0.1:{port}", port, env, log_path, command=argv)
    daphne.start()
    try:
        url = f"{daphne.url}/webhooks/whatsapp/{uuid.uuid4()}/?hub.mode=subscribe"
        status, _, _ = _get(urllib.request.build_opener(), url + "&hub.verify_token=secret123")
        assert status == 404  # no such number; what matters is what got written down
        status, _, _ = _get(urllib.request.build_opener(), f"{daphne.url}/health?token=secret456")
        assert status == 200
    finally:
        daphne.stop()
    output = log_path.read_text()
    assert "/health" not in output  # no access log at all
    assert "secret123" not in output and "secret456" not in output, output


def test_production_settings_pass_check_deploy():
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "DEBUG")}
    env.update(
        DJANGO_SETTINGS_MODULE="crm.settings",
        DEBUG="false",
        SECRET_KEY="x7Rk2pQw9ZmN4vBc8LdTg1HsYe6JuAo3FiKx5WqEr0TyUiOpAsDfGhJkLzXcVbNm",
        FIELD_ENCRYPTION_KEYS="3f1c9a0b7d2e4f6a8b1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a",
        ALLOWED_HOSTS="crm.example.com",
        CSRF_TRUSTED_ORIGINS="https://crm.example.com",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_real_secrets():
    env = {key: value for key, value in os.environ.items() if key != "SECRET_KEY"}
    env.update(DJANGO_SETTINGS_MODULE="crm.settings", DEBUG="false")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


@pytest.mark.parametrize(
    "unit,min_stop",
    [
        ("switchboard-web@.service", 30),
        ("switchboard-ws@.service", 10),
        ("switchboard-worker.service", 30),
        ("switchboard-connections.service", 60),
        ("switchboard-beat.service", 10),
    ],
)
def test_systemd_units_restart_on_failure_and_stop_gracefully(unit, min_stop):
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read(DEPLOY / "systemd" / unit)
    service = parser["Service"]
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= min_stop
    if unit not in ("switchboard-web@.service", "switchboard-ws@.service"):
        # Celery workers: SIGTERM to the main process only (a warm shutdown that lets the
        # pool's children finish their sends), not to the whole group at once.
        assert service["KillMode"] == "mixed"
    assert service["EnvironmentFile"] == "/etc/switchboard/env"
    assert parser["Install"]["WantedBy"] == "multi-user.target"
    if shutil.which("systemd-analyze"):
        result = subprocess.run(
            ["systemd-analyze", "verify", str(DEPLOY / "systemd" / unit)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert "Invalid" not in result.stderr and "Unknown" not in result.stderr, result.stderr


def test_connections_and_sending_run_on_separate_queues():
    worker = (DEPLOY / "systemd" / "switchboard-worker.service").read_text()
    connections = (DEPLOY / "systemd" / "switchboard-connections.service").read_text()
    assert "-Q celery,outbox " in worker and "manage.py connection_host" in connections
    assert settings.CELERY_TASK_ROUTES["messaging.tasks.sweep_outbox"] == {"queue": "outbox"}
    for task in (
        "whatsapp.tasks.run_whatsapp_session",
        "telegram.tasks.run_telegram_listener",
        "email.tasks.run_email_idle",
    ):
        assert settings.CELERY_TASK_ROUTES[f"channels_integrations.{task}"] == {
            "queue": "connections"
        }


def test_the_compose_file_has_every_service_with_health_checks():
    compose = yaml.safe_load((BASE_DIR / "docker-compose.production.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "connections", "beat", "nginx"} <= set(services)
    for name in ("postgres", "redis", "web", "worker", "connections", "beat", "nginx"):
        assert services[name].get("healthcheck"), f"{name} has no health check"
    for name in ("web", "worker", "beat", "nginx"):
        assert "/health" in json.dumps(services[name]["healthcheck"]["test"]), name
    # A connection host checks its own heartbeat (the web answering says nothing of it).
    assert "connection_host --check" in json.dumps(services["connections"]["healthcheck"]["test"])
    assert services["connections"]["stop_grace_period"] == "90s"
    assert "deploy/nginx.conf" in json.dumps(services["nginx"]["volumes"])
    dockerfile = (BASE_DIR / "Dockerfile").read_text()
    assert "/health" in dockerfile and "collectstatic" in dockerfile
