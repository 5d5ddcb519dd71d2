"""The handful of Rucio REST calls the web pages make, with ``requests``.

Rucio's Python client reads one rucio.cfg and one token file per process; the web server checks
many accounts' logins (each by Rucio itself) and reads and acts as its own account. Plain REST
keeps every call's identity explicit.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from inlet.config import RucioSettings
from inlet.errors import InletError

TIMEOUT = 15.0


class RucioRefused(InletError):
    """Rucio said no: wrong credentials, an expired token, or a permission denied."""


class RucioUnreachable(InletError):
    """Rucio did not answer."""


@dataclass(frozen=True)
class Token:
    account: str
    token: str
    expires_at: float  # epoch seconds


def _did(scope: str, name: str) -> str:
    return f"{quote(scope, safe='')}/{quote(name, safe='')}"


def _lines(text: str) -> list[dict[str, Any]]:
    """Rucio's list answers: one JSON document per line."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class RucioRest:
    """Rucio at ``[rucio] host``; ``service_token`` is the web server's own (``[rucio] account``)."""

    def __init__(self, settings: RucioSettings) -> None:
        self.settings = settings
        self.base = settings.host.rstrip("/")
        self.http = requests.Session()
        self._service: Token | None = None
        self._lock = threading.Lock()

    def _headers(self, token: str | None = None, **extra: str) -> dict[str, str]:
        h = dict(extra)
        if self.settings.vo and self.settings.vo != "def":
            h["X-Rucio-VO"] = self.settings.vo
        if token:
            h["X-Rucio-Auth-Token"] = token
        return h

    def _call(self, method: str, path: str, headers: dict[str, str], **kw: Any) -> requests.Response:
        try:
            res = self.http.request(method, self.base + path, headers=headers, timeout=TIMEOUT, **kw)
        except requests.RequestException as exc:
            raise RucioUnreachable(
                f"Rucio at {self.base} did not answer ({type(exc).__name__})", "start it, or fix [rucio] host"
            ) from exc
        if res.status_code in (401, 403):
            raise RucioRefused(f"Rucio refused: {_message(res)}", "log in again, or ask for the permission")
        if res.status_code >= 400:
            raise RucioRefused(f"Rucio answered {res.status_code}: {_message(res)}")
        return res

    # -- identities --------------------------------------------------------------------------------
    def login_userpass(self, account: str, username: str, password: str) -> Token:
        """A token for ACCOUNT if Rucio accepts the userpass identity; RucioRefused otherwise."""
        res = self._call(
            "GET",
            "/auth/userpass",
            self._headers(**{"X-Rucio-Account": account, "X-Rucio-Username": username, "X-Rucio-Password": password}),
        )
        return Token(account, res.headers["X-Rucio-Auth-Token"], _expiry(res))

    def whoami(self, token: str) -> str:
        """The account a token belongs to, as Rucio validates it; RucioRefused for a bad or expired one."""
        who = self._call("GET", "/accounts/whoami", self._headers(token)).json()
        return str(who["account"])

    def service_token(self) -> str:
        """The web server's own token (``[rucio] account``), renewed before it expires."""
        with self._lock:
            if self._service is None or self._service.expires_at - time.time() < 300:
                s = self.settings
                self._service = self.login_userpass(s.account, s.username, s.password)
            return self._service.token

    # -- reads, as the web server ------------------------------------------------------------------
    def account_attributes(self, account: str) -> dict[str, str]:
        res = self._call("GET", f"/accounts/{quote(account, safe='')}/attr/", self._headers(self.service_token()))
        data = res.json()
        rows = data if isinstance(data, list) else _lines(res.text)
        return {str(r["key"]): str(r["value"]) for r in rows}

    def rse_names(self) -> list[str]:
        res = self._call("GET", "/rses/", self._headers(self.service_token()))
        return [str(r["rse"]) for r in _lines(res.text)]

    def did_rules(self, scope: str, name: str) -> list[dict[str, Any]]:
        res = self._call("GET", f"/dids/{_did(scope, name)}/rules", self._headers(self.service_token()))
        return _lines(res.text)

    def dataset_files(self, scope: str, name: str) -> list[dict[str, Any]]:
        res = self._call("GET", f"/dids/{_did(scope, name)}/files", self._headers(self.service_token()))
        return _lines(res.text)

    def rule(self, rule_id: str) -> dict[str, Any]:
        res = self._call("GET", f"/rules/{quote(rule_id, safe='')}", self._headers(self.service_token()))
        out: dict[str, Any] = res.json()
        return out

    # -- actions, as the web server, for a data manager it has checked --------------------------------
    def boost_rule(self, rule_id: str) -> None:
        """Ask Rucio to retry a rule's stuck locks now."""
        self._call(
            "PUT",
            f"/rules/{quote(rule_id, safe='')}",
            self._headers(self.service_token()),
            data=json.dumps({"options": {"boost_rule": True}}),
        )


def _expiry(res: requests.Response) -> float:
    import email.utils

    raw = res.headers.get("X-Rucio-Auth-Token-Expires", "")
    try:
        return email.utils.parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return time.time() + 3600.0


def _message(res: requests.Response) -> str:
    msg = res.headers.get("ExceptionMessage") or res.text[:300]
    return " ".join(msg.split()) or res.reason
