"""The console's door: sign-in by POST only, a signed session (never the token) in the cookie,
with expiry and logout, tokens compared in constant time, the identity header believed only
from the configured proxies, and a shared secret required for more than one process."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from tether.config import ConsoleConfig, Settings
from tether.console import COOKIE, Console, create_app

LEAD = "lead@northwind.example"
TOKENS = {"lead-token": LEAD}


class NoTemporal:
    """The pages' client, where the test needs none: an empty queue."""

    packs: list[Any] = []

    async def pending(self, **_: Any) -> list[Any]:
        return []


def client(**console: Any) -> TestClient:
    config = ConsoleConfig(tokens=TOKENS, secret="s" * 32, **console)
    settings = Settings(console=config)
    return TestClient(create_app(settings, NoTemporal()), base_url="https://console.test")  # type: ignore[arg-type]


def signed_in(http: TestClient, token: str = "lead-token") -> Any:
    return http.post("/login", data={"token": token}, follow_redirects=False)


def test_sign_in_is_a_post_and_the_cookie_holds_a_session_not_the_token() -> None:
    http = client()
    assert http.get("/").status_code == 401
    by_url = http.get("/login", params={"token": "lead-token"}, follow_redirects=False)
    assert by_url.status_code == 200 and COOKIE not in by_url.cookies  # a form, not a sign-in
    assert signed_in(http, "guess").status_code == 401
    done = signed_in(http)
    assert done.status_code == 303
    cookie = done.cookies[COOKIE]
    assert "lead-token" not in cookie
    header = done.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header and "secure" in header
    assert "max-age=28800" in header
    page = http.get("/")
    assert page.status_code == 200 and LEAD in page.text


def test_a_session_is_read_by_every_replica_sharing_the_secret_and_by_no_other() -> None:
    first, second = client(), client()
    signed_in(first)
    second.cookies.set(COOKIE, first.cookies[COOKIE])
    assert second.get("/").status_code == 200
    other = TestClient(
        create_app(
            Settings(console=ConsoleConfig(tokens=TOKENS, secret="t" * 32)),
            NoTemporal(),  # type: ignore[arg-type]
        ),
        base_url="https://console.test",
    )
    other.cookies.set(COOKIE, first.cookies[COOKIE])
    assert other.get("/").status_code == 401


def test_a_tampered_expired_or_revoked_session_is_refused() -> None:
    http = client()
    signed_in(http)
    cookie = http.cookies[COOKIE]
    data, _, signature = cookie.partition(".")
    forged = bytes.fromhex(data).decode().replace(LEAD, "manager@northwind.example")
    http.cookies.set(COOKIE, f"{forged.encode().hex()}.{signature}")
    assert http.get("/").status_code == 401

    config = ConsoleConfig(tokens=TOKENS, secret="s" * 32, session_hours=1)
    console = Console(Settings(console=config))
    old = console.session("lead-token", LEAD)
    assert console._session_identity(old) == LEAD
    later = time.time() + 3601
    real = time.time
    try:
        time.time = lambda: later  # type: ignore[assignment]
        assert console._session_identity(old) is None
    finally:
        time.time = real  # type: ignore[assignment]
    revoked = Console(Settings(console=config.model_copy(update={"tokens": {"new": LEAD}})))
    assert revoked._session_identity(old) is None  # the token it came from is gone


def test_logout_ends_the_session_in_the_browser() -> None:
    http = client()
    signed_in(http)
    assert http.get("/").status_code == 200
    done = http.post("/logout", follow_redirects=False)
    assert done.status_code == 303 and COOKIE in done.headers["set-cookie"]
    assert http.get("/").status_code == 401


