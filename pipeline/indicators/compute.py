"""Satisfaction indicators and tests, computed from the store into ``ind_*`` tables.

Data flow: ``fct_answer_counts`` (and the typed ``fct_<instrument>`` tables for what
needs respondents: dimension scores, alpha, key drivers, outcomes) → pure functions of
:mod:`pipeline.methods.estimators`, :mod:`pipeline.methods.inference`, :mod:`pipeline.methods.reliability`,
:mod:`pipeline.methods.drivers` → ``ind_*`` tables. Nothing here is shown to anyone directly:
every output passes :mod:`pipeline.gate` first.

Units roll up programme → department → faculty-level unit → university; teaching
evaluations also per teacher. Only what new loads touched is recomputed, unless
``full=True``: a (questionnaire, wave) is touched when its loads changed; changes and
trends that involve a touched wave are recomputed with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
from scipy import stats as sps
from threadpoolctl import threadpool_limits

from pipeline.instruments import Catalog, Instrument, Role
from pipeline.methods.drivers import key_drivers
from pipeline.methods.estimators import describe_counts, proportion_ci, reliability_flag
from pipeline.methods.inference import (
    dunn_pairwise,
    kruskal_from_counts,
    trend_logistic,
    unit_vs_rest,
    wave_change,
)
from pipeline.methods.reliability import reliability_tables
from pipeline.registry import OrgRegistry

LEVELS = ("university", "faculty", "department", "programme", "teacher")
POPULATION = {"student_experience": "students", "teaching_evaluation": "students",
              "graduate": "graduates", "employer": "employers", "staff": "staff"}  # fmt: skip
UNIVERSITY = "university"
#: Tables written here, with the keys a recompute replaces.
TABLES = ("ind_items", "ind_dimensions", "ind_outcomes", "ind_reliability", "ind_item_total",
          "ind_changes", "ind_benchmark", "ind_kruskal", "ind_dunn", "ind_trends",
          "ind_drivers", "ind_response", "ind_weighted")  # fmt: skip


@dataclass(frozen=True)
class Options:
    confidence: float = 0.95
    ci_method: str = "wilson"
    adjust: str = "holm"
    min_n_reliable: int = 10
    min_rate_reliable: float = 0.5


# ----------------------------------------------------------------- units
def unit_tables(reg: OrgRegistry) -> tuple[pd.DataFrame, dict[str, str]]:
    """(programme/unit → department, faculty map; child → parent hierarchy)."""
    rows = []
    uni = reg.of_kind("university")["code"].iloc[0]
    for r in reg.programmes.itertuples():
        rows.append((r.code, r.department_code, r.faculty_code))
    for code in reg.faculties["code"]:
        rows.append((code, None, code))
    rows.append((uni, None, None))
    lookup = pd.DataFrame(rows, columns=["unit", "department", "faculty"])
    parent = {}
    for r in reg.programmes.itertuples():
        parent[r.code] = r.department_code or r.faculty_code
    for r in reg.of_kind("department").itertuples():
        parent[r.code] = reg.faculty_of(r.code) or uni
    for code in reg.faculties["code"]:
        parent[code] = uni
    for t in reg.teachers.itertuples():
        parent[t.teacher_code] = t.department_code
    return lookup, parent


def _rollup_sql(source: str, extra_levels: bool) -> str:
    """SQL that rolls a table with columns unit, department, faculty (+ teacher) up to
    every level; ``{cols}`` are the grouped columns, ``{agg}`` the aggregates."""
    parts = [
        f"SELECT {{cols}}, 'university' AS level, '{UNIVERSITY}' AS unit_code, {{agg}} "
        f"FROM {source} GROUP BY ALL",
        f"SELECT {{cols}}, 'faculty', faculty, {{agg}} FROM {source} "
        "WHERE faculty IS NOT NULL GROUP BY ALL",
        f"SELECT {{cols}}, 'department', department, {{agg}} FROM {source} "
        "WHERE department IS NOT NULL GROUP BY ALL",
        f"SELECT {{cols}}, 'programme', programme, {{agg}} FROM {source} "
        "WHERE programme IS NOT NULL GROUP BY ALL",
    ]
    if extra_levels:
        parts.append(
            f"SELECT {{cols}}, 'teacher', teacher, {{agg}} FROM {source} "
            "WHERE teacher IS NOT NULL GROUP BY ALL"
        )
    return " UNION ALL ".join(parts)


class Computer:
    """Computes indicator tables for chosen (instrument, wave) pairs."""

    def __init__(self, con: duckdb.DuckDBPyConnection, reg: OrgRegistry, catalog: Catalog,
                 options: Options = Options()) -> None:  # fmt: skip
        self.con, self.reg, self.catalog, self.opt = con, reg, catalog, options
        self.lookup, self.parent = unit_tables(reg)
        self.uni = reg.of_kind("university")["code"].iloc[0]
        con.register("_lookup", self.lookup)
        self._heads: dict[str, pd.DataFrame] = {}
        # per-wave work shared by dimensions, reliability, drivers and weighting: the wide
        # frame they were computed for, its valid answers and its dimension scores
        self._cache: dict = {}

    # ------------------------------------------------------------ counts
    def counts(self, instrument: str, waves: list[str]) -> pd.DataFrame:
        """Valid answer counts per wave × level × unit × item (items and ordinal scales)."""
        inst_items = {}
        for w in waves:
            inst = self.catalog.for_wave(instrument, w)
            inst_items.update({f.code: inst.scale_of(f).points for f in inst.items})
        src = f"""(SELECT c.wave, c.item, c.answer, c.n, c.teacher,
                          CASE WHEN c.programme IS NOT NULL THEN c.programme END AS programme,
                          l.department, CASE WHEN l.unit IS NULL THEN c.unit ELSE l.faculty END AS faculty
                   FROM fct_answer_counts c LEFT JOIN _lookup l ON l.unit = c.unit
                   WHERE c.instrument = '{instrument}' AND c.answer >= 1
                     AND c.wave IN (SELECT unnest($waves)) AND c.item IN (SELECT unnest($items)))"""
        # the joined source is read once (materialised) for all levels, fetched via Arrow
        sql = f"WITH src AS MATERIALIZED {src} " + _rollup_sql(
            "src", instrument == "teaching_evaluation"
        ).format(cols="wave, item, answer", agg="sum(n)::BIGINT AS count")
        frame = self.con.sql(sql, params={"waves": waves, "items": list(inst_items)})
        frame = frame.to_arrow_table().to_pandas()
        frame = frame.rename(columns={"unit_code": "unit"})
        frame.loc[frame["level"] == "university", "unit"] = self.uni
        frame["instrument"] = instrument
        return frame

    def respondents(self, inst: Instrument, waves: list[str]) -> pd.DataFrame:
        """Respondents (not excluded) and headcount per wave × level × unit."""
        table = f"fct_{inst.id}"
        src = f"""(SELECT f.wave, f.programme,
                          l.department, CASE WHEN l.unit IS NULL THEN f.unit ELSE l.faculty END AS faculty,
                          {"f.teacher" if inst.has("teacher") else "NULL"} AS teacher
                   FROM {table} f LEFT JOIN _lookup l ON l.unit = f.unit
                   WHERE NOT f.excluded AND f.wave IN (SELECT unnest($waves)))"""
        # for teaching evaluations the "respondents" are evaluations (student x teacher)
        sql = f"WITH src AS MATERIALIZED {src} " + _rollup_sql(
            "src", inst.id == "teaching_evaluation"
        ).format(cols="wave", agg="count(*) AS respondents")
        frame = self.con.execute(sql, {"waves": waves}).fetchdf().rename(
            columns={"unit_code": "unit"})  # fmt: skip
        frame.loc[frame["level"] == "university", "unit"] = self.uni
        heads = self.headcounts(inst.id)
        frame = frame.merge(heads, on=["wave", "level", "unit"], how="left")
        frame["instrument"] = inst.id
        ok = frame["headcount"].notna() & (frame["headcount"] >= frame["respondents"]) & (
            frame["headcount"] > 0) & (inst.id != "teaching_evaluation")  # fmt: skip
        frame["response_rate"] = np.where(ok, frame["respondents"] / frame["headcount"], np.nan)
        flags = reliability_flag(frame["respondents"].to_numpy(), frame["response_rate"].to_numpy(),
                                 min_n=self.opt.min_n_reliable,
                                 min_rate=self.opt.min_rate_reliable)  # fmt: skip
        frame["indicative_only"] = np.asarray(flags["indicative_only"])
        frame["reliability_reason"] = np.asarray(flags["reliability_reason"])
        return frame

    def headcounts(self, instrument: str) -> pd.DataFrame:
        if instrument not in self._heads:
            self._heads[instrument] = self._headcounts(instrument)
        return self._heads[instrument]

    def _headcounts(self, instrument: str) -> pd.DataFrame:
        h = self.reg.headcounts
        h = h[h["population"] == POPULATION[instrument]][["wave", "unit_code", "headcount"]]
        h = h.rename(columns={"unit_code": "unit"}).merge(self.lookup, on="unit", how="left")
        h["headcount"] = h["headcount"].astype(float)
        out = [h.groupby("wave", as_index=False)["headcount"].sum().assign(
            level="university", unit=self.uni)]  # fmt: skip
        for level, col in (("faculty", "faculty"), ("department", "department")):
            g = h.dropna(subset=[col]).groupby(["wave", col], as_index=False)["headcount"].sum()
            out.append(g.rename(columns={col: "unit"}).assign(level=level))
        progs = h[h["unit"].isin(self.reg.programmes["code"])]
        out.append(progs[["wave", "unit", "headcount"]].assign(level="programme"))
        return pd.concat(out, ignore_index=True)[["wave", "level", "unit", "headcount"]]

    # ------------------------------------------------------------ items
    def item_indicators(self, counts: pd.DataFrame, resp: pd.DataFrame) -> pd.DataFrame:
        if counts.empty:
            return pd.DataFrame()
        # the finite population correction only where the headcount is of the people who
        # answered (not for evaluations: one student rates several teachers) and holds them
        pop = resp[["wave", "level", "unit", "headcount", "respondents"]].dropna()
        pop = pop[(pop["level"] != "teacher") & (pop["headcount"] >= pop["respondents"])]
        if counts["instrument"].iloc[0] == "teaching_evaluation":
            pop = pop.iloc[0:0]
        pop = pop.drop(columns=["respondents"])
        out = describe_counts(counts, by=["instrument", "wave", "level", "unit", "item"],
                              confidence=self.opt.confidence, method=self.opt.ci_method,
                              population=pop if not pop.empty else None)  # fmt: skip
        out = out.merge(resp[["wave", "level", "unit", "respondents", "response_rate"]],
                        on=["wave", "level", "unit"], how="left")  # fmt: skip
        flags = reliability_flag(out["n"].to_numpy(), out["response_rate"].to_numpy(),
                                 min_n=self.opt.min_n_reliable,
                                 min_rate=self.opt.min_rate_reliable)  # fmt: skip
        out["indicative_only"] = np.asarray(flags["indicative_only"])
        out["reliability_reason"] = np.asarray(flags["reliability_reason"])
        meta = self.item_meta()
        return out.merge(meta, on=["instrument", "wave", "item"], how="left")

    def item_meta(self) -> pd.DataFrame:
        rows = []
        for iid, entries in self.catalog.versions.items():
            for e in entries:
                inst = self.catalog.get(iid, e.version)
                for w in e.waves:
                    for f in inst.by_role(Role.ITEM, Role.OUTCOME):
                        rows.append((iid, w, f.code, inst.version, f.dimension, f.reverse))
        return pd.DataFrame(rows, columns=["instrument", "wave", "item", "version", "dimension",
                                           "reverse"])  # fmt: skip

    # ------------------------------------------------------- respondents
    def wide(self, inst: Instrument, wave: str, columns: list[str]) -> pd.DataFrame:
        table = f"fct_{inst.id}"
        have = set(self.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
        ).fetchdf()["column_name"])  # fmt: skip
        cols = ", ".join(f'"{c}"::DOUBLE AS "{c}"' for c in columns if c in have)
        # through Arrow: half the time of fetchdf, the same frame
        frame = self.con.sql(
            f"SELECT f.response_id, f.programme, f.unit, l.department, "
            f"CASE WHEN l.unit IS NULL THEN f.unit ELSE l.faculty END AS faculty, {cols} FROM {table} f "
            "LEFT JOIN _lookup l ON l.unit = f.unit WHERE f.wave = $wave AND NOT f.excluded",
            params={"wave": wave},
        ).to_arrow_table().to_pandas()  # fmt: skip
        # the answers arrive as float64 (cast in SQL), in one block: selecting and
        # converting many columns at once then costs a copy, not a gather per column
        return frame

    def _valid(self, inst: Instrument, wide: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
        """``wide[cols]`` with answers below 1 (not applicable, invalid) as NaN; the item
        columns are masked once per wide frame."""
        cache = self._cache
        if cache.get("wide") is not wide:
            cache.clear()
            cache["wide"] = wide
        if "valid" not in cache:
            items = [c for c in dict.fromkeys(f.code for f in inst.by_role(Role.ITEM, Role.OUTCOME))
                     if c in wide]  # fmt: skip
            values = wide[items].to_numpy(dtype=float)
            # column-major like the frame's own block: wrapped as it is, not copied
            cache["valid"] = pd.DataFrame(np.where(values >= 1, values, np.nan),
                                          index=wide.index, columns=items, copy=False)  # fmt: skip
        valid = cache["valid"]
        missing = [c for c in cols if c not in valid]
        if missing:
            valid = pd.concat([valid, wide[missing].where(wide[missing] >= 1)], axis=1)
            cache["valid"] = valid
        return valid[cols]

    def _dimension_scores(self, inst: Instrument, wide: pd.DataFrame) -> pd.DataFrame:
        """Per-respondent dimension scores (not 'overall'), computed once per wide frame."""
        from pipeline.methods.reliability import dimension_scores

        self._valid(inst, wide, [])
        if "scores" not in self._cache:
            dims = {d: items for d, items in inst.dimension_items().items() if d != "overall"}
            items = [c for items in dims.values() for c in items]
            reverse = {f.code for f in inst.items if f.reverse}
            x = self._valid(inst, wide, items)
            self._cache["scores"] = dimension_scores(x, dims, reverse=reverse, points=5)
        return self._cache["scores"]

    def dimensions(self, inst: Instrument, wave: str, wide: pd.DataFrame) -> pd.DataFrame:
        """Dimension scores per respondent → indicators per level × unit."""
        scores = self._dimension_scores(inst, wide)
        dims = list(scores.columns)
        groups = [("university", pd.Series(self.uni, index=wide.index)),
                  ("faculty", wide["faculty"]), ("department", wide["department"]),
                  ("programme", wide["programme"])]  # fmt: skip
        # one groupby per level for all dimensions: the same pandas kernels (and so the
        # same numbers) as grouping each dimension's non-missing scores on its own; the
        # units are factorized once per level (sorted, as groupby sorts them)
        parts = []
        for rank, (level, keys) in enumerate(groups):
            ok = keys.notna().to_numpy()
            if not ok.any():
                continue
            sub = scores[ok]
            codes, units = pd.factorize(keys[ok], sort=True)
            g = sub.groupby(codes)
            n, mean, sd = g.count(), g.mean(), g.std(ddof=1)
            pos = (sub >= 4).groupby(codes).sum()
            # rows: unit × dimension (each statistic is a units × dimensions frame)
            at = np.repeat(n.index.to_numpy(), len(dims))
            parts.append(pd.DataFrame({
                "unit": np.asarray(units, dtype=object)[at],
                "n": n[dims].to_numpy().ravel(), "mean": mean[dims].to_numpy().ravel(),
                "sd": sd[dims].to_numpy().ravel(),
                "x_positive": pos[dims].to_numpy().ravel().astype("int64"),
                "level": level, "dimension": np.tile(np.asarray(dims, dtype=object), len(n)),
                "_order": np.tile(np.arange(len(dims)), len(n)), "_rank": rank,
            }))  # fmt: skip
        if not parts:
            return pd.DataFrame()
        out = pd.concat(parts, ignore_index=True)
        out = out[out["n"] > 0]
        # dimension by dimension, then level, then unit, as the tables have always been
        out = out.sort_values(["_order", "_rank", "unit"], kind="stable")
        out = out.drop(columns=["_order", "_rank"]).reset_index(drop=True)
        if out.empty:
            return pd.DataFrame()
        out["instrument"], out["wave"] = inst.id, wave
        n = out["n"].to_numpy(float)
        se = out["sd"].to_numpy() / np.sqrt(n)
        t = sps.t.ppf(0.5 + self.opt.confidence / 2, np.maximum(n - 1, 1))
        out["se_mean"] = se
        out["mean_ci_low"], out["mean_ci_high"] = out["mean"] - t * se, out["mean"] + t * se
        ci = proportion_ci(out["x_positive"].to_numpy(), n, confidence=self.opt.confidence,
                           method=self.opt.ci_method)  # fmt: skip
        out["pct_positive"] = 100 * out["x_positive"] / n
        out["pct_positive_ci_low"] = 100 * ci["ci_low"].to_numpy()
        out["pct_positive_ci_high"] = 100 * ci["ci_high"].to_numpy()
        return out

    def reliability(self, inst: Instrument, wave: str, wide: pd.DataFrame):
        dims = {d: items for d, items in inst.dimension_items().items() if len(items) >= 2}
        dims["all_items"] = [f.code for f in inst.items]
        reverse = {f.code for f in inst.items if f.reverse}
        cols = list(dict.fromkeys(c for items in dims.values() for c in items if c in wide))
        x = self._valid(inst, wide, cols)
        alpha, items = reliability_tables(x, dims, reverse=reverse)
        for frame in (alpha, items):
            frame.insert(0, "wave", wave)
            frame.insert(0, "instrument", inst.id)
        return alpha, items

    def drivers(self, inst: Instrument, wave: str, wide: pd.DataFrame) -> pd.DataFrame:
        overall = [f.code for f in inst.items if f.dimension == "overall"]
        dims = {d: items for d, items in inst.dimension_items().items() if d != "overall"}
        if not overall or len(dims) < 2:
            return pd.DataFrame()
        scores = self._dimension_scores(inst, wide).assign(
            overall=wide[overall[0]].where(wide[overall[0]] >= 1))  # fmt: skip
        if scores.dropna().shape[0] < len(dims) + 10:
            return pd.DataFrame()
        out = key_drivers(scores, "overall", list(dims))
        out.insert(0, "wave", wave)
        out.insert(0, "instrument", inst.id)
        return out

    def outcomes(self, inst: Instrument, wave: str, wide: pd.DataFrame) -> pd.DataFrame:
        """Graduates' employment, months to job, in field, recommend; employers' hire again."""
        groups = [("university", pd.Series(self.uni, index=wide.index)),
                  ("faculty", wide["faculty"]), ("programme", wide["programme"])]  # fmt: skip
        rows = []

        def code(field: str, name: str) -> int:
            return inst.scale_of(inst.field(field)).by_name(name).code

        specs = []
        if inst.has("gr_emp_status"):
            s = wide["gr_emp_status"]
            working = s.isin([code("gr_emp_status", "employed"),
                              code("gr_emp_status", "self_employed")])  # fmt: skip
            labour = working | (s == code("gr_emp_status", "unemployed_seeking"))
            specs.append(("employment_rate", working.where(labour).astype("float")))
        if inst.has("gr_job_in_field"):
            s = wide["gr_job_in_field"]
            specs.append(("pct_in_field", (s == code("gr_job_in_field", "yes")).where(s >= 1)))
        for field, measure in (("gr_recommend", "pct_recommend"),
                               ("em_hire_again", "pct_hire_again")):  # fmt: skip
            if inst.has(field):
                s = wide[field]
                specs.append((measure, (s == code(field, "yes")).where(s >= 1)))
        for measure, values in specs:
            for level, keys in groups:
                frame = pd.DataFrame({"unit": keys, "v": values.astype("float")}).dropna()
                g = frame.groupby("unit")["v"]
                agg = pd.DataFrame({"n": g.size(), "x": g.sum()}).reset_index()
                ci = proportion_ci(
                    agg["x"].to_numpy(),
                    agg["n"].to_numpy(float),
                    confidence=self.opt.confidence,
                    method=self.opt.ci_method,
                )
                rows.append(agg.assign(level=level, measure=measure,
                                       value=100 * agg["x"] / agg["n"],
                                       ci_low=100 * ci["ci_low"].to_numpy(),
                                       ci_high=100 * ci["ci_high"].to_numpy()))  # fmt: skip
        if inst.has("gr_months_to_job"):
            months = wide["gr_months_to_job"]
            for level, keys in groups:
                frame = pd.DataFrame({"unit": keys, "v": months}).dropna()
                for unit, v in frame.groupby("unit")["v"]:
                    lo, hi = _median_ci(np.sort(v.to_numpy()), self.opt.confidence)
                    rows.append(pd.DataFrame([{"unit": unit, "n": len(v), "x": np.nan,
                                               "level": level, "measure": "median_months_to_job",
                                               "value": float(np.median(v)), "ci_low": lo,
                                               "ci_high": hi}]))  # fmt: skip
        if not rows:
            return pd.DataFrame()
        out = pd.concat(rows, ignore_index=True)
        out["instrument"], out["wave"] = inst.id, wave
        return out

    def weighted(self, inst: Instrument, wave: str, wide: pd.DataFrame) -> pd.DataFrame:
        """University-level estimates post-stratified to headcounts by faculty × level.

        Cells with a headcount but no respondent cannot be weighted up and are left out
        (``population`` then shows the headcount the estimate stands for).
        """
        from pipeline.methods.weighting import weighted_estimates_from_counts

        if inst.id not in ("student_experience", "graduate"):
            return pd.DataFrame()
        level_of = dict(zip(self.reg.programmes["code"], self.reg.programmes["level"],
                            strict=True))  # fmt: skip
        cells = ["faculty", "level"]
        # respondents with a faculty and a level, counted per (faculty, programme) pair
        # first (a few hundred pairs instead of a row per respondent)
        pairs = wide.groupby(["faculty", "programme"], observed=True, sort=False).size()
        resp = pairs.rename("respondents").reset_index()
        resp["level"] = resp["programme"].map(level_of)
        resp = resp.dropna(subset=cells)
        h = self.reg.headcounts
        h = h[(h["wave"] == wave) & (h["population"] == POPULATION[inst.id])]
        h = h.assign(faculty=h["unit_code"].map(self.reg.faculty_of))
        heads = h.groupby(cells, as_index=False)["headcount"].sum()
        # only cells with a headcount and respondents
        sizes = resp.groupby(cells, as_index=False)["respondents"].sum()
        heads = heads.merge(sizes[cells], on=cells)
        heads["headcount"] = heads["headcount"].astype(float)
        sizes = sizes.merge(heads[cells], on=cells)
        if sizes.empty:
            return pd.DataFrame()
        # weights are per cell, so the answer counts per cell are all the estimates need:
        # the same respondents' answers, from the count table instead of the wide one
        items = [f.code for f in inst.items]
        counts = self.con.execute(
            """SELECT c.programme, CASE WHEN l.unit IS NULL THEN c.unit ELSE l.faculty END
                      AS faculty, c.item, c.answer::DOUBLE AS answer, sum(c.n)::BIGINT AS count
               FROM fct_answer_counts c LEFT JOIN _lookup l ON l.unit = c.unit
               WHERE c.instrument = $instrument AND c.wave = $wave AND c.answer >= 1
                 AND c.item IN (SELECT unnest($items))
               GROUP BY ALL""",
            {"instrument": inst.id, "wave": wave, "items": items},
        ).fetchdf()  # fmt: skip
        counts["level"] = counts["programme"].map(level_of)
        counts = counts.merge(sizes[cells], on=cells)
        counts = counts.groupby([*cells, "item", "answer"], as_index=False)["count"].sum()
        out = weighted_estimates_from_counts(counts, sizes, items, cells=cells, headcounts=heads,
                                             confidence=self.opt.confidence)  # fmt: skip
        out.insert(0, "wave", wave)
        out.insert(0, "instrument", inst.id)
        return out


def _key_columns_first(frame: pd.DataFrame) -> pd.DataFrame:
    """instrument, wave, level, unit and the item/dimension/measure first, as in ind_items."""
    if frame is None or frame.empty:
        return frame
    first = [c for c in ("instrument", "wave", "level", "unit", "item", "dimension", "measure",
                         "scale") if c in frame.columns]  # fmt: skip
    return frame[first + [c for c in frame.columns if c not in first]]


def _median_ci(v: np.ndarray, confidence: float) -> tuple[float, float]:
    """Distribution-free CI of a median from order statistics (binomial)."""
    n = len(v)
    if n < 3:
        return np.nan, np.nan
    k = int(sps.binom.ppf((1 - confidence) / 2, n, 0.5))
    lo = v[max(k - 1, 0)]
    hi = v[min(n - k, n - 1)]
    return float(lo), float(hi)


# ------------------------------------------------------------- orchestration
def _touched(con, full: bool, options: Options) -> pd.DataFrame:
    """(instrument, wave) whose loads (or the options) changed since the last computation."""
    con.execute("""CREATE TABLE IF NOT EXISTS sys_indicator_state (
        instrument VARCHAR, wave VARCHAR, signature VARCHAR, computed_at TIMESTAMP)""")
    now = con.execute(
        """SELECT instrument, wave, string_agg(load_id::VARCHAR || ':' || status, ','
                  ORDER BY load_id) || ' | ' || ? AS signature
           FROM sys_loads WHERE instrument IS NOT NULL GROUP BY ALL""",
        [f"{options.confidence}/{options.ci_method}/{options.adjust}"],
    ).fetchdf()
    if full:
        return now
    before = con.execute("SELECT instrument, wave, signature FROM sys_indicator_state").fetchdf()
    merged = now.merge(before, on=["instrument", "wave"], how="left", suffixes=("", "_old"))
    return merged[merged["signature"] != merged["signature_old"]][["instrument", "wave",
                                                                    "signature"]]  # fmt: skip


def _replace(con, table: str, frame: pd.DataFrame, keys: pd.DataFrame) -> None:
    """Delete the rows of the given (instrument, wave) keys, then append ``frame``."""
    have = [r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]).fetchall()]  # fmt: skip
    exists = bool(have)
    if exists and not keys.empty:
        for instrument, waves in keys.groupby("instrument")["wave"]:
            con.execute(f"DELETE FROM {table} WHERE instrument = ? AND wave IN "
                        "(SELECT unnest(?))", [instrument, list(waves)]).fetchall()  # fmt: skip
    if frame is None or frame.empty:
        return
    con.register("_new", frame)
    if exists:
        for col in frame.columns:
            if col not in have:
                con.execute(f'ALTER TABLE {table} ADD COLUMN "{col}" '
                            f"{_duck_type(frame[col])}")  # fmt: skip
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _new").fetchall()
    else:
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM _new").fetchall()
    con.unregister("_new")


def _duck_type(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(s):
        return "BIGINT"
    if pd.api.types.is_float_dtype(s):
        return "DOUBLE"
    return "VARCHAR"


def compute(
    con: duckdb.DuckDBPyConnection,
    reg: OrgRegistry,
    catalog: Catalog,
    *,
    full: bool = False,
    options: Options = Options(),
    progress: Callable[[str, int, int], None] | None = None,
) -> pd.DataFrame:
    """Recompute the indicator tables that new loads touched (all with ``full``).

    Returns the (instrument, wave) pairs recomputed. Runs in one transaction.
    """
    touched = _touched(con, full, options)
    if touched.empty:
        return touched
    comp = Computer(con, reg, catalog, options)
    con.execute("BEGIN TRANSACTION")
    # BLAS on one thread: its matrices are at most items × items, and waking a second
    # thread cost more than it saved (alpha 8× slower on two cores, benchmarks/README.md)
    with threadpool_limits(limits=1, user_api="blas"):
        _compute_touched(con, comp, catalog, touched, options, progress)
    return touched


def _compute_touched(con, comp: Computer, catalog: Catalog, touched: pd.DataFrame,
                     options: Options, progress) -> None:  # fmt: skip
    try:
        done = 0
        for instrument, rows in touched.groupby("instrument"):
            all_waves = sorted(con.execute(
                "SELECT DISTINCT wave FROM sys_loads WHERE instrument = ? AND status = 'loaded'",
                [instrument]).fetchdf()["wave"])  # fmt: skip
            waves = sorted(rows["wave"])
            keys = pd.DataFrame({"instrument": instrument, "wave": waves})
            _compute_instrument(con, comp, catalog, instrument, waves, all_waves, keys, options)
            done += len(waves)
            if progress:
                progress("indicators", done, len(touched))
        con.register("touched", touched)
        con.execute("DELETE FROM sys_indicator_state WHERE (instrument, wave) IN "
                    "(SELECT (instrument, wave) FROM touched)").fetchall()  # fmt: skip
        con.execute("INSERT INTO sys_indicator_state SELECT instrument, wave, signature, "
                    "now() FROM touched").fetchall()  # fmt: skip
        con.unregister("touched")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _compute_instrument(con, comp: Computer, catalog: Catalog, instrument: str,
                        waves: list[str], all_waves: list[str], keys: pd.DataFrame,
                        opt: Options) -> None:  # fmt: skip
    insts = {w: catalog.for_wave(instrument, w) for w in sorted({*all_waves, *waves})}
    # the answer counts of every wave at once (trends need them all); each use takes the
    # rows comp.counts(instrument, its waves) would give
    all_counts = comp.counts(instrument, sorted({*all_waves, *waves}))

    def counts_of(ws: list[str]) -> pd.DataFrame:
        items = {f.code for w in ws for f in insts[w].items}
        keep = all_counts["wave"].isin(ws) & all_counts["item"].isin(items)
        return all_counts[keep].reset_index(drop=True)

    counts = counts_of(waves)
    by_version: dict[str, list[str]] = {}
    for w in waves:
        by_version.setdefault(insts[w].version, []).append(w)
    resp = pd.concat([comp.respondents(insts[ws[0]], ws) for ws in by_version.values()],
                     ignore_index=True)  # fmt: skip
    _replace(con, "ind_response", resp, keys)
    _replace(con, "ind_items", comp.item_indicators(counts, resp), keys)
    dims, rel, itt, drv, outc, wtd = [], [], [], [], [], []
    for w in waves:
        inst = insts[w]
        cols = [f.code for f in inst.by_role(Role.ITEM, Role.OUTCOME)]
        wide = comp.wide(inst, w, cols)
        if wide.empty:
            continue
        dims.append(comp.dimensions(inst, w, wide))
        a, b = comp.reliability(inst, w, wide)
        rel.append(a)
        itt.append(b)
        drv.append(comp.drivers(inst, w, wide))
        outc.append(comp.outcomes(inst, w, wide))
        wtd.append(comp.weighted(inst, w, wide))
    for table, parts in (("ind_dimensions", dims), ("ind_reliability", rel),
                         ("ind_item_total", itt), ("ind_drivers", drv),
                         ("ind_outcomes", outc), ("ind_weighted", wtd)):  # fmt: skip
        parts = [_key_columns_first(p) for p in parts if p is not None and not p.empty]
        _replace(con, table, pd.concat(parts, ignore_index=True) if parts else None, keys)
    # across units, per wave: each unit vs the rest, Kruskal-Wallis, Dunn
    bench, kw, dunn = [], [], []
    for level in ("faculty", "programme", "teacher"):
        sub = counts[counts["level"] == level]
        if sub["unit"].nunique() < 2:
            continue
        by = ["instrument", "wave", "item"]
        bench.append(unit_vs_rest(sub, "unit", by=by, adjust=opt.adjust,
                                  confidence=opt.confidence).assign(level=level))  # fmt: skip
        if level == "faculty":
            kw.append(
                kruskal_from_counts(
                    sub, "unit", by=by, adjust=opt.adjust, family=["instrument", "wave"]
                ).assign(level=level)
            )
            dunn.append(dunn_pairwise(sub, "unit", by=by, adjust=opt.adjust).assign(level=level))
    for table, parts in (("ind_benchmark", bench), ("ind_kruskal", kw), ("ind_dunn", dunn)):
        _replace(con, table, pd.concat(parts, ignore_index=True) if parts else None, keys)
    # changes between consecutive waves, where the item is comparable
    changes = []
    for w_from, w_to in zip(all_waves, all_waves[1:], strict=False):
        if w_from not in waves and w_to not in waves:
            continue
        both = (
            counts
            if w_from in waves and w_to in waves
            else pd.concat([counts, counts_of([w for w in (w_from, w_to) if w not in waves])])
        )
        items = [f.code for f in insts[w_to].items
                 if catalog.comparable(instrument, f.code, insts[w_from].version,
                                       insts[w_to].version)]  # fmt: skip
        pair = both[both["wave"].isin([w_from, w_to]) & both["item"].isin(items)]
        if pair.empty:
            continue
        changes.append(wave_change(pair, by=["instrument", "level", "unit", "item"],
                                   wave_col="wave", wave_from=w_from, wave_to=w_to,
                                   family=["instrument", "level", "item"], adjust=opt.adjust,
                                   confidence=opt.confidence).assign(wave=w_to))  # fmt: skip
    _replace(con, "ind_changes", pd.concat(changes, ignore_index=True) if changes else None, keys)
    # trends over all waves (>= 3), per unit and item, on comparable items
    if len(all_waves) >= 3:
        latest = insts[all_waves[-1]]
        items = [f.code for f in latest.items
                 if all(catalog.comparable(instrument, f.code, insts[w].version, latest.version)
                        for w in all_waves)]  # fmt: skip
        full_counts = counts_of(all_waves)
        full_counts = full_counts[full_counts["item"].isin(items)]
        trend = trend_logistic(full_counts, by=["instrument", "level", "unit", "item"],
                               wave_col="wave", waves=all_waves,
                               family=["instrument", "level", "item"], adjust=opt.adjust,
                               confidence=opt.confidence)  # fmt: skip
        trend["wave"] = all_waves[-1]
        all_keys = pd.DataFrame({"instrument": instrument, "wave": all_waves})
        _replace(con, "ind_trends", trend, all_keys)
