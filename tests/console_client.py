"""A person using the console over HTTP, as a browser would without its script: a cookie jar, the
forms' hidden CSRF tokens, no automatic redirects. The http tier's console tests and the browser
tests' seeding share it, with the accounts and tickets they make."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from tests.harness import RunsCommands, Serves

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def make_user(cli: RunsCommands, email: str, role: str, *extra: str, password: str = PASSWORD) -> None:
    cli("users", "create", "--email", email, "--role", role, *extra, input=password + "\n")


def notice(service: Serves, platform_key: str, content_id: str, source: str = "user_report") -> str:
    """File a notice and return its ticket's id."""
    result = service.post_json(
        "/v1/notices", {"source": source, "content_id": content_id, "explanation": "synthetic test notice"}, platform_key
    )
    assert result.status in (200, 201), result.body
    return str(result.json()["ticket_id"])


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Page:
    status: int
    text: str
    headers: Message

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    def cookies(self) -> list[str]:
        return self.headers.get_all("Set-Cookie") or []


@dataclass
class Person:
    """One browser's worth of console: its own cookies and the last page's CSRF token."""

    base: str
    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)
    csrf: str | None = None

    def _open(self, request: urllib.request.Request) -> Page:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())
        try:
            with opener.open(request, timeout=30) as r:
                return Page(r.status, r.read().decode(), r.headers)
        except urllib.error.HTTPError as error:
            return Page(error.code, error.read().decode(), error.headers)

    def get(self, path: str, **headers: str) -> Page:
        page = self._open(urllib.request.Request(self.base + path, headers=headers))
        found = _CSRF.search(page.text)
        if found:
            self.csrf = found.group(1)
        return page

    def post(self, path: str, data: dict[str, str] | list[tuple[str, str]], *, csrf: bool = True, **headers: str) -> Page:
        fields = list(data.items()) if isinstance(data, dict) else list(data)
        if csrf and self.csrf is not None:
            fields.append(("csrf", self.csrf))
        body = urllib.parse.urlencode(fields).encode()
        sent = {"Content-Type": "application/x-www-form-urlencoded", **headers}
        return self._open(urllib.request.Request(self.base + path, data=body, headers=sent, method="POST"))

    def sign_in(self, email: str, password: str = PASSWORD) -> Page:
        self.get("/console/login")
        return self.post("/console/login", {"email": email, "password": password})
