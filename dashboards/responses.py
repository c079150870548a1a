"""Answers of the page callbacks, kept per published snapshot.

A published snapshot never changes, so the answer to a page callback (the rendered page,
the filter bar) is a function of the snapshot, the person asking (log-in name, role and
units, session language) and the request's body. The second time the same person sends
the same request against the same snapshot, the stored bytes are sent again without
running Dash's dispatch, the view or the JSON encoding.

The lookup runs after the guard (:mod:`dashboards.guard`) has checked the session, the
CSRF token and the origin, and has looked the viewer up again; a person who may no
longer read is refused before any stored answer is found. Only the callbacks named in
``cacheable`` are kept (downloads never are: each one is written to the audit log), only
answers with status 200, and at most ``size`` answers per worker process (least recently
used forgotten first). A newer snapshot makes every key new.

With a ``directory``, answers are also written there (one folder per snapshot, one file
per answer named by the key's hash, written whole and renamed into place), so that the
server's other worker processes find an answer one of them computed: a page is computed
once per snapshot and person for the whole server, not once per worker. Folders of
snapshots that no longer exist are removed when a new one is started. The files hold
what the person was shown (after suppression and scoping) and are readable only by the
account running the server.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import flask

#: the request path of Dash's callbacks
CALLBACK_PATH = "/_dash-update-component"


class ResponseCache:
    """Install with :meth:`install` on the Flask server, after the guard."""

    def __init__(
        self,
        *,
        snapshot: Callable[[], Path | None],
        person: Callable[[], tuple],
        cacheable: Callable[[str], bool],
        size: int = 512,
        directory: Path | None = None,
        snapshot_dir: Path | None = None,
        generation: str = "",
    ) -> None:
        self.snapshot = snapshot
        self.directory = directory
        self.snapshot_dir = snapshot_dir
        #: part of every key: answers kept by another run of the server (another
        #: release, other templates) are never sent by this one
        self.generation = generation
        self.person = person
        self.cacheable = cacheable
        self.size = size
        self._lock = threading.Lock()
        self._answers: OrderedDict[tuple, bytes] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def install(self, server: flask.Flask) -> None:
        server.before_request(self.lookup)
        server.after_request(self.store)

    def _key(self) -> tuple | None:
        req = flask.request
        if req.method != "POST" or req.path != CALLBACK_PATH:
            return None
        body = req.get_data(cache=True)
        try:
            output = json.loads(body).get("output", "")
        except (ValueError, AttributeError):
            return None
        if not isinstance(output, str) or not self.cacheable(output):
            return None
        snapshot = self.snapshot()
        if snapshot is None:
            return None
        digest = hashlib.sha256(
            repr((self.generation, self.person(), body)).encode("utf-8")
        ).hexdigest()
        return (Path(snapshot).name, digest)

    def _file(self, key: tuple) -> Path | None:
        return None if self.directory is None else self.directory / key[0] / f"{key[1]}.json"

    def lookup(self):
        key = self._key()
        if key is None:
            return None
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None:
                self._answers.move_to_end(key)
        if answer is None and (path := self._file(key)) is not None:
            try:
                answer = path.read_bytes()
            except OSError:
                answer = None
            if answer is not None:
                self._remember(key, answer)
        if answer is None:
            flask.g.response_key = key
            return None
        with self._lock:
            self.hits += 1
        flask.g.response_hit = True
        return flask.Response(answer, mimetype="application/json")

    def store(self, response: flask.Response) -> flask.Response:
        key = flask.g.pop("response_key", None)
        if key is None or flask.g.get("response_hit"):
            return response
        if (
            response.status_code != 200
            or response.mimetype != "application/json"
            or "Content-Encoding" in response.headers
        ):
            return response
        answer = response.get_data()
        with self._lock:
            self.misses += 1
        self._remember(key, answer)
        if (path := self._file(key)) is not None:
            self._write(path, answer)
        return response

    def _remember(self, key: tuple, answer: bytes) -> None:
        with self._lock:
            self._answers[key] = answer
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)

    def _write(self, path: Path, answer: bytes) -> None:
        """Write one answer whole (a reader never sees half a file); a full disk or a
        read-only folder only costs the sharing, never the answer."""
        folder = path.parent
        try:
            if not folder.exists():
                folder.mkdir(parents=True, mode=0o700, exist_ok=True)
                self._prune(folder)
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
            with os.fdopen(fd, "wb") as fh:
                fh.write(answer)
            os.replace(tmp, path)
        except OSError:
            return

    def _prune(self, keep: Path) -> None:
        """Remove the folders of snapshots no longer published (the current one and the
        few kept beside it stay)."""
        snapshots = {p.name for p in (self.snapshot_dir or Path()).glob("snapshot-*")}
        for folder in keep.parent.iterdir():
            if folder != keep and folder.is_dir() and folder.name not in snapshots:
                shutil.rmtree(folder, ignore_errors=True)
