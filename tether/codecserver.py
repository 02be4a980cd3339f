"""A codec server: the Temporal UI and the ``temporal`` CLI read encrypted histories through it.

Temporal's remote codec protocol: ``POST /decode`` and ``POST /encode`` take and answer the JSON
form of ``temporal.api.common.v1.Payloads``; the ``X-Namespace`` header names the namespace.
Run it with ``tether codec-server``; ``tether up`` runs one beside its dev server when
encryption is on, and points the UI at it (``--ui-codec-endpoint``).

Trust. Whoever may call ``/decode`` reads every history of the namespaces it serves, so:

- A caller shows ``Authorization: Bearer <token>``, the configured token, compared in constant
  time. The ``temporal`` CLI sends it with ``--codec-auth "Bearer <token>"``. The UI sends a
  bearer only when "pass access token" is on, only to an https endpoint, and then it is the UI's
  own sign-in token, not this one: for a signed-in UI, put a proxy that checks that token in
  front, and give the proxy this one.
- Without a token, only when asked for (the local dev stack): callers on this machine's
  loopback. That keeps out other machines, not other users or programs on this one; and behind
  a proxy on the same machine every caller looks local, so never put this mode behind one.
- Browsers: CORS for the configured UI origins only (default: the settings' UI, under both
  names of loopback). A request carrying any other ``Origin`` is refused, so a page elsewhere,
  DNS-rebound to this address included, cannot use an operator's browser to get in.
- Only the allowed namespaces (default: the settings' namespace). Each is bound into the
  cipher as associated data, so a payload opens only in the namespace that wrote it.
- A refusal names what was wrong (the body, the key id, the namespace), never payload content.
"""

from __future__ import annotations

import hmac
import json
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payload, Payloads

from tether.codec import EncryptionCodec, UnknownKey, codec_for
from tether.config import CodecServerConfig, Settings

LOOPBACK = frozenset({"127.0.0.1", "::1"})
ALLOWED_HEADERS = ["content-type", "x-namespace", "authorization"]


class Refused(Exception):
    """A request the codec server answers with an error status and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def ui_origins(settings: Settings) -> list[str]:
    """The UI's origin per the settings; on loopback also the other name a browser may use."""
    url = urlsplit(settings.ui_url)
    if url.hostname in {"127.0.0.1", "localhost"}:
        return [f"http://{host}:{url.port}" for host in ("127.0.0.1", "localhost")]
    return [settings.ui_url]


def parse_payloads(body: bytes) -> list[Payload]:
    """The payloads of a request body; Refused (400) saying what is wrong with it."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError included; [[[[… too deep
        raise Refused(400, f"the body is not JSON: {e}"[:300]) from None
    if not isinstance(document, dict) or not isinstance(document.get("payloads"), list):
        raise Refused(400, 'the body must be {"payloads": [...]} (temporal.api.common.v1.Payloads)')
    try:
        return list(json_format.ParseDict(document, Payloads()).payloads)
    except json_format.ParseError as e:
        raise Refused(400, f"the body is not temporal.api.common.v1.Payloads: {e}") from None


class CodecServer:
    def __init__(self, settings: Settings, config: CodecServerConfig) -> None:
        if not settings.encryption.keys:
            raise ValueError("no encryption keys (TETHER_ENCRYPTION__KEYS): nothing to decode")
        if config.token is None and not config.loopback_without_token:
            raise ValueError("no token and no loopback access: nobody could call the codec server")
        self._settings = settings
        self._token = config.token.get_secret_value().encode() if config.token else None
        self._loopback = config.loopback_without_token
        self.origins = config.origins or ui_origins(settings)
        self.namespaces = frozenset(config.namespaces or [settings.temporal_namespace])
        self._codecs: dict[str, EncryptionCodec] = {}

    async def handle(self, request: Request) -> Response:
        """``.../encode`` or ``.../decode``: the protocol reads only the path's last part, so the
        server may be mounted under any prefix."""
        direction = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        if direction not in ("encode", "decode"):
            return JSONResponse({"error": "POST to .../encode or .../decode"}, status_code=404)
        return await self._answer(request, direction)

    async def _answer(self, request: Request, direction: str) -> Response:
        try:
            namespace = self._admit(request)
            payloads = parse_payloads(await request.body())
            codec = self._codec(namespace)
            if direction == "encode":
                result = await codec.encode(payloads)
            else:
                result = await self._decode(codec, namespace, payloads)
        except Refused as refused:
            return JSONResponse({"error": refused.message}, status_code=refused.status)
        body = json_format.MessageToJson(Payloads(payloads=result), indent=None)
        return Response(body, media_type="application/json")

    def _admit(self, request: Request) -> str:
        """The namespace a permitted request names; Refused for any other request."""
        origin = request.headers.get("origin")
        if origin is not None and origin not in self.origins:
            raise Refused(403, f"origin {origin} is not one this codec server serves")
        if not self._authenticated(request):
            raise Refused(401, "a bearer token is required (Authorization: Bearer <token>)")
        namespace = request.headers.get("x-namespace")
        if not namespace:
            raise Refused(400, "the X-Namespace header must name the namespace")
        if namespace not in self.namespaces:
            raise Refused(403, f"namespace {namespace!r} is not served by this codec server")
        return namespace

    def _authenticated(self, request: Request) -> bool:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if self._token is not None and scheme.lower() == "bearer":
            return hmac.compare_digest(credentials.strip().encode(), self._token)
        return self._loopback and request.client is not None and request.client.host in LOOPBACK

    def _codec(self, namespace: str) -> EncryptionCodec:
        codec = self._codecs.get(namespace)
        if codec is None:
            codec = codec_for(self._settings.model_copy(update={"temporal_namespace": namespace}))
            assert codec is not None  # keys were checked at start
            self._codecs[namespace] = codec
        return codec

    @staticmethod
    async def _decode(
        codec: EncryptionCodec, namespace: str, payloads: list[Payload]
    ) -> list[Payload]:
        try:
            return await codec.decode(payloads)
        except UnknownKey as e:
            raise Refused(
                400, f"a payload is encrypted with key {e.key_id!r}, which is not held here"
            ) from None
        except (InvalidTag, ValueError, DecodeError):
            raise Refused(
                400,
                f"a payload does not decrypt in namespace {namespace!r}: "
                "written in another namespace, or altered",
            ) from None


def create_app(settings: Settings, config: CodecServerConfig) -> Starlette:
    server = CodecServer(settings, config)
    cors = Middleware(
        CORSMiddleware,
        allow_origins=server.origins,
        allow_methods=["POST"],
        allow_headers=ALLOWED_HEADERS,
        allow_credentials=True,
        max_age=600,
    )
    return Starlette(
        routes=[Route("/{path:path}", server.handle, methods=["POST"])], middleware=[cors]
    )
