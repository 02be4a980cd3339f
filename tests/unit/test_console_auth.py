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
