"""A small BatSU university for tests that read computed results: the example workspace,
synthetic exports of a few questionnaires over two waves, loaded, computed and published."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Statistics
from pipeline.indicators import recompute
from pipeline.ingest import ingest_file
from pipeline.ingest.pseudonym import load_key
from pipeline.store import Store
from pipeline.synth import synthesize
from pipeline.workspace import Workspace, init_workspace

WAVES = ["2024-2025", "2025-2026"]


def build(tmp: Path, monkeypatch, *, seed: int, instruments: list[str], scale: float = 0.3):
    """The workspace (made the commands' workspace, with its own key) of ``instruments``."""
    monkeypatch.setenv("SAPAT_KEY_FILE", str(tmp / "key"))
    root = init_workspace(tmp / "ws", "batsu")
    monkeypatch.setenv("SAPAT_WORKSPACE", str(root))
    w = Workspace.at(root)
    truth = synthesize(
        tmp / "ex",
        w.registry,
        w.catalog,
        seed=seed,
        scale=scale,
        waves=WAVES,
        instruments=instruments,
    )
    s = w.settings
    with Store(s.db_path, raw_dir=s.raw_dir, audit_key=load_key()) as store:
        for meta in truth["files"]:
            ingest_file(tmp / "ex" / meta["file"], store, w.catalog, w.registry, key=load_key())
        recompute(store, w.registry, w.catalog, Statistics(), full=True)
        store.publish(s.snapshots_dir, s.stats.signature())
    return w
