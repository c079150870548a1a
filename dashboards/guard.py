"""The dashboard's guard: who is asking, whether they may, and the headers every answer
carries.

- **Log-in** with the workspace's user accounts (:mod:`pipeline.users`, Argon2 hashes);
  the session cookie holds only the user name and a CSRF token, signed with the app's own
  secret; the viewer (role and units) is looked up again on every request, so disabling a
  user takes effect at once.
- **Every request** other than the log-in page and the static files needs a session; a
  callback or a download without one gets 401 and no data. A POST whose ``Origin`` is not
  the app's own, or a callback without the session's CSRF token (Dash sends it from the
  ``_csrf_token`` cookie in the ``X-CSRFToken`` header), is refused.
- **Log-in attempts** are limited per user name and address (a shared file, so every
  worker process counts the same attempts).
- **Headers** on every response: a Content-Security-Policy without inline scripts other
  than Dash's own (by hash), ``frame-ancestors 'none'``, ``nosniff``, a strict referrer
  policy; cookies HttpOnly (the CSRF cookie excepted: the page must read it) and SameSite.
- **Audit**: log-ins, refusals and downloads go to ``data/audit/dashboard.jsonl``, each
  entry chained to the one before by the same keyed hash as the database's audit log.
"""

from __future__ import annotations

import fcntl
import hmac
import html
import json
import os
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

import flask

from pipeline.locale import t
from pipeline.publish import Viewer

#: paths anyone may fetch: the log-in page and the static JavaScript and CSS of Dash
OPEN_PREFIXES = ("/login", "/assets/", "/_dash-component-suites/", "/_favicon.ico", "/healthz")
#: failed log-ins allowed per user name and address within WINDOW seconds
MAX_FAILURES, WINDOW = 5, 300.0


