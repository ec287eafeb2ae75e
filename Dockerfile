# Switchboard: one image for web (daphne), workers and beat; the command picks the role.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STATIC_ROOT=/srv/switchboard/staticfiles \
    MEDIA_ROOT=/srv/switchboard/media

WORKDIR /srv/switchboard
RUN useradd --system --home /srv/switchboard --shell /usr/sbin/nologin switchboard
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
# Static files are collected at build time (no secrets needed for that).
RUN DEBUG=true python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p /srv/switchboard/media /var/lib/switchboard \
    && chown -R switchboard:switchboard /srv/switchboard/media /srv/switchboard/staticfiles /var/lib/switchboard

USER switchboard
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --retries=5 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"
# No access log: it would keep full URLs, query strings and their tokens included
# (?hub.verify_token=, a WebSocket's ?token=). Errors are still logged.
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "--access-log", "/dev/null", "crm.asgi:application"]
