"""EntraGroupSource against loopback stubs of the Entra ID token endpoint and Microsoft Graph.

Both stubs speak TLS (msal accepts only https authorities) with a throw-away CA that the
test trusts through the standard variables: ``REQUESTS_CA_BUNDLE`` (msal's requests
session) and ``SSL_CERT_FILE`` (the stdlib client used for Graph). The sign-in stub serves
what msal reads from a custom authority with instance discovery off — the tenant's
``/v2.0/.well-known/openid-configuration`` and its token endpoint — and records every
request, so a test can also see that nothing else was asked for. Graph answers in its own
JSON shapes (``value``, ``@odata.nextLink``, ``{"error": {"code", "message"}}``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bot.directory.entra import EntraGroupSource
from bot.directory.source import SourceError

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "Qx8~sEcReT.never-in-logs_4f9c"
GROUP = "02bd9fd6-8f93-4758-87c3-1fb73740a315"
USER_PATH = f"/v1.0/groups/{GROUP}/transitiveMembers/microsoft.graph.user"

Reply = tuple[int, dict[str, str], bytes]


def user(upn: str, *, mail: str | None = None, enabled: bool = True) -> dict[str, Any]:
    return {"mail": mail, "userPrincipalName": upn, "accountEnabled": enabled}


def graph_error(code: str, message: str) -> bytes:
    inner = {"date": "2025-01-01T00:00:00", "request-id": "9f1b", "client-request-id": "9f1b"}
    return json.dumps({"error": {"code": code, "message": message, "innerError": inner}}).encode()


# --- TLS --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA and a server certificate for 127.0.0.1, written as PEM files."""
    folder = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deptbot test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    out = Certs(ca=folder / "ca.pem", cert=folder / "cert.pem", key=folder / "key.pem")
    out.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return out


# --- stubs ------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._reply()

    def do_POST(self) -> None:
        self._reply()

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        status, headers, payload = self.server.app.handle(self.command, self.path, self.headers, body)
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: Any, certs: Certs) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs.cert, certs.key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.app = app
        self.base = f"https://127.0.0.1:{self.server_address[1]}"


