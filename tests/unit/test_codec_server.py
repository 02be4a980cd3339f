"""The codec server's door and its answers: a round trip through /encode and /decode, the
namespace bound in and allow-listed, a bearer token compared in constant time (or loopback only,
when asked for), CORS for the UI's origin alone, and a 400 that says why for a bad body or a key
it does not hold."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from tether.codec import ENCODING, KEY_ID, new_key
from tether.codecserver import CodecServerConfig, create_app
from tether.config import EncryptionConfig, Settings

TOKEN = "codec-token"
UI = "http://127.0.0.1:8233"
AUTH = {"Authorization": f"Bearer {TOKEN}", "X-Namespace": "default"}
SETTINGS = Settings(encryption=EncryptionConfig(keys={"k1": new_key()}))


def client(settings: Settings = SETTINGS, **config: Any) -> TestClient:
    options = {"token": TOKEN, **config}
    return TestClient(create_app(settings, CodecServerConfig(**options)))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def body(*texts: str) -> dict[str, Any]:
    """Payloads as the UI sends them: metadata values and data in base64."""
    return {
        "payloads": [
            {"metadata": {"encoding": b64(b"json/plain")}, "data": b64(json.dumps(t).encode())}
            for t in texts
        ]
    }


def sealed(http: TestClient, *texts: str) -> dict[str, Any]:
    answer = http.post("/encode", json=body(*texts), headers=AUTH)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_what_is_encoded_decodes_and_only_the_key_id_shows() -> None:
    http = client()
    encrypted = sealed(http, "canary one", "canary two")
    for payload in encrypted["payloads"]:
        assert base64.b64decode(payload["metadata"]["encoding"]) == ENCODING
        assert base64.b64decode(payload["metadata"][KEY_ID]) == b"k1"
        assert b"canary" not in base64.b64decode(payload["data"])
    opened = http.post("/decode", json=encrypted, headers=AUTH)
    assert opened.status_code == 200 and opened.json() == body("canary one", "canary two")
    plain = http.post("/decode", json=body("written before"), headers=AUTH)
    assert plain.json() == body("written before")  # unencrypted payloads come back as they are
    mounted = http.post("/codec/default/decode", json=encrypted, headers=AUTH)
    assert mounted.json() == opened.json()  # the protocol reads the path's last part only


def test_the_namespace_is_allow_listed_and_bound_in() -> None:
    http = client()
    encrypted = sealed(http, "canary")
    other = {**AUTH, "X-Namespace": "other"}
    refused = http.post("/decode", json=encrypted, headers=other)
    assert refused.status_code == 403 and "'other'" in refused.json()["error"]
    missing = http.post("/decode", json=encrypted, headers={"Authorization": AUTH["Authorization"]})
    assert missing.status_code == 400 and "X-Namespace" in missing.json()["error"]

    both = client(namespaces=["default", "other"])  # same key: the namespace alone differs
    moved = both.post("/decode", json=encrypted, headers=other)
    assert moved.status_code == 400 and "does not decrypt in namespace 'other'" in moved.text
    assert "canary" not in moved.text


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x"]
)
def test_no_token_or_a_wrong_one_is_401(authorization: str | None) -> None:
    headers = {"X-Namespace": "default"}
    if authorization is not None:
        headers["Authorization"] = authorization
    for path in ("/decode", "/encode"):
        answer = client().post(path, json=body("x"), headers=headers)
        assert answer.status_code == 401 and "bearer token" in answer.json()["error"]


def test_without_a_token_only_loopback_and_only_when_asked_for() -> None:
    with pytest.raises(ValueError, match="nobody could call"):
        create_app(SETTINGS, CodecServerConfig())
    with pytest.raises(ValueError, match="TETHER_ENCRYPTION__KEYS"):
        create_app(Settings(), CodecServerConfig(token=TOKEN))
    app = create_app(SETTINGS, CodecServerConfig(loopback_without_token=True))
    namespace = {"X-Namespace": "default"}
    local = TestClient(app, client=("127.0.0.1", 50000)).post(
        "/encode", json=body("x"), headers=namespace
    )
    assert local.status_code == 200
    remote = TestClient(app, client=("10.0.0.7", 50000)).post(
        "/encode", json=body("x"), headers=namespace
    )
    assert remote.status_code == 401


def test_cors_answers_the_uis_origin_alone() -> None:
    http = client()
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
    }
    for origin in (UI, "http://localhost:8233"):  # the settings' UI, under either loopback name
        allowed = http.options("/decode", headers={"Origin": origin, **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == origin
        assert allowed.headers["access-control-allow-credentials"] == "true"
        assert {"content-type", "x-namespace", "authorization"} <= {
            h.strip().lower() for h in allowed.headers["access-control-allow-headers"].split(",")
        }
    elsewhere = http.options("/decode", headers={"Origin": "https://evil.example", **preflight})
    assert elsewhere.status_code == 400
    assert "access-control-allow-origin" not in elsewhere.headers

    answer = http.post("/decode", json=sealed(http, "x"), headers={**AUTH, "Origin": UI})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == UI
    # A page elsewhere is refused even when it holds the token (or rebinds a name to loopback).
    foreign = http.post(
        "/decode", json=body("x"), headers={**AUTH, "Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", '{"payloads": [...]}'),
        (b'{"payloads": 3}', '{"payloads": [...]}'),
        (b'{"payloads": [{"data": 7}]}', "not temporal.api.common.v1.Payloads"),
        (b'{"payloads": [{"colour": "red"}]}', "not temporal.api.common.v1.Payloads"),
        (b"[" * 100_000, "not JSON"),  # past Python's recursion limit: still a 400
    ],
)
def test_a_bad_body_is_400_and_says_why(raw: bytes, says: str) -> None:
    answer = client().post("/decode", content=raw, headers=AUTH)
    assert answer.status_code == 400 and says in answer.json()["error"]


def test_a_key_it_does_not_hold_is_400_naming_the_key() -> None:
    retired = Settings(encryption=EncryptionConfig(keys={"k0": new_key()}))
    encrypted = sealed(client(retired), "canary")
    answer = client().post("/decode", json=encrypted, headers=AUTH)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "a payload is encrypted with key 'k0', which is not held here"
    }
