"""The indicator tables as pure functions: frames in, one stored table's rows out.

Each function is named after the table it returns (``item_table`` → ``ind_items``) and
returns exactly the columns declared in :mod:`pipeline.store.tables`. Nothing here reads
or writes the store (see :mod:`pipeline.indicators.run`), and nothing knows a
questionnaire by name: scales, thresholds, reverse items, the overall dimension, outcome
measures and the population are read from the :class:`~pipeline.instruments.Instrument`.

Inputs
------
``counts``
    valid answers (code >= 0) per wave × ``org_level`` × ``unit`` × item × answer
    (column ``count``), every level of the org tree (university, faculty, department,
    programme, and teacher where the questionnaire names one).
``resp``
    respondents per wave × org_level × unit.
``wide``
    one row per respondent of one wave: ``programme``, ``department``, ``faculty``,
    (``teacher``), and each item as a float, NaN when not answered.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats as sps

from pipeline.config import Statistics
from pipeline.indicators.levels import COMPARED_LEVELS, ORG_LEVELS  # noqa: E402, F401
from pipeline.instruments import ContextRole, Instrument, Role, Scale, Statistic
from pipeline.methods.drivers import key_drivers
from pipeline.methods.estimators import describe_counts, proportion_ci, reliability_flag
from pipeline.methods.inference import (
    dunn_pairwise,
    kruskal_from_counts,
    trend_logistic,
    unit_vs_rest,
    wave_change,
)
from pipeline.methods.reliability import dimension_scores, reliability_tables
from pipeline.methods.weighting import weighted_estimates_from_counts

#: Dunn's pairwise tests only between at most this many units of a level (30 units: 435
#: pairs per item); beyond, each unit against the rest (ind_benchmark) is the readable view.
MAX_PAIRWISE_UNITS = 30
#: Reason stored in ``reliability_reason`` when a headcount is below its respondents.
HEADCOUNT_TOO_LOW = "headcount_below_respondents"


def const(n: int, value: str) -> pd.Categorical:
    """A column holding one text in every row, without a string per row."""
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[value])


def _scale_groups(inst_items: Mapping[str, Scale]) -> dict[tuple[int, int, int, int], list[str]]:
    """Items grouped by their scale's (low, high, positive_from, negative_to)."""
    out: dict[tuple[int, int, int, int], list[str]] = {}
    for item, s in inst_items.items():
        out.setdefault((s.low, s.high, s.positive_from, s.negative_to), []).append(item)
    return out


def item_scales(insts: Mapping[str, Instrument]) -> dict[str, Scale]:
    """Item code → its scale, over the questionnaire versions of the given waves (a code
    means the same question, on the same scale, in every version)."""
    out: dict[str, Scale] = {}
    for inst in insts.values():
        for f in inst.items:
            out[f.code] = inst.scale_of(f)
    return out


# ------------------------------------------------------------- respondents
def response_table(
    inst: Instrument, resp: pd.DataFrame, heads: pd.DataFrame | None, stats: Statistics
) -> pd.DataFrame:
    """``ind_response``: respondents, headcount, response rate and the reliability flag.

    A headcount below its respondents (a declaration that is out of date) gives no rate
    and the reason ``headcount_below_respondents``; the rest is computed as usual.
    """
    out = resp[["wave", "org_level", "unit", "respondents"]].copy()
    if heads is not None and not heads.empty:
        out = out.merge(heads, on=["wave", "org_level", "unit"], how="left")
    else:
        out["headcount"] = np.nan
    head = out["headcount"].to_numpy(dtype=float)
    n = out["respondents"].to_numpy(dtype=float)
    known = np.isfinite(head) & (head > 0)
    too_low = known & (head < n)
    out["response_rate"] = np.where(known & ~too_low, n / np.where(known, head, 1), np.nan)
    flags = reliability_flag(
        n,
        out["response_rate"].to_numpy(),
        min_n=stats.min_n_reliable,
        min_rate=stats.min_rate_reliable,
    )
    out["indicative_only"] = np.asarray(flags["indicative_only"]) | too_low
    reason = pd.Series(np.asarray(flags["reliability_reason"], dtype=object), index=out.index)
    reason = reason.where(
        ~too_low,
        reason.fillna("")
        .str.cat(pd.Series(HEADCOUNT_TOO_LOW, index=out.index), sep=";")
        .str.strip(";"),
    )
    out["reliability_reason"] = reason.where(reason.notna() & (reason != ""), None)
    out["instrument"] = inst.id
    return out


