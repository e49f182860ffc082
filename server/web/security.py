"""Who may talk to the studio: a WSGI guard in front of Flask and Socket.IO alike.

A local studio sits next to a browser that visits any website, so every request passes four checks
before a handler sees it (GUIDE §5, peers' advisories):
- **Host allowlist** against DNS rebinding: a page on evil.example that rebinds its name to
  127.0.0.1 still sends `Host: evil.example`; only loopback names, what `--host` names and
  `--allow-host` names are served.
- **Origin** on every state-changing request and on the Socket.IO handshake: a foreign origin,
  `null` included, is refused. Once the Host is checked, "same origin" means Origin equals Host.
- **A token** when the studio is reachable from other machines (or `--token` is given): a cookie
  the page gets from the printed URL, or `Authorization: Bearer` for scripts.
- **Headers** on every response: a strict CSP without inline script, no framing, nosniff,
  no referrer, same-origin resources.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, quote, urlencode, urlsplit

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SOCKETIO_PREFIX = "/socket.io"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_host(value: str) -> tuple[str, str | None]:
    """'Name:7860' -> ('name', '7860'); '[::1]:7860' -> ('::1', '7860'); ('', None) if malformed."""
    try:
        parts = urlsplit("//" + value)
        return (parts.hostname or ""), (str(parts.port) if parts.port is not None else None)
    except ValueError:
        return "", None


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


@dataclass
class AccessPolicy:
    """What `--host`, `--port`, `--allow-host` and `--token` allow."""

    host: str = "127.0.0.1"
    port: int = 7860
    allow_hosts: tuple = ()
    token: str | None = None
    names: set = field(init=False)

    def __post_init__(self):
        self.names = {*LOOPBACK_NAMES}
        if self.host not in WILDCARD_HOSTS:
            self.names.add(self.host.strip("[]").lower())
        for name in self.allow_hosts:
            self.names.add(_split_host(name)[0] or name.lower())

    @classmethod
    def from_config(cls, config: dict) -> "AccessPolicy":
        host = config.get("HOST") or "127.0.0.1"
        token = config.get("TOKEN")
        return cls(host, int(config.get("PORT") or 7860), tuple(config.get("ALLOWED_HOSTS") or ()), token or None)

    @property
    def needs_token(self) -> bool:
        return self.token is not None

    @property
    def cookie_name(self) -> str:
        # Cookies are shared by every port of a host: name it by port so two studios don't collide.
        return f"studio_token_{self.port}"

    def host_allowed(self, host_header: str | None) -> bool:
        name, _ = _split_host(host_header or "")
        if not name:
            return False
        if name in self.names:
            return True
        # An IP address typed into the browser cannot be rebound; a studio bound to every interface
        # answers to the addresses it is reached by.
        return self.host in WILDCARD_HOSTS and _is_ip_literal(name)

    def origin_allowed(self, origin: str | None, host_header: str | None) -> bool:
        """Same origin: the Origin's host:port is the (already allowed) Host the request came to."""
        if not origin or origin == "null" or not self.host_allowed(host_header):
            return False
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and parts.netloc.lower() == (host_header or "").lower()

    def token_matches(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())


def new_token() -> str:
    return secrets.token_urlsafe(24)


def security_headers(host_header: str = "") -> list[tuple[str, str]]:
    """`host_header` is an allowed Host (the websocket's address); "" for refusals."""
    sockets = f" ws://{host_header} wss://{host_header}" if host_header else ""
    csp = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
           f"connect-src 'self'{sockets}; object-src 'none'; base-uri 'none'; form-action 'self'; "
           "frame-ancestors 'none'")
    return [
        ("Content-Security-Policy", csp),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
    ]


def _refuse(start_response, status: str, message: str):
    body = json.dumps({"error": message}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                            *security_headers()])
    return [body]


class RequestGuard:
    """WSGI middleware: wraps the whole app, Socket.IO's endpoint included, so no route can skip it."""

    def __init__(self, wsgi_app, policy: AccessPolicy):
        self.wsgi_app = wsgi_app
        self.policy = policy

    def __call__(self, environ, start_response):
        policy = self.policy
        host = environ.get("HTTP_HOST", "")
        if not policy.host_allowed(host):
            shown = host if len(host) <= 100 else host[:100] + "…"
            return _refuse(start_response, "400 Bad Request",
                           f"This studio does not answer to the host name {shown!r} (a guard against DNS "
                           f"rebinding). If you reach it by that name on purpose, start it with "
                           f"--allow-host {_split_host(shown)[0] or 'NAME'}.")
        path = environ.get("PATH_INFO", "")
        origin = environ.get("HTTP_ORIGIN")
        state_changing = environ.get("REQUEST_METHOD", "GET") not in SAFE_METHODS
        if origin is not None and (state_changing or path.startswith(SOCKETIO_PREFIX)) \
                and not policy.origin_allowed(origin, host):
            return _refuse(start_response, "403 Forbidden",
                           f"Requests from another site ({origin[:100]}) are refused: only the studio's own "
                           "page may change things or open a socket.")
        extra = []
        if policy.needs_token:
            outcome = self._check_token(environ, start_response, extra)
            if outcome is not None:
                return outcome

        def start_with_headers(status, headers, exc_info=None):
            have = {name.lower() for name, _ in headers}
            headers = list(headers) + [h for h in security_headers(host) if h[0].lower() not in have] + extra
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start_with_headers)

    def _check_token(self, environ, start_response, extra):
        """None to go on; a response to refuse or to trade `?token=` for the cookie."""
        policy = self.policy
        cookie = SimpleCookie()
        try:
            cookie.load(environ.get("HTTP_COOKIE", ""))
        except Exception:  # noqa: BLE001 - a malformed cookie header is just no cookie
            pass
        if policy.cookie_name in cookie and policy.token_matches(cookie[policy.cookie_name].value):
            return None
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if auth.startswith("Bearer ") and policy.token_matches(auth[7:].strip()):
            return None
        query = parse_qs(environ.get("QUERY_STRING", ""))
        given = (query.get("token") or [None])[0]
        if policy.token_matches(given):
            set_cookie = (f"{policy.cookie_name}={policy.token}; Path=/; HttpOnly; SameSite=Strict"
                          + ("; Secure" if environ.get("wsgi.url_scheme") == "https" else ""))
            path = environ.get("PATH_INFO", "")
            if environ.get("REQUEST_METHOD") == "GET" and not path.startswith(SOCKETIO_PREFIX):
                # Trade the token in the address bar for the cookie, so it leaves the history and the screen.
                rest = urlencode([(k, v) for k, vs in query.items() if k != "token" for v in vs], doseq=True)
                # Re-quoted: the decoded path must not smuggle a CR/LF into the header.
                location = quote(path, safe="/-._~") + ("?" + rest if rest else "")
                start_response("303 See Other", [("Location", "/" + location.lstrip("/")),
                                                 ("Set-Cookie", set_cookie), ("Content-Length", "0"),
                                                 ("Referrer-Policy", "no-referrer")])
                return [b""]
            extra.append(("Set-Cookie", set_cookie))
            return None
        return _refuse(start_response, "401 Unauthorized",
                       "This studio needs its access token: open the URL it printed when it started "
                       "(…/?token=…), or send 'Authorization: Bearer TOKEN'.")
