"""Recompute the indicator tables a load touched: read inputs from the store, compute
with the pure functions of :mod:`pipeline.indicators.compute`, write through the store.

A (questionnaire, wave) is touched when its loads changed or the statistical choices
did; changes and trends that involve a touched wave are recomputed with it. Everything
runs in one transaction: the tables hold the old results or the new ones.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from pipeline.config import Statistics
from pipeline.indicators import compute as ic
from pipeline.instruments import Catalog, ContextRole, Instrument
from pipeline.registry import OrgRegistry
from pipeline.store import Store

NO_IDS = "not available: the file has no respondent id (a long-format export without one)"
#: Tables that need one row per respondent.
PER_RESPONDENT = (
    "ind_dimensions",
    "ind_reliability",
    "ind_item_total",
    "ind_drivers",
    "ind_outcomes",
    "ind_weighted",
    "ind_response",
)


def headcounts(reg: OrgRegistry, population: str | None) -> pd.DataFrame:
    """Headcounts of a population at every org level: wave, org_level, unit, headcount
    (a level's headcount is the sum over the declared units below it)."""
    if population is None:
        return pd.DataFrame(columns=["wave", "org_level", "unit", "headcount"])
    h = reg.headcounts
    h = h[h["population"] == population][["wave", "unit_code", "headcount"]]
    h = h.rename(columns={"unit_code": "unit"}).merge(reg.rollup, on="unit", how="left")
    h["headcount"] = h["headcount"].astype(float)
    out = [
        h.groupby("wave", as_index=False)["headcount"]
        .sum()
        .assign(org_level="university", unit=reg.university)
    ]
    for level in ("faculty", "department", "programme"):
        g = h.dropna(subset=[level]).groupby(["wave", level], as_index=False)["headcount"].sum()
        out.append(g.rename(columns={level: "unit"}).assign(org_level=level))
    return pd.concat(out, ignore_index=True)[["wave", "org_level", "unit", "headcount"]]


def recompute(
    store: Store,
    reg: OrgRegistry,
    catalog: Catalog,
    stats: Statistics,
    *,
    full: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> pd.DataFrame:
    """Recompute what new loads (or other statistical choices) touched; everything with
    ``full``. Returns the (instrument, wave) pairs recomputed."""
    touched = store.touched(stats.signature(), full)
    touched = touched[touched["instrument"].isin(catalog.versions)]
    if touched.empty:
        return touched
    # BLAS on one thread: its matrices are at most items × items, and waking a second
    # thread cost more than it saved (benchmarks/README.md)
    with threadpool_limits(limits=1, user_api="blas"), store.transaction():
        done = 0
        for instrument, rows in touched.groupby("instrument"):
            _instrument(store, reg, catalog, stats, instrument, sorted(rows["wave"]))
            done += len(rows)
            if progress:
                progress("indicators", done, len(touched))
        store.mark_computed(touched)
    return touched


def _instrument(
    store: Store,
    reg: OrgRegistry,
    catalog: Catalog,
    stats: Statistics,
    instrument: str,
    waves: list[str],
) -> None:
    loaded = store.loaded_waves(instrument)
    all_waves = sorted(loaded["wave"])
    has_ids = dict(zip(loaded["wave"], loaded["has_ids"], strict=True))
    # the questionnaire version each wave's files were loaded with (last year's form may
    # be used in a wave the registry assigns to a newer one); with several, the one
    # holding most rows describes the wave, and every loaded version's items count
    versions = {
        w: [str(v) for v in vs] for w, vs in zip(loaded["wave"], loaded["versions"], strict=True)
    }
    insts = {
        w: catalog.get(instrument, versions[w][0])
        if w in versions
        else catalog.for_wave(instrument, w)
        for w in sorted({*all_waves, *waves})
    }
    known = {
        w: [catalog.get(instrument, v) for v in versions.get(w, [insts[w].version])] for w in insts
    }
    any_inst = insts[waves[-1]]
    teacher = any_inst.has_context(ContextRole.TEACHER)
    keys = pd.DataFrame({"instrument": instrument, "wave": waves})
    uni, rollup = reg.university, reg.rollup
    all_counts = store.answer_counts(instrument, sorted({*all_waves, *waves}), rollup, teacher, uni)
    all_counts = _known_items(all_counts, known)
    counts = all_counts[all_counts["wave"].isin(waves)]
    heads = headcounts(reg, any_inst.population)
    resp = store.respondent_counts(instrument, waves, rollup, teacher, uni)
    resp = resp[resp["wave"].map(has_ids).fillna(False).astype(bool)]
    resp_table = ic.response_table(any_inst, resp, heads, stats)
    store.replace_rows("ind_response", resp_table, keys)
    store.replace_rows(
        "ind_items", ic.item_table({w: known[w] for w in waves}, counts, resp_table, stats), keys
    )
    # per teacher × discipline, from the same answer counts as ind_items' teacher rows
    teaching = None
    if teacher and any_inst.has_context(ContextRole.DISCIPLINE):
        parts = _known_items(store.teaching_counts(instrument, waves), known)
        teaching = ic.teaching_table({w: known[w] for w in waves}, parts, stats)
    store.replace_rows("ind_teaching", teaching, keys)
    per_resp: dict[str, list[pd.DataFrame]] = {t: [] for t in PER_RESPONDENT if t != "ind_response"}
    per_resp["ind_item_total"] = []
    unavailable = []
    level_of = dict(zip(reg.programmes["code"], reg.programmes["level"], strict=True))
    for w in waves:
        inst = insts[w]
        if not has_ids.get(w, True):
            unavailable += [(instrument, w, t, NO_IDS) for t in PER_RESPONDENT]
            continue
        extra = ("teacher",) if teacher else ()
        wide = store.respondent_rows(instrument, w, ic.data_items(inst), rollup, extra)
        if wide.empty:
            continue
        scores = ic.dimension_score_frame(inst, wide)
        per_resp["ind_dimensions"].append(ic.dimension_table(inst, w, wide, scores, uni, stats))
        alpha, item_total = ic.reliability_table(inst, w, wide)
        per_resp["ind_reliability"].append(alpha)
        per_resp["ind_item_total"].append(item_total)
        per_resp["ind_drivers"].append(ic.driver_table(inst, w, wide, scores))
        per_resp["ind_outcomes"].append(ic.outcome_table(inst, w, wide, uni, stats))
        if inst.population:
            pairs = wide.groupby(["faculty", "programme"], observed=True).size()
            cells = store.cell_answer_counts(instrument, w, [f.code for f in inst.items], rollup)
            wave_heads = _wave_headcounts(reg, inst.population, w)
            weighted, note = ic.weighted_table(
                inst,
                w,
                cells,
                pairs.rename("respondents").reset_index(),
                wave_heads,
                level_of,
                stats,
            )
            per_resp["ind_weighted"].append(weighted)
            if note:
                unavailable.append((instrument, w, "ind_weighted", note))
    for table, parts in per_resp.items():
        parts = [p for p in parts if p is not None and not p.empty]
        store.replace_rows(table, pd.concat(parts, ignore_index=True) if parts else None, keys)
    bench, kw, dunn, note = ic.comparison_tables({w: insts[w] for w in waves}, counts, stats)
    for table, frame in (("ind_benchmark", bench), ("ind_kruskal", kw), ("ind_dunn", dunn)):
        store.replace_rows(table, frame, keys)
    if note:
        answered = set(counts["wave"].unique())  # once: counts holds every answer count
        unavailable += [(instrument, w, "ind_dunn", note) for w in waves if w in answered]
    store.replace_rows(
        "ind_unavailable",
        pd.DataFrame(unavailable, columns=["instrument", "wave", "table_name", "reason"]),
        keys,
    )

    # changes between consecutive waves, where the item is comparable
    # (stored under the later wave: recomputing a wave also redoes the change into the next)
    changes, later = [], set(waves)
    for w_from, w_to in zip(all_waves, all_waves[1:], strict=False):
        if w_from not in waves and w_to not in waves:
            continue
        later.add(w_to)
        a, b = insts[w_from], insts[w_to]
        items = [
            f.code for f in b.items if catalog.comparable(instrument, f.code, a.version, b.version)
        ]
        changes.append(ic.change_table(a, b, items, all_counts, w_from, w_to, stats))
    parts = [c for c in changes if not c.empty]
    store.replace_rows(
        "ind_changes",
        pd.concat(parts, ignore_index=True) if parts else None,
        pd.DataFrame({"instrument": instrument, "wave": sorted(later)}),
    )
    # trends over all waves (>= 3), per unit and item comparable in all of them
    if len(all_waves) >= 3:
        latest = insts[all_waves[-1]]
        items = [
            f.code
            for f in latest.items
            if all(
                catalog.comparable(instrument, f.code, insts[w].version, latest.version)
                for w in all_waves
            )
        ]
        trend = ic.trend_table(latest, items, all_counts, all_waves, stats)
        all_keys = pd.DataFrame({"instrument": instrument, "wave": all_waves})
        store.replace_rows("ind_trends", trend, all_keys)


def _known_items(counts: pd.DataFrame, known: dict[str, list[Instrument]]) -> pd.DataFrame:
    """Counts of the rated items of the questionnaire versions each wave was loaded with
    (outcomes are left out)."""
    pairs = pd.DataFrame(
        list({(w, f.code) for w, insts in known.items() for inst in insts for f in inst.items}),
        columns=["wave", "item"],
    )
    return counts.merge(pairs, on=["wave", "item"]).reset_index(drop=True)


def _wave_headcounts(reg: OrgRegistry, population: str, wave: str) -> pd.DataFrame:
    h = reg.headcounts
    h = h[(h["wave"] == wave) & (h["population"] == population)]
    out = h[["unit_code", "headcount"]].rename(columns={"unit_code": "unit"})
    out = out.merge(reg.rollup[["unit", "faculty"]], on="unit", how="left")
    out["headcount"] = out["headcount"].astype(float)
    return out[np.isfinite(out["headcount"])]