@dataclass
class Login:
    """The tenant's OpenID configuration and token endpoint, as msal reads them."""

    base: str = ""
    scope: str = ""  # the scope msal must ask for: {graph host}/.default
    requests: list[tuple[str, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    def handle(self, method: str, path: str, headers: Any, body: str) -> Reply:
        self.requests.append((method, path))
        if method == "GET" and path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
            return 200, {}, json.dumps(self.openid_configuration()).encode()
        if method == "POST" and path == f"/{TENANT}/oauth2/v2.0/token":
            return self.token(parse_qs(body))
        if method == "GET" and path.endswith("/v2.0/.well-known/openid-configuration"):
            return 400, {}, json.dumps({"error": "invalid_tenant", "error_codes": [90002]}).encode()
        return 404, {}, b"{}"

    def openid_configuration(self) -> dict[str, Any]:
        root = f"{self.base}/{TENANT}"
        return {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "jwks_uri": f"{self.base}/{TENANT}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "issuer": f"{self.base}/{TENANT}/v2.0",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "tenant_region_scope": "EU",
        }

    def token(self, form: dict[str, list[str]]) -> Reply:
        one = {key: values[0] for key, values in form.items()}
        if one.get("client_secret") != SECRET or one.get("client_id") != CLIENT_ID:
            return (
                401,
                {},
                json.dumps(
                    {
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret provided. "
                        "Trace ID: 0b1c Correlation ID: 5e6f Timestamp: 2025-01-01 00:00:00Z",
                        "error_codes": [7000215],
                        "timestamp": "2025-01-01 00:00:00Z",
                        "trace_id": "0b1c",
                        "correlation_id": "5e6f",
                    }
                ).encode(),
            )
        assert one.get("grant_type") == "client_credentials"
        assert one.get("scope", "").split() == [self.scope]
        token = f"eyJ0eXAiOiJKV1QifQ.app-token-{len(self.issued) + 1}.c2ln"
        self.issued.append(token)
        body = {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        return 200, {}, json.dumps(body).encode()


@dataclass
class Graph:
    """``GET /v1.0/groups/{id}/transitiveMembers/microsoft.graph.user`` with paging."""

    login: Login
    base: str = ""
    groups: dict[str, list[list[dict[str, Any]]]] = field(default_factory=dict)
    script: deque[Reply] = field(default_factory=deque)  # served first, one per request
    expired: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path?query, token)
    next_links: list[str] = field(default_factory=list)

    def handle(self, method: str, path: str, headers: Any, body: str) -> Reply:
        token = (headers.get("Authorization") or "").removeprefix("Bearer ")
        self.requests.append((path, token))
        if self.script:
            return self.script.popleft()
        if token not in self.login.issued or token in self.expired:
            challenge = {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'}
            return 401, challenge, graph_error("InvalidAuthenticationToken", "Access token has expired.")
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        group = parts.path.split("/")[3]
        if group not in self.groups:
            message = f"Resource '{group}' does not exist or one of its queried reference-property objects"
            return 404, {}, graph_error("Request_ResourceNotFound", message + " are not present.")
        assert parts.path == f"/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user"
        assert query["$select"] == ["mail,userPrincipalName,accountEnabled"]
        assert query["$top"] == ["999"]
        pages = self.groups[group]
        index = int(query.get("$skiptoken", ["RFNwdAIAAQAAA0"])[0].removeprefix("RFNwdAIAAQAAA"))
        page: dict[str, Any] = {
            "@odata.context": f"{self.base}/v1.0/$metadata#users(mail,userPrincipalName,accountEnabled)",
            "value": pages[index],
        }
        if index + 1 < len(pages):
            query_without_token = parts.query.split("&$skiptoken=")[0]
            link = f"{self.base}{parts.path}?{query_without_token}&$skiptoken=RFNwdAIAAQAAA{index + 1}"
            self.next_links.append(link)
            page["@odata.nextLink"] = link
        return 200, {}, json.dumps(page).encode()


@dataclass
class Stubs:
    login: Login
    graph: Graph

    def source(self, **overrides: Any) -> EntraGroupSource:
        settings: dict[str, Any] = {
            "tenant_id": TENANT,
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "authority_url": self.login.base,
            "graph_url": f"{self.graph.base}/v1.0",
            "timeout": 5.0,
        }
        return EntraGroupSource(**{**settings, **overrides})

    def token_requests(self) -> int:
        return sum(1 for method, path in self.login.requests if method == "POST")


@pytest.fixture
def stubs(certs: Certs, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubs]:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))
    login = Login()
    graph = Graph(login=login)
    servers = [_Server(login, certs), _Server(graph, certs)]
    login.base, graph.base = servers[0].base, servers[1].base
    login.scope = f"{graph.base}/.default"
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield Stubs(login=login, graph=graph)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- membership ---------------------------------------------------------------------------


def test_pages_through_every_transitive_member(stubs: Stubs) -> None:
    stubs.graph.groups[GROUP] = [
        [user("adele.vance@contoso.com", mail="Adele.Vance@contoso.com")],
        [user("alex.w@contoso.com", mail="alex.w@contoso.com"), user("megan@contoso.com")],
        [user("lynne@contoso.com", mail="lynne.robbins@contoso.com")],
    ]
    source = stubs.source()

    assert source.kind == "entra"
    assert source.members(GROUP) == {
        "adele.vance@contoso.com",
        "alex.w@contoso.com",
        "megan@contoso.com",
        "lynne.robbins@contoso.com",
    }
    paths = [path for path, _ in stubs.graph.requests]
    first = f"{USER_PATH}?$select=mail,userPrincipalName,accountEnabled&$top=999"
    assert paths == [first] + [
        urlsplit(link)._replace(scheme="", netloc="").geturl() for link in stubs.graph.next_links
    ]
    assert len(paths) == 3
    # msal read the tenant's configuration and asked for one token, from the stub only
    assert stubs.login.requests == [
        ("GET", f"/{TENANT}/v2.0/.well-known/openid-configuration"),
        ("POST", f"/{TENANT}/oauth2/v2.0/token"),
    ]

    assert source.members(GROUP.upper()) == source.members(f" {GROUP} ")
    assert stubs.token_requests() == 1  # the cached token served every later call


def test_disabled_accounts_and_guests_without_mail_are_not_members(stubs: Stubs) -> None:
    stubs.graph.groups[GROUP] = [
        [
            user("ada@contoso.com", mail="Ada.Lovelace@contoso.com"),  # mail wins over the UPN
            user("Grace@Contoso.onmicrosoft.com"),  # no mailbox: the UPN is a plain address
            user("left@contoso.com", mail="left@contoso.com", enabled=False),
            user("bob_fabrikam.com#EXT#@contoso.onmicrosoft.com"),  # guest, no mail
            user("eve_fabrikam.com#EXT#@contoso.onmicrosoft.com", mail="Eve@Fabrikam.com"),
            user("E1234567"),  # a UPN that is not an address, no mail
        ]
    ]

    assert stubs.source().members(GROUP) == {
        "ada.lovelace@contoso.com",
        "grace@contoso.onmicrosoft.com",
        "eve@fabrikam.com",
    }


def test_an_empty_group_is_empty(stubs: Stubs) -> None:
    stubs.graph.groups[GROUP] = [[]]
    assert stubs.source().members(GROUP) == frozenset()


def test_users_without_their_details_mean_a_missing_permission(stubs: Stubs) -> None:
    # Graph's "limited information" for members the app may not read: id and type, nulls
    limited = {"@odata.type": "#microsoft.graph.user", "id": "4d0e", "mail": None}
    stubs.graph.groups[GROUP] = [[user("a@contoso.com"), limited]]

    with pytest.raises(SourceError, match=r"User\.Read\.All"):
        stubs.source().members(GROUP)


# --- throttling ---------------------------------------------------------------------------


def test_429_waits_for_retry_after_then_succeeds(stubs: Stubs) -> None:
    stubs.graph.groups[GROUP] = [[user("a@contoso.com")]]
    stubs.graph.script.append(
        (429, {"Retry-After": "1"}, graph_error("TooManyRequests", "Too many requests"))
    )

    started = time.monotonic()
    assert stubs.source().members(GROUP) == {"a@contoso.com"}
    assert time.monotonic() - started >= 1.0
    assert [path for path, _ in stubs.graph.requests] == [stubs.graph.requests[0][0]] * 2


def test_retries_are_bounded(stubs: Stubs) -> None:
    stubs.graph.groups[GROUP] = [[user("a@contoso.com")]]
    unavailable: Reply = (503, {"Retry-After": "0"}, graph_error("serviceNotAvailable", "Try later"))
    stubs.graph.script.extend([unavailable] * 10)

    with pytest.raises(SourceError, match="HTTP 503 from Microsoft Graph after 3 retries"):
        stubs.source().members(GROUP)
    assert len(stubs.graph.requests) == 4


def test_a_long_retry_after_ends_the_refresh_without_sleeping(stubs: Stubs) -> None:
    stubs.graph.script.append((429, {"Retry-After": "3600"}, graph_error("TooManyRequests", "")))

    started = time.monotonic()
    with pytest.raises(SourceError, match="retry after 3600 s"):
        stubs.source().members(GROUP)
    assert time.monotonic() - started < 5


# --- tokens -------------------------------------------------------------------------------


def test_an_expired_token_is_replaced_once(stubs: Stubs) -> None:
    stubs.graph.groups[GROUP] = [[user("a@contoso.com")], [user("b@contoso.com")]]
    source = stubs.source()
    assert source.members(GROUP) == {"a@contoso.com", "b@contoso.com"}
    first = stubs.login.issued[0]
    stubs.graph.expired.add(first)  # Graph now answers 401 to the token msal has cached
    stubs.graph.requests.clear()

    assert source.members(GROUP) == {"a@contoso.com", "b@contoso.com"}
    second = stubs.login.issued[1]
    assert [token for _, token in stubs.graph.requests] == [first, second, second]
    assert stubs.token_requests() == 2


def test_a_new_token_rejected_too_fails(stubs: Stubs) -> None:
    stubs.graph.groups[GROUP] = [[user("a@contoso.com")]]
    rejected: Reply = (401, {}, graph_error("InvalidAuthenticationToken", "Access token validation failure."))
    stubs.graph.script.extend([rejected] * 5)

    with pytest.raises(SourceError, match="HTTP 401 from Microsoft Graph"):
        stubs.source().members(GROUP)
    assert stubs.token_requests() == 2  # one refresh per call, not a loop
    assert len(stubs.graph.requests) == 2


def test_a_wrong_secret_names_the_error_code_only(stubs: Stubs) -> None:
    with pytest.raises(SourceError) as caught:
        stubs.source(client_secret="not-the-secret").members(GROUP)

    assert caught.value.reason == "token request failed: invalid_client (AADSTS7000215)"
    assert stubs.graph.requests == []


def test_an_unknown_tenant_or_unreachable_sign_in_fails(stubs: Stubs) -> None:
    with pytest.raises(SourceError, match="does not know this tenant"):
        stubs.source(tenant_id="nosuchtenant.onmicrosoft.com").members(GROUP)
    with pytest.raises(SourceError, match="cannot reach the Microsoft Entra ID sign-in endpoint"):
        stubs.source(authority_url=f"https://127.0.0.1:{closed_port()}").members(GROUP)
    assert stubs.graph.requests == []


# --- failures -----------------------------------------------------------------------------


def test_a_deleted_group_is_not_found(stubs: Stubs) -> None:
    with pytest.raises(SourceError) as caught:
        stubs.source().members(GROUP)
    assert caught.value.reason == "group not found"


def test_403_names_the_missing_permissions(stubs: Stubs) -> None:
    denied = graph_error("Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    stubs.graph.script.append((403, {}, denied))

    with pytest.raises(SourceError) as caught:
        stubs.source().members(GROUP)
    assert "GroupMember.Read.All" in caught.value.reason
    assert "User.Read.All" in caught.value.reason
    assert "Insufficient" not in caught.value.reason  # no response body


def test_a_next_link_off_the_graph_host_fails_closed(stubs: Stubs) -> None:
    foreign = f"{stubs.login.base}/v1.0/groups/{GROUP}/transitiveMembers/microsoft.graph.user?$skiptoken=x"
    page = {"value": [user("a@contoso.com")], "@odata.nextLink": foreign}
    stubs.graph.script.append((200, {}, json.dumps(page).encode()))

    with pytest.raises(SourceError, match=r"unexpected @odata\.nextLink"):
        stubs.source().members(GROUP)
    assert all(method == "POST" or "well-known" in path for method, path in stubs.login.requests)


def test_a_redirect_is_not_followed(stubs: Stubs) -> None:
    elsewhere = {"Location": f"{stubs.login.base}/collect"}
    stubs.graph.script.append((302, elsewhere, b""))

    with pytest.raises(SourceError, match="HTTP 302 from Microsoft Graph"):
        stubs.source().members(GROUP)
    assert ("GET", "/collect") not in stubs.login.requests


@pytest.mark.parametrize("body", [b"<html>busy</html>", b'{"value": {}}', b'{"value": ["x"]}'])
def test_an_answer_of_the_wrong_shape_fails(stubs: Stubs, body: bytes) -> None:
    stubs.graph.script.append((200, {}, body))
    with pytest.raises(SourceError, match="unexpected response from Microsoft Graph"):
        stubs.source().members(GROUP)


def test_graph_unreachable(stubs: Stubs) -> None:
    source = stubs.source(graph_url=f"https://127.0.0.1:{closed_port()}/v1.0")
    stubs.login.scope = source._scope  # the token is for that (closed) Graph host
    with pytest.raises(SourceError, match="cannot reach Microsoft Graph"):
        source.members(GROUP)


@pytest.mark.parametrize("ref", ["hr-team", "", "02bd9fd6-8f93-4758-87c3", f"{{{GROUP}}}", f"{GROUP}/../x"])
def test_a_ref_that_is_not_a_guid_never_calls_out(stubs: Stubs, ref: str) -> None:
    with pytest.raises(SourceError, match="GUID"):
        stubs.source().members(ref)
    assert stubs.login.requests == [] and stubs.graph.requests == []


# --- secrets ------------------------------------------------------------------------------


def test_the_secret_and_tokens_never_reach_errors_or_logs(
    stubs: Stubs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stubs.graph.groups[GROUP] = [[user("a@contoso.com")], [user("b@contoso.com")]]
    source = stubs.source()
    reasons = [repr(source)]
    source.members(GROUP)
    stubs.graph.expired.add(stubs.login.issued[0])
    source.members(GROUP)
    stubs.graph.script.extend(
        [
            (401, {}, graph_error("InvalidAuthenticationToken", "")),
            (401, {}, graph_error("InvalidAuthenticationToken", "")),
            (403, {}, graph_error("Authorization_RequestDenied", "")),
        ]
    )
    for attempt in (source, source, stubs.source(client_secret=SECRET + "-wrong")):
        with pytest.raises(SourceError) as caught:
            attempt.members(GROUP)
        reasons += [str(caught.value), repr(caught.value)]

    assert len(stubs.login.issued) >= 2
    for text in [caplog.text, *reasons]:
        assert SECRET not in text
        assert not any(token in text for token in stubs.login.issued)


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"graph_url": "http://graph.microsoft.com/v1.0"},
        {"authority_url": "http://login.microsoftonline.com"},
        {"client_secret": ""},
        {"client_id": " "},
        {"tenant_id": "../common"},
        {"timeout": 0},
    ],
)
def test_a_configuration_that_cannot_work_is_refused_up_front(overrides: dict[str, Any]) -> None:
    settings: dict[str, Any] = {"tenant_id": TENANT, "client_id": CLIENT_ID, "client_secret": SECRET}
    with pytest.raises(ValueError) as caught:
        EntraGroupSource(**{**settings, **overrides})
    assert SECRET not in str(caught.value)


def test_the_defaults_are_the_global_cloud() -> None:
    source = EntraGroupSource(tenant_id=TENANT, client_id=CLIENT_ID, client_secret=SECRET)
    assert source._scope == "https://graph.microsoft.com/.default"
    assert source._authority == f"https://login.microsoftonline.com/{TENANT}"
    assert SECRET not in repr(source)