def test_a_bearer_token_is_compared_in_full() -> None:
    http = client()
    assert http.get("/", headers={"Authorization": "Bearer lead-token"}).status_code == 200
    for wrong in ("lead-toke", "lead-tokenx", "", "LEAD-TOKEN"):
        assert http.get("/", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401


def test_the_identity_header_is_believed_only_from_the_proxy() -> None:
    header = {"X-Forwarded-User": LEAD}
    direct = client(identity_header="X-Forwarded-User")  # the test client is not loopback
    assert direct.get("/", headers=header).status_code == 401
    proxied = client(identity_header="X-Forwarded-User", trusted_proxies=["testclient"])
    assert proxied.get("/", headers=header).status_code == 200


def test_replicas_must_share_a_secret() -> None:
    with pytest.raises(ValidationError, match=r"needs console\.secret"):
        ConsoleConfig(tokens=TOKENS, processes=2)
    assert ConsoleConfig(tokens=TOKENS, processes=2, secret="x" * 32).processes == 2


def test_what_a_stranger_sends_is_refused_never_raised_on() -> None:
    """A cookie or a form field that is not ASCII, a session body nested past Python's
    recursion limit, another site's sign-in form: each a refusal, never a 500."""
    http = client()
    body = b'["x",1,"y"]'.hex()
    for cookie in (f"{body}.\xe9", f"{('[' * 5000).encode().hex()}.00", "zz.\xa0"):
        raw = f"{COOKIE}={cookie}".encode("latin-1")  # as a browser may send it, not ASCII
        assert http.get("/", headers={b"Cookie": raw}).status_code == 401, cookie
    signed_in(http)
    form = http.post("/requests/r-1/approve", data={"csrf": "\u00e9"}, follow_redirects=False)
    assert form.status_code == 403
    for site in ("cross-site", "same-site"):  # another site, or a sibling subdomain
        elsewhere = http.post(
            "/login", data={"token": "lead-token"}, headers={"Sec-Fetch-Site": site}
        )
        assert elsewhere.status_code == 403 and COOKIE not in elsewhere.cookies
    here = http.post(
        "/login",
        data={"token": "lead-token"},
        headers={"Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert here.status_code == 303


def test_a_proxy_on_the_same_host_stays_the_peer() -> None:
    """Served as `tether console` serves it (tether.stack.http_config), over real HTTP on
    loopback: the identity header from the proxy on this host is believed whatever address
    the proxy says it forwards for (X-Forwarded-For must not replace the peer)."""
    import httpx

    from tether.stack import AppServer

    config = ConsoleConfig(tokens=TOKENS, secret="s" * 32, identity_header="X-Forwarded-User")
    app = create_app(Settings(console=config), NoTemporal())  # type: ignore[arg-type]
    server = AppServer(app, name="console").start()
    try:
        page = httpx.get(
            f"{server.url}/",
            headers={"X-Forwarded-User": LEAD, "X-Forwarded-For": "203.0.113.9"},
        )
    finally:
        server.stop()
    assert page.status_code == 200 and LEAD in page.text


def test_a_session_cookie_is_secure_behind_a_proxy_that_ended_tls() -> None:
    """The proxy on this host ended TLS and says so: the session cookie is Secure. The same
    header from a peer that is no trusted proxy is not believed."""
    import httpx

    from tether.stack import AppServer

    config = ConsoleConfig(tokens=TOKENS, secret="s" * 32)
    app = create_app(Settings(console=config), NoTemporal())  # type: ignore[arg-type]
    server = AppServer(app, name="console").start()
    try:
        proxied = httpx.post(
            f"{server.url}/login",
            data={"token": "lead-token"},
            headers={"X-Forwarded-Proto": "https"},
        )
        plain = httpx.post(f"{server.url}/login", data={"token": "lead-token"})
    finally:
        server.stop()
    assert "secure" in proxied.headers["set-cookie"].lower()
    assert "secure" not in plain.headers["set-cookie"].lower()
    stranger = client(trusted_proxies=[])  # the test client's peer, trusted by nobody
    told = stranger.post(
        "http://console.test/login",
        data={"token": "lead-token"},
        headers={"X-Forwarded-Proto": "https"},
        follow_redirects=False,
    )
    assert "secure" not in told.headers["set-cookie"].lower()