def _fpc_population(resp_table: pd.DataFrame, stats: Statistics) -> pd.DataFrame | None:
    """(wave, org_level, unit, headcount) of the cells whose intervals take the finite
    population correction: a known headcount holding the respondents, not teachers, and
    (``fpc = auto``) a response rate at or above the reliability threshold."""
    if stats.fpc == "off" or resp_table.empty:
        return None
    ok = resp_table["response_rate"].notna() & (resp_table["org_level"] != "teacher")
    if stats.fpc == "auto":
        ok &= resp_table["response_rate"] >= stats.min_rate_reliable
    pop = resp_table.loc[ok, ["wave", "org_level", "unit", "headcount"]]
    return pop if not pop.empty else None


# ------------------------------------------------------------------- items
def item_table(
    insts: Mapping[str, Instrument | list[Instrument]],
    counts: pd.DataFrame,
    resp_table: pd.DataFrame,
    stats: Statistics,
) -> pd.DataFrame:
    """``ind_items``: per wave × unit × item, the distribution, mean, SD, interpolated
    median and % positive with its interval, each item on its own scale.

    ``insts``: the questionnaire version of each wave, or the versions its files were
    loaded with (first = the one describing the wave).
    """
    insts = _as_lists(insts)
    if counts.empty:
        return pd.DataFrame()
    population = _fpc_population(resp_table, stats)
    out = _describe_items(insts, counts, ["wave", "org_level", "unit", "item"], stats, population)
    if out.empty:
        return out
    out["fpc"] = out["headcount"].notna() if "headcount" in out else False
    if "headcount" in out:
        out = out.drop(columns=["headcount"])
    rt = resp_table[
        [
            "wave",
            "org_level",
            "unit",
            "headcount",
            "respondents",
            "response_rate",
            "indicative_only",
            "reliability_reason",
        ]
    ]
    out = out.merge(rt, on=["wave", "org_level", "unit"], how="left")
    flags = reliability_flag(
        out["n"].to_numpy(),
        out["response_rate"].to_numpy(),
        min_n=stats.min_n_reliable,
        min_rate=stats.min_rate_reliable,
    )
    too_low = out["reliability_reason"].fillna("").str.contains(HEADCOUNT_TOO_LOW)
    out["indicative_only"] = np.asarray(flags["indicative_only"]) | too_low.to_numpy()
    reason = pd.Series(np.asarray(flags["reliability_reason"], dtype=object), index=out.index)
    reason = reason.where(
        ~too_low,
        reason.fillna("")
        .str.cat(pd.Series(HEADCOUNT_TOO_LOW, index=out.index), sep=";")
        .str.strip(";"),
    )
    out["reliability_reason"] = reason.where(reason.notna() & (reason != ""), None)
    return _with_item_meta(out, insts)


def _as_lists(
    insts: Mapping[str, Instrument | list[Instrument]],
) -> dict[str, list[Instrument]]:
    return {w: v if isinstance(v, list) else [v] for w, v in insts.items()}