class Guard:
    """The checks and the session of one app (see the module's docstring)."""

    def __init__(
        self,
        *,
        settings,
        authenticate: Callable[[str, str], Viewer | None],
        viewer_of: Callable[[str], Viewer | None],
        audit_key: bytes,
        secure_cookies: bool = False,
    ) -> None:
        self.settings = settings
        self.authenticate = authenticate
        self.viewer_of = viewer_of
        self.audit_key = audit_key
        self.secure_cookies = secure_cookies
        self.audit_dir = settings.data_dir / "audit"
        self.attempts_path = settings.data_dir / "audit" / "login-attempts.json"
        #: the hashes of the page's own inline scripts (Dash's renderer and clientside
        #: callbacks, some registered at the first request): set by the app
        self.script_hashes: Callable[[], list[str]] = list

    # ------------------------------------------------------------ requests
    def install(self, server: flask.Flask) -> None:
        server.config.update(
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Strict",
            SESSION_COOKIE_SECURE=self.secure_cookies,
            SESSION_COOKIE_NAME="sapat_session",
            PERMANENT_SESSION_LIFETIME=8 * 3600,
        )
        server.before_request(self.check)
        server.after_request(self.headers)
        server.add_url_rule("/login", "login", self.login, methods=["GET", "POST"])
        server.add_url_rule("/logout", "logout", self.logout, methods=["POST"])
        server.add_url_rule("/healthz", "healthz", lambda: "ok")

    def viewer(self) -> Viewer | None:
        """The viewer of this request, from the server-side session (None: not logged in)."""
        name = flask.session.get("user")
        if not name:
            return None
        return self.viewer_of(name)

    def user(self) -> str | None:
        return flask.session.get("user")

    def check(self):
        req = flask.request
        path = req.path
        if req.method == "POST" and not self._same_origin():
            self.audit("denied", path, "foreign origin")
            return flask.Response("Forbidden: foreign origin", status=403)
        if path.startswith(OPEN_PREFIXES):
            return None
        viewer = self.viewer()
        if viewer is None:
            if path.startswith("/_dash-") or req.method != "GET":
                self.audit("denied", path, "no session")
                return flask.Response("Unauthorized", status=401)
            return flask.redirect("/login?next=" + _safe_next(req.full_path))
        if req.method == "POST" and path.startswith("/_dash-update-component"):
            sent = req.headers.get("X-CSRFToken", "")
            if not hmac.compare_digest(sent, flask.session.get("csrf", "")):
                self.audit("denied", path, "missing or wrong CSRF token")
                return flask.Response("Forbidden: CSRF token", status=403)
        flask.g.viewer = viewer
        return None

    def _same_origin(self) -> bool:
        origin = flask.request.headers.get("Origin")
        if origin is None:
            return True  # same-origin form posts from old browsers; cookies are SameSite
        return origin.rstrip("/") == flask.request.host_url.rstrip("/")

    def headers(self, response: flask.Response) -> flask.Response:
        scripts = " ".join(["'self'", *self.script_hashes()])
        response.headers["Content-Security-Policy"] = (
            f"default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        # same-origin: the browser still sends our own Origin (no-referrer would make it
        # "null" and refuse our own forms), and never the address to other sites
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        if flask.session.get("csrf"):
            response.set_cookie(
                "_csrf_token",
                flask.session["csrf"],
                httponly=False,  # Dash's page reads it to send it back as a header
                samesite="Strict",
                secure=self.secure_cookies,
            )
        return response

    # -------------------------------------------------------------- log-in
    def login(self):
        req = flask.request
        lang = req.args.get("lang") or self.settings.language
        error = ""
        if req.method == "POST":
            name = (req.form.get("user") or "").strip()[:64]
            password = req.form.get("password") or ""
            key = f"{name.lower()}|{req.remote_addr}"
            if self._blocked(key):
                self.audit("login", name, "refused: too many attempts")
                error = t("ui.too_many", lang)
            else:
                viewer = self.authenticate(name, password) if name and password else None
                if viewer is not None:
                    self._forget(key)
                    flask.session.clear()
                    flask.session["user"] = name
                    flask.session["csrf"] = secrets.token_urlsafe(32)
                    flask.session["lang"] = lang
                    flask.session.permanent = True
                    self.audit("login", name, "ok")
                    return flask.redirect(_safe_next(req.args.get("next") or "/"))
                self._fail(key)
                self.audit("login", name, "failed")
                error = t("ui.bad_login", lang)
        return flask.Response(_login_page(lang, error), mimetype="text/html")

    def logout(self):
        self.audit("logout", self.user() or "", "ok")
        flask.session.clear()
        return flask.redirect("/login")

    # ----------------------------------------------------- rate limiting
    def _attempts(self, update: Callable[[dict], None] | None = None) -> dict:
        self.attempts_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.attempts_path, "a+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            try:
                data = json.loads(fh.read() or "{}")
            except json.JSONDecodeError:
                data = {}
            now = time.time()
            data = {k: [x for x in v if now - x < WINDOW] for k, v in data.items()}
            data = {k: v for k, v in data.items() if v}
            if update is not None:
                update(data)
                fh.seek(0)
                fh.truncate()
                fh.write(json.dumps(data))
            return data

    def _blocked(self, key: str) -> bool:
        return len(self._attempts().get(key, [])) >= MAX_FAILURES

    def _fail(self, key: str) -> None:
        self._attempts(lambda d: d.setdefault(key, []).append(time.time()))

    def _forget(self, key: str) -> None:
        self._attempts(lambda d: d.pop(key, None))

    # --------------------------------------------------------------- audit
    def audit(self, action: str, obj: str, outcome: str) -> None:
        """Append to the dashboard's audit log (chained like the database's)."""
        from pipeline.store.database import GENESIS, audit_hash

        self.audit_dir.mkdir(parents=True, exist_ok=True)
        path = self.audit_dir / "dashboard.jsonl"
        actor = self.user() if flask.has_request_context() else None
        where = flask.request.remote_addr if flask.has_request_context() else None
        with open(path, "a+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            lines = fh.read().splitlines()
            last = json.loads(lines[-1]) if lines else None
            seq, prev = (last["seq"] + 1, last["hash"]) if last else (1, GENESIS)
            at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
            who = f"{actor or '-'}@{where or '-'}"
            digest = audit_hash(self.audit_key, seq, at, who, action, obj, outcome, prev)
            entry = {
                "seq": seq,
                "at_utc": at.isoformat(),
                "actor": who,
                "action": action,
                "object": obj,
                "outcome": outcome,
                "prev_hash": prev,
                "hash": digest,
            }
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _safe_next(target: str) -> str:
    """Only a path of this site (no scheme, no host: no open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target.rstrip("?") or "/"


def _login_page(lang: str, error: str) -> str:
    e = html.escape
    langs = " · ".join(
        f'<a href="/login?lang={code}">{code}</a>' for code in ("ky", "ru", "en") if code != lang
    )
    message = f'<p role="alert" class="error">{e(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="{e(lang)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(t("ui.app", lang))}</title>
<link rel="stylesheet" href="/assets/sapat.css"></head>
<body class="login"><main>
<h1>{e(t("ui.app", lang))}</h1>{message}
<form method="post">
<label for="user">{e(t("ui.user", lang))}</label>
<input id="user" name="user" autocomplete="username" required autofocus>
<label for="password">{e(t("ui.password", lang))}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">{e(t("ui.login", lang))}</button>
</form><p class="langs">{langs}</p></main></body></html>"""
