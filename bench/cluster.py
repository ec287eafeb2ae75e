"""A whole Switchboard on one machine, the way production runs it: N web processes (uvicorn,
pages + API + webhooks), M daphne processes (WebSockets), Celery workers, beat, and nginx with
the shipped site file (deploy/nginx.conf, only ports and paths replaced) in front. The
blueprint for more machines: the same processes, nginx's upstream lines pointing at them.

    .venv/bin/python bench/cluster.py [--web 2] [--ws 1] [--workers 1] [--port 8080]

runs one until Ctrl-C (on the bench database). bench/webhooks.py, bench/api_load.py and
bench/ws_fanout.py --restart import `Cluster` from here.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as common

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
LOGS = common.ROOT / "var" / "cluster"

MAIN_CONFIG = """
{user}
worker_processes 2;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log;
worker_rlimit_nofile 20000;
events {{ worker_connections 8192; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {site};
}}
"""


def web_command(port: int, workers: int = 1, app: str = "crm.asgi:application") -> list[str]:
    """One web process group as deploy/systemd/switchboard-web@.service runs it."""
    return [
        str(common.VENV_BIN / "uvicorn"), app,
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--loop", "uvloop", "--http", "httptools", "--lifespan", "off",
        "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1",
        "--no-access-log", "--timeout-graceful-shutdown", "25", "--backlog", "4096",
    ]  # fmt: skip


def ws_command(port: int) -> list[str]:
    """One daphne for WebSockets as deploy/systemd/switchboard-ws@.service runs it."""
    return [
        str(common.VENV_BIN / "daphne"),
        "-e", f"tcp:port={port}:interface=127.0.0.1:backlog=4096",
        "--proxy-headers", "--websocket_connect_timeout", "30", "--access-log", "/dev/null",
        "crm.asgi:application",
    ]  # fmt: skip


def site_config(http_ports, ws_ports, port, root: Path) -> str:
    text = (common.ROOT / "deploy" / "nginx.conf").read_text()

    def upstream(name, ports, body):
        servers = "".join(f"    server 127.0.0.1:{p} max_fails=0;\n" for p in ports)
        # The block's server lines become these (its other lines, e.g. `hash`, stay).
        pattern = rf"(upstream {name} \{{\n(?:(?!    server ).*\n)*?)(?:    server .*\n)+"
        replaced, n = re.subn(pattern, lambda m: m.group(1) + servers, body)
        assert n == 1, f"upstream {name} not found in deploy/nginx.conf"
        return replaced

    # A cluster without one kind still needs a line there (nothing listens on port 9).
    text = upstream("switchboard_http", http_ports or [9], text)
    text = upstream("switchboard_webhooks", http_ports or [9], text)
    text = upstream("switchboard_daphne", ws_ports or [9], text)
    for old, new in {
        "listen 80;": f"listen 127.0.0.1:{port} backlog=4096;",
        "/srv/switchboard/staticfiles/": f"{common.ROOT}/staticfiles/",
        "/srv/switchboard/media/": f"{root}/media/",
        "/srv/switchboard/deploy/errors": str(common.ROOT / "deploy" / "errors"),
        "/var/log/nginx/switchboard.access.log": "off",
    }.items():
        assert old in text, old
        text = text.replace(old, new)
    return text.replace("access_log off switchboard_masked;", "access_log off;")


class Cluster:
    """Start with `with Cluster(env, web=2, ws=1) as cluster:`; cluster.url is nginx."""

    def __init__(self, env: dict, web=2, web_workers=1, ws=1, workers=0, beat=False, port=None,
                 worker_concurrency=2, app="crm.asgi:application"):  # fmt: skip
        self.env = {**env, "PYTHONUNBUFFERED": "1"}
        self.root = Path(tempfile.mkdtemp(prefix="switchboard-cluster-"))
        (self.root / "media").mkdir()
        self.port = port or common.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.http_ports = [common.free_port() for _ in range(web)]
        self.ws_ports = [common.free_port() for _ in range(ws)]
        self.web_workers, self.app = web_workers, app
        self.n_workers, self.beat, self.concurrency = workers, beat, worker_concurrency
        self.processes: dict[str, subprocess.Popen] = {}
        LOGS.mkdir(parents=True, exist_ok=True)

    def _start(self, name, command, port=None):
        log = open(LOGS / f"{name}.log", "ab")  # noqa: SIM115 (lives with the process)
        process = subprocess.Popen(
            command, cwd=common.ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.processes[name] = process
        if port:
            common.wait_for_port(port, process, timeout=60)
        return process

    def start_web(self, index: int):
        port = self.http_ports[index]
        return self._start(f"web{index}", web_command(port, self.web_workers, self.app), port)

    def start_ws(self, index: int):
        port = self.ws_ports[index]
        return self._start(f"ws{index}", ws_command(port), port)

    def __enter__(self):
        # A bench stopped with SIGTERM (timeout, Ctrl-C's cousin) still stops what it started.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        if not (common.ROOT / "staticfiles").exists():
            subprocess.run(
                [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
                cwd=common.ROOT, env=self.env, check=True,
            )  # fmt: skip
        try:
            for index in range(len(self.http_ports)):
                self.start_web(index)
            for index in range(len(self.ws_ports)):
                self.start_ws(index)
            celery = str(common.VENV_BIN / "celery")
            for index in range(self.n_workers):
                self._start(f"worker{index}", [
                    celery, "-A", "crm", "-q", "worker", "-Q", "celery,outbox",
                    f"--concurrency={self.concurrency}", "--without-gossip", "--without-mingle",
                    "-n", f"bench{index}@%h", "--loglevel=WARNING",
                ])  # fmt: skip
            if self.beat:
                self._start("beat", [
                    celery, "-A", "crm", "-q", "beat", "--loglevel=WARNING",
                    f"--schedule={self.root}/beat-schedule",
                ])  # fmt: skip
            site = self.root / "site.conf"
            site.write_text(site_config(self.http_ports, self.ws_ports, self.port, self.root))
            main = self.root / "nginx.conf"
            user = "user root;" if os.geteuid() == 0 else ""
            main.write_text(MAIN_CONFIG.format(root=self.root, site=site, user=user))
            self.root.chmod(0o755)
            if self.http_ports or self.ws_ports:
                self._start("nginx", [NGINX, "-p", str(self.root), "-c", str(main)], self.port)
        except BaseException:
            self.__exit__()
            raise
        return self

    def restart(self, name: str, start) -> float:
        """SIGTERM one process (it drains), wait for it to exit, start it again; seconds."""
        began = time.monotonic()
        process = self.processes[name]
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        start()
        return time.monotonic() - began

    def pids(self, prefix: str) -> list[int]:
        return [p.pid for name, p in self.processes.items() if name.startswith(prefix)]

    def __exit__(self, *exc):
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def main():
    args = common.parse_args(
        __doc__.splitlines()[0],
        web={"type": int, "default": 2},
        ws={"type": int, "default": 1},
        workers={"type": int, "default": 1},
        port={"type": int, "default": 8080},
    )
    env = common.setup_django("switchboard_bench_cluster", 9, "switchboard:events:bench:cluster")
    env["DB_POOL_MAX_SIZE"] = "8"
    with Cluster(env, web=args.web, ws=args.ws, workers=args.workers, beat=True, port=args.port):
        common.note(f"cluster on http://127.0.0.1:{args.port}/ (logs in {LOGS}); Ctrl-C stops")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