def _describe_items(
    insts: Mapping[str, list[Instrument]],
    counts: pd.DataFrame,
    by: list[str],
    stats: Statistics,
    population: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """:func:`~pipeline.methods.estimators.describe_counts` of each item on its own scale,
    per ``by`` group, with the scale's columns (empty when no item has counts)."""
    parts = []
    every = {f"{w}/{i.version}": i for w, vs in insts.items() for i in vs}
    for (low, high, pos, neg), items in _scale_groups(item_scales(every)).items():
        sub = counts[counts["item"].isin(items)]
        if sub.empty:
            continue
        out = describe_counts(
            sub,
            by=by,
            points=high - low + 1,
            positive_from=pos,
            negative_to=neg,
            low=low,
            confidence=stats.confidence,
            method=stats.ci_method,
            population=population,
        )
        out["scale_low"], out["scale_high"] = low, high
        out["positive_from"], out["negative_to"] = pos, neg
        parts.append(out)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _with_item_meta(out: pd.DataFrame, insts: Mapping[str, list[Instrument]]) -> pd.DataFrame:
    """``out`` with each item's version, dimension and reverse flag, and the
    questionnaire's id."""
    meta = pd.DataFrame(
        [
            (w, inst.version, f.code, f.dimension, f.reverse)
            for w, vs in insts.items()
            for inst in vs
            for f in inst.items
        ],
        columns=["wave", "version", "item", "dimension", "reverse"],
    ).drop_duplicates(["wave", "item"])
    out = out.merge(meta, on=["wave", "item"], how="left")
    out["instrument"] = next(iter(insts.values()))[0].id
    return out


#: columns of describe_counts that ind_teaching leaves out (its distribution)
_NOT_IN_TEACHING = ("median_interpolated",)


def teaching_table(
    insts: Mapping[str, Instrument | list[Instrument]],
    counts: pd.DataFrame,
    stats: Statistics,
) -> pd.DataFrame:
    """``ind_teaching``: per wave × teacher × discipline × item, n, mean and % positive
    with its interval, by the methods of :func:`item_table` (no finite population
    correction: a teacher has no headcount, as in ind_items).

    ``counts``: valid answers per wave × ``teacher`` × ``discipline`` × item × answer, every
    answer that names a teacher (a missing discipline is a cell of its own, so that a
    teacher's cells add up to their row of ind_items).
    """
    insts = _as_lists(insts)
    if counts.empty:
        return pd.DataFrame()
    out = _describe_items(insts, counts, ["wave", "teacher", "discipline", "item"], stats)
    if out.empty:
        return out
    pct_codes = [c for c in out.columns if c.startswith("pct_") and c[4:].isdigit()]
    out = out.drop(columns=[*pct_codes, *_NOT_IN_TEACHING])
    flags = reliability_flag(
        out["n"].to_numpy(),
        np.full(len(out), np.nan),
        min_n=stats.min_n_reliable,
        min_rate=stats.min_rate_reliable,
    )
    out["indicative_only"] = np.asarray(flags["indicative_only"])
    reason = pd.Series(np.asarray(flags["reliability_reason"], dtype=object), index=out.index)
    out["reliability_reason"] = reason.where(reason.notna() & (reason != ""), None)
    out["discipline"] = out["discipline"].astype(object).where(out["discipline"].notna(), None)
    return _with_item_meta(out, insts)


# ------------------------------------------------------------- respondents
def _groups(inst: Instrument, wide: pd.DataFrame, university: str) -> list[tuple[str, pd.Series]]:
    """(org level, unit of each respondent) for every level results are reported at."""
    out = [
        ("university", pd.Series(university, index=wide.index)),
        ("faculty", wide["faculty"]),
        ("department", wide["department"]),
        ("programme", wide["programme"]),
    ]
    if inst.has_context(ContextRole.TEACHER) and "teacher" in wide:
        out.append(("teacher", wide["teacher"]))
    return out


def dimension_scale(inst: Instrument, dimension: str) -> Scale:
    """The scale of a dimension's items (a workbook check makes them share one)."""
    return inst.item_scale(inst.dimension_items()[dimension][0])


def dimension_score_frame(inst: Instrument, wide: pd.DataFrame) -> pd.DataFrame:
    """Per-respondent dimension scores: the mean of the respondent's answered items of
    each dimension (at least half answered), reverse items flipped as low + high - x."""
    dims = inst.dimension_items()
    reverse = {f.code for f in inst.items if f.reverse}
    out = {}
    by_range: dict[tuple[int, int], dict[str, list[str]]] = {}
    for d, items in dims.items():
        s = dimension_scale(inst, d)
        by_range.setdefault((s.low, s.high), {})[d] = [c for c in items if c in wide]
    for (low, high), group in by_range.items():
        group = {d: items for d, items in group.items() if items}
        if not group:
            continue
        scores = dimension_scores(wide, group, reverse=reverse, points=high - low + 1, low=low)
        out.update({d: scores[d] for d in group})
    return pd.DataFrame(out, index=wide.index)[[d for d in dims if d in out]]


def dimension_table(
    inst: Instrument,
    wave: str,
    wide: pd.DataFrame,
    scores: pd.DataFrame,
    university: str,
    stats: Statistics,
) -> pd.DataFrame:
    """``ind_dimensions``: dimension scores per unit (n, mean with t interval, % of
    scores at or above the scale's positive threshold with its interval)."""
    if scores.empty:
        return pd.DataFrame()
    dims = list(scores.columns)
    scales = [dimension_scale(inst, d) for d in dims]
    thresholds = np.array([s.positive_from for s in scales], dtype=float)
    positive = pd.DataFrame(scores.to_numpy() >= thresholds, index=scores.index, columns=dims)
    rows = []
    # one groupby per level for all dimensions; units factorized once per level
    for level, keys in _groups(inst, wide, university):
        ok = keys.notna().to_numpy()
        if not ok.any():
            continue
        sub = scores[ok]
        codes, units = pd.factorize(keys[ok], sort=True)
        g = sub.groupby(codes)
        n, mean, sd = g.count(), g.mean(), g.std(ddof=1)
        pos = positive[ok].groupby(codes).sum()
        at = np.repeat(n.index.to_numpy(), len(dims))
        rows.append(
            pd.DataFrame(
                {
                    "org_level": level,
                    "unit": np.asarray(units, dtype=object)[at],
                    "dimension": np.tile(np.asarray(dims, dtype=object), len(n)),
                    "n": n[dims].to_numpy().ravel(),
                    "mean": mean[dims].to_numpy().ravel(),
                    "sd": sd[dims].to_numpy().ravel(),
                    "x_positive": pos[dims].to_numpy().ravel().astype("int64"),
                    "scale_low": np.tile([s.low for s in scales], len(n)),
                    "scale_high": np.tile([s.high for s in scales], len(n)),
                    "positive_from": np.tile([s.positive_from for s in scales], len(n)),
                }
            )
        )
    out = pd.concat(rows, ignore_index=True)
    out = out[out["n"] > 0].reset_index(drop=True)
    n = out["n"].to_numpy(float)
    se = out["sd"].to_numpy() / np.sqrt(n)
    t = sps.t.ppf(0.5 + stats.confidence / 2, np.maximum(n - 1, 1))
    out["se_mean"] = se
    out["mean_ci_low"], out["mean_ci_high"] = out["mean"] - t * se, out["mean"] + t * se
    ci = proportion_ci(
        out["x_positive"].to_numpy(), n, confidence=stats.confidence, method=stats.ci_method
    )
    out["pct_positive"] = 100 * out["x_positive"] / n
    out["pct_positive_ci_low"] = 100 * ci["ci_low"].to_numpy()
    out["pct_positive_ci_high"] = 100 * ci["ci_high"].to_numpy()
    out["ci_method"], out["confidence"] = stats.ci_method, stats.confidence
    out["instrument"], out["wave"] = inst.id, wave
    return out


def reliability_table(inst: Instrument, wave: str, wide: pd.DataFrame):
    """(``ind_reliability``, ``ind_item_total``): Cronbach's alpha of each dimension with
    two items or more and of all items together (listwise), item-total statistics."""
    dims = {d: items for d, items in inst.dimension_items().items() if len(items) >= 2}
    dims["all_items"] = [f.code for f in inst.items]
    dims = {d: [c for c in items if c in wide] for d, items in dims.items()}
    dims = {d: items for d, items in dims.items() if len(items) >= 2}
    if not dims:
        return pd.DataFrame(), pd.DataFrame()
    reverse = {f.code for f in inst.items if f.reverse}
    cols = list(dict.fromkeys(c for items in dims.values() for c in items))
    low = min(inst.item_scale(c).low for c in cols)
    high = max(inst.item_scale(c).high for c in cols)
    alpha, items = reliability_tables(
        wide[cols], dims, reverse=reverse, points=high - low + 1, low=low
    )
    for frame in (alpha, items):
        frame["instrument"], frame["wave"] = inst.id, wave
    return alpha, items


def driver_table(inst: Instrument, wave: str, wide: pd.DataFrame, scores: pd.DataFrame):
    """``ind_drivers``: which dimensions drive the overall item (the first item of the
    dimension marked ``kind = overall``); empty without one, or with too few answers."""
    overall_dim = inst.overall_dimension
    if overall_dim is None:
        return pd.DataFrame()
    overall = [c for c in inst.dimension_items().get(overall_dim, []) if c in wide]
    predictors = [d for d in scores.columns if d != overall_dim]
    if not overall or len(predictors) < 2:
        return pd.DataFrame()
    frame = scores[predictors].assign(**{overall[0]: wide[overall[0]]})
    if frame.dropna().shape[0] < len(predictors) + 10:
        return pd.DataFrame()
    out = key_drivers(frame, overall[0], predictors)
    out["instrument"], out["wave"] = inst.id, wave
    return out


def median_ci(v: np.ndarray, confidence: float) -> tuple[float, float]:
    """Distribution-free interval of a median from order statistics (binomial)."""
    n = len(v)
    if n < 3:
        return np.nan, np.nan
    k = int(sps.binom.ppf((1 - confidence) / 2, n, 0.5))
    return float(v[max(k - 1, 0)]), float(v[min(n - k, n - 1)])


def outcome_table(
    inst: Instrument, wave: str, wide: pd.DataFrame, university: str, stats: Statistics
) -> pd.DataFrame:
    """``ind_outcomes``: every measure the workbook declares, per unit.

    ``share``: 100 × successes / base answers, with the ``ci_method`` interval;
    ``median``: the median with a distribution-free interval; ``mean``: with a t interval.
    """
    rows = []
    groups = [g for g in _groups(inst, wide, university) if g[0] != "teacher"]
    for m in inst.measures:
        if m.field not in wide:
            continue
        v = wide[m.field]
        if m.statistic is Statistic.SHARE:
            base = v.isin(m.base) if m.base else v.notna()
            values = v.isin(m.success).astype(float).where(base & v.notna())
        else:
            values = v.astype(float)
        for level, keys in groups:
            frame = pd.DataFrame({"unit": keys, "v": values}).dropna()
            if frame.empty:
                continue
            if m.statistic is Statistic.SHARE:
                g = frame.groupby("unit")["v"]
                agg = pd.DataFrame({"n": g.size(), "x": g.sum()}).reset_index()
                ci = proportion_ci(
                    agg["x"].to_numpy(),
                    agg["n"].to_numpy(float),
                    confidence=stats.confidence,
                    method=stats.ci_method,
                )
                agg["value"] = 100 * agg["x"] / agg["n"]
                agg["ci_low"] = 100 * ci["ci_low"].to_numpy()
                agg["ci_high"] = 100 * ci["ci_high"].to_numpy()
            else:
                recs = []
                for unit, s in frame.groupby("unit")["v"]:
                    x = np.sort(s.to_numpy())
                    if m.statistic is Statistic.MEDIAN:
                        lo, hi = median_ci(x, stats.confidence)
                        value = float(np.median(x))
                    else:
                        value = float(x.mean())
                        se = x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan
                        t = sps.t.ppf(0.5 + stats.confidence / 2, max(len(x) - 1, 1))
                        lo, hi = value - t * se, value + t * se
                    recs.append(
                        {
                            "unit": unit,
                            "n": len(x),
                            "x": np.nan,
                            "value": value,
                            "ci_low": lo,
                            "ci_high": hi,
                        }
                    )
                agg = pd.DataFrame(recs)
            rows.append(
                agg.assign(org_level=level, measure=m.code, statistic_kind=m.statistic.value)
            )
    if not rows:
        return pd.DataFrame()
    out = pd.concat(rows, ignore_index=True)
    out["ci_method"] = np.where(
        out["statistic_kind"] == "share",
        stats.ci_method,
        np.where(out["statistic_kind"] == "median", "order_statistics", "t"),
    )
    out["confidence"] = stats.confidence
    out["instrument"], out["wave"] = inst.id, wave
    return out


def weighted_table(
    inst: Instrument,
    wave: str,
    cell_counts: pd.DataFrame,
    programme_respondents: pd.DataFrame,
    heads: pd.DataFrame,
    study_level: Mapping[str, str],
    stats: Statistics,
) -> tuple[pd.DataFrame, str | None]:
    """(``ind_weighted``, a note on cells left out): university estimates post-stratified
    to the headcounts.

    Cells are faculty × study level (a programme's level in ``org_units.csv``), or
    faculty alone where no programme declares a level. A cell cannot be weighted when it
    has a headcount but no respondent, or a headcount below its respondents (an
    out-of-date declaration); it is left out, with its respondents, and the note says so
    (``population`` shows the headcount the estimates stand for).

    ``programme_respondents``: respondents per (faculty, programme); ``heads``: the
    wave's headcounts of the questionnaire's population (unit, faculty, headcount).
    """
    if programme_respondents.empty or heads.empty:
        return pd.DataFrame(), None
    resp = programme_respondents.copy()
    levels = {k: v for k, v in study_level.items() if v}
    cells = ["faculty", "level"] if levels else ["faculty"]
    if levels:
        resp["level"] = resp["programme"].map(levels)
        heads = heads.assign(level=heads["unit"].map(levels))
    resp = resp.dropna(subset=cells)
    heads = heads.dropna(subset=cells)
    h = heads.groupby(cells, as_index=False)["headcount"].sum()
    sizes = resp.groupby(cells, as_index=False)["respondents"].sum()
    both = h.merge(sizes, on=cells)
    bad = both[both["headcount"] < both["respondents"]]
    note = None
    if not bad.empty:
        shown = ", ".join(" × ".join(str(r[c]) for c in cells) for _, r in bad.iterrows())
        note = (
            f"post-stratification cell(s) {shown} left out: headcount below its "
            "respondents (correct headcounts.csv)"
        )
    both = both[both["headcount"] >= both["respondents"]]
    if both.empty:
        return pd.DataFrame(), note
    h = both[[*cells, "headcount"]].astype({"headcount": float})
    sizes = both[[*cells, "respondents"]]
    items = [f.code for f in inst.items]
    counts = cell_counts
    if levels:
        counts = counts.assign(level=counts["programme"].map(levels))
    counts = counts.merge(sizes[cells], on=cells)
    counts = counts.groupby([*cells, "item", "answer"], as_index=False)["count"].sum()
    thresholds = {f.code: inst.scale_of(f).positive_from for f in inst.items}
    out = weighted_estimates_from_counts(
        counts,
        sizes,
        items,
        cells=cells,
        headcounts=h,
        positive_from=thresholds,
        confidence=stats.confidence,
    )
    out["cells"] = " × ".join(cells)
    out["instrument"], out["wave"] = inst.id, wave
    return out, note


# ------------------------------------------------------------- comparisons
def _by_threshold(counts: pd.DataFrame, scales: Mapping[str, Scale]):
    """(positive_from, the counts of the items with that threshold)."""
    thresholds = pd.Series({k: s.positive_from for k, s in scales.items()})
    for pos, items in thresholds.groupby(thresholds).groups.items():
        sub = counts[counts["item"].isin(list(items))]
        if not sub.empty:
            yield int(pos), sub


def comparison_tables(
    insts: Mapping[str, Instrument], counts: pd.DataFrame, stats: Statistics
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str | None]:
    """(``ind_benchmark``, ``ind_kruskal``, ``ind_dunn``) of some waves: at every org level
    with two units or more, each unit against the rest of the university, the
    Kruskal-Wallis test across the level's units and, where it finds a difference
    (``p_adjusted < alpha``), Dunn's pairwise tests of that level's units — for levels of
    at most :data:`MAX_PAIRWISE_UNITS` units; the note names the levels left out."""
    scales = item_scales(insts)
    bench, kw, dunn, skipped = [], [], [], []
    by = ["instrument", "wave", "item"]
    counts = counts.assign(instrument=const(len(counts), next(iter(insts.values())).id))
    for level in COMPARED_LEVELS:
        sub = counts[counts["org_level"] == level]
        if sub.empty:
            continue
        units = sub.groupby(["wave", "item"])["unit"].nunique()
        sub = sub.merge(units[units >= 2].reset_index()[["wave", "item"]], on=["wave", "item"])
        if sub.empty:
            continue
        for pos, part in _by_threshold(sub, scales):
            bench.append(
                unit_vs_rest(
                    part,
                    "unit",
                    by=by,
                    positive_from=pos,
                    adjust=stats.adjust,
                    confidence=stats.confidence,
                )
            )
            bench[-1]["org_level"] = const(len(bench[-1]), level)
        omnibus = kruskal_from_counts(
            sub, "unit", by=by, adjust=stats.adjust, family=["instrument", "wave"]
        )
        omnibus["org_level"] = const(len(omnibus), level)
        kw.append(omnibus)
        # Dunn's pairs are the follow-up of a Kruskal-Wallis test that found a difference,
        # between a readable number of units (beyond, each unit against the rest says it)
        differ = omnibus.loc[omnibus["p_adjusted"] < stats.alpha, ["wave", "item"]]
        if sub["unit"].nunique() > MAX_PAIRWISE_UNITS:
            skipped.append(level)
        elif not differ.empty:
            post = sub.merge(differ, on=["wave", "item"])
            dunn.append(dunn_pairwise(post, "unit", by=by, adjust=stats.adjust))
            dunn[-1]["org_level"] = const(len(dunn[-1]), level)

    def cat(parts):  # noqa: E306
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    note = None
    if skipped:
        note = (
            f"Dunn's pairs not computed at level(s) {', '.join(skipped)}: more than "
            f"{MAX_PAIRWISE_UNITS} units (see each unit against the rest: ind_benchmark)"
        )
    return cat(bench), cat(kw), cat(dunn), note


def change_table(
    inst_from: Instrument,
    inst_to: Instrument,
    comparable: list[str],
    counts: pd.DataFrame,
    wave_from: str,
    wave_to: str,
    stats: Statistics,
) -> pd.DataFrame:
    """``ind_changes``: per unit and comparable item, the change from ``wave_from`` to
    ``wave_to`` (two-proportion test on % positive, Mann-Whitney on all answers); a
    family is one item across the units of one level."""
    pair = counts[counts["wave"].isin([wave_from, wave_to]) & counts["item"].isin(comparable)]
    if pair.empty:
        return pd.DataFrame()
    pair = pair.assign(instrument=const(len(pair), inst_to.id))
    scales = {c: inst_to.item_scale(c) for c in comparable}
    parts = [
        wave_change(
            part,
            by=["instrument", "org_level", "unit", "item"],
            wave_col="wave",
            wave_from=wave_from,
            wave_to=wave_to,
            positive_from=pos,
            family=["instrument", "org_level", "item"],
            adjust=stats.adjust,
            confidence=stats.confidence,
        )
        for pos, part in _by_threshold(pair, scales)
    ]
    out = pd.concat(parts, ignore_index=True)
    out["wave"] = const(len(out), wave_to)
    return out


def trend_table(
    inst: Instrument,
    comparable: list[str],
    counts: pd.DataFrame,
    waves: list[str],
    stats: Statistics,
) -> pd.DataFrame:
    """``ind_trends``: logistic trend of % positive over all ``waves`` (three or more),
    per unit and item comparable across them."""
    sub = counts[counts["item"].isin(comparable) & counts["wave"].isin(waves)]
    if sub.empty or len(waves) < 3:
        return pd.DataFrame()
    sub = sub.assign(instrument=const(len(sub), inst.id))
    scales = {c: inst.item_scale(c) for c in comparable}
    parts = [
        trend_logistic(
            part,
            by=["instrument", "org_level", "unit", "item"],
            wave_col="wave",
            waves=waves,
            positive_from=pos,
            family=["instrument", "org_level", "item"],
            adjust=stats.adjust,
            confidence=stats.confidence,
        )
        for pos, part in _by_threshold(sub, scales)
    ]
    out = pd.concat(parts, ignore_index=True)
    out["wave"] = const(len(out), waves[-1])
    return out


def data_items(inst: Instrument) -> list[str]:
    """Items and outcomes: the columns a respondent frame needs."""
    return [f.code for f in inst.by_role(Role.ITEM, Role.OUTCOME)]
