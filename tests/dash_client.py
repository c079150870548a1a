"""Drive a Dash app's callbacks over HTTP, as the browser does, with Flask's test client
(no browser): log in, then post to ``/_dash-update-component``."""

from __future__ import annotations

import json


def _outputs(key: str) -> list[dict] | dict:
    if key.startswith(".."):
        parts = [p for p in key.strip(".").split("...") if p]
        outs = []
        for p in parts:
            cid, prop = p.rsplit(".", 1)
            outs.append({"id": cid, "property": prop})
        return outs
    cid, prop = key.rsplit(".", 1)
    return {"id": cid, "property": prop}


class DashClient:
    """One browser session against ``app``."""

    def __init__(self, app) -> None:
        self.app = app
        self.http = app.server.test_client()
        self.http.get("/healthz")

    def login(self, user: str, password: str):
        return self.http.post("/login", data={"user": user, "password": password})

    @property
    def csrf(self) -> str:
        cookie = self.http.get_cookie("_csrf_token")
        return cookie.value if cookie else ""

    def callback_key(self, output: str) -> str:
        """The callback map key holding ``output`` (e.g. ``"download.data"``)."""
        self.http.get("/")  # Dash registers the pages' router on the first request
        for key in self.app.callback_map:
            if output in key:
                return key
        raise KeyError(output)

    def call(self, output: str, values: dict[str, object], *, headers=None, trigger=None):
        """Post the callback that writes ``output`` with ``values`` ("id.prop" -> value) for
        its inputs and states; returns the response."""
        key = self.callback_key(output)
        cb = self.app.callback_map[key]

        def fill(deps):
            return [{**d, "value": values.get(f"{d['id']}.{d['property']}")} for d in deps]

        inputs = fill(cb["inputs"])
        body = {
            "output": key,
            "outputs": _outputs(key),
            "inputs": inputs,
            "state": fill(cb.get("state", [])),
            "changedPropIds": [trigger or f"{inputs[0]['id']}.{inputs[0]['property']}"],
        }
        hdrs = {"X-CSRFToken": self.csrf, "Content-Type": "application/json"}
        hdrs.update(headers or {})
        return self.http.post("/_dash-update-component", data=json.dumps(body), headers=hdrs)

    def page(self, path: str, search: str = "", **kw):
        """The router callback's answer for a page: the rendered layout (JSON)."""
        return self.call(
            "_pages_content.children",
            {"_pages_location.pathname": path, "_pages_location.search": search},
            **kw,
        )
