"""Content-Security-Policy and Permissions-Policy: every page, the API docs and the admin run
in a real browser under the strict policy without a single violation (no inline script, no
inline style, nothing from another origin), at phone width."""

import pytest
from django.urls import reverse

from . import page_walk
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helpers log_in)

page_urls = page_walk.page_urls  # the fixture

PHONE = {"width": 390, "height": 844}
# Records every violation the page reports, from before its first script runs.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(
    `${e.effectiveDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`
  );
});
"""


@pytest.mark.django_db
def test_every_response_carries_the_policies(client, admin_user):
    client.force_login(admin_user)
    for url in ("/", reverse("inbox"), "/api/v1/conversations/", "/api/docs/", "/login/"):
        response = client.get(url)
        policy = response["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
        assert directives["script-src"] == "'self'", url
        assert directives["style-src"] == "'self'", url
        assert directives["frame-ancestors"] == "'none'", url
        assert "unsafe" not in policy, url
        assert "camera=()" in response["Permissions-Policy"], url
        assert "geolocation=()" in response["Permissions-Policy"], url


def _violations(page) -> list[str]:
    return page.evaluate("window.__cspViolations")


def test_every_page_runs_under_the_policy_at_phone_width(  # noqa: F811
    daphne_server,  # noqa: F811
    browser,  # noqa: F811
    admin_user,
    page_urls,  # noqa: F811
):
    page = log_in(browser, daphne_server, admin_user, viewport=PHONE)  # noqa: F405
    page.context.add_init_script(RECORD_VIOLATIONS)

    # The recorder itself works: an inline script is refused and reported.
    page.goto(daphne_server.url + reverse("dashboard"))
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.ran = 1'; document.head.appendChild(s); }"
    )
    page.wait_for_function("window.__cspViolations.length > 0")
    assert page.evaluate("window.ran") is None
    assert "script-src" in _violations(page)[0]

    visited = []
    for name, url in page_urls.items():
        probe = page.request.get(daphne_server.url + url)
        if probe.status == 405 or "attachment" in probe.headers.get("content-disposition", ""):
            continue  # a POST-only action, or a download
        response = page.goto(daphne_server.url + url)
        assert response.status == 200, f"{name}: {response.status}"
        page.wait_for_load_state("load")
        assert _violations(page) == [], f"{name} ({url})"
        visited.append(name)
    assert {"inbox", "conversation_detail", "broadcast_detail", "api_tokens"} <= set(visited)

    # The API docs: Swagger UI from our own static files renders the schema, no violation.
    page.goto(daphne_server.url + "/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
    assert _violations(page) == []

    # The admin's log-in page, and the product's, as an anonymous visitor.
    anonymous = page.context.browser.new_context(viewport=PHONE)
    anonymous.add_init_script(RECORD_VIOLATIONS)
    visitor = anonymous.new_page()
    for url in ("/login/", "/admin/login/"):
        visitor.goto(daphne_server.url + url)
        visitor.wait_for_load_state("load")
        assert _violations(visitor) == [], url
    anonymous.close()
