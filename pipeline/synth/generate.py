"""`sapat synth`: realistic synthetic survey exports with planted effects and a truth file.

Deterministic for a seed; memory stays bounded whatever ``scale`` (rows are made
and written in chunks). Everything not listed in the truth file as planted is
null: no other unit, item or wave differs in the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import __version__
from pipeline.instruments import Catalog, Instrument, wave_start_year
from pipeline.registry import OrgRegistry
from pipeline.synth.model import answers, dimension_loading, item_params, stable_seed
from pipeline.synth.writers import (
    COMMENTS,
    EXTENSIONS,
    OUT_OF_RANGE,
    UNKNOWN_PROGRAMME,
    Lookups,
    Sink,
)

CHUNK = 50_000
DEFAULT_WAVES = ("2023-2024", "2024-2025", "2025-2026")

#: Which export each instrument arrives as, wave after wave (cycled).
FORMAT_PLAN = {
    "student_experience": ("google_forms", "limesurvey", "google_forms"),
    "teaching_evaluation": ("kobo", "kobo", "plain_cp1251"),
    "graduate": ("ms_forms", "google_forms", "ms_forms"),
    "employer": ("plain_cp1251", "ms_forms", "kobo"),
    "staff": ("plain_cp1251", "google_forms", "kobo"),
}
#: Survey window per instrument: (month, year offset from the wave's first year, days).
WINDOWS = {
    "student_experience": (3, 1, 35),
    "teaching_evaluation": (12, 0, 20),
    "graduate": (10, 0, 40),
    "employer": (4, 1, 45),
    "staff": (5, 1, 25),
}
MEDIAN_SECONDS = {
    "student_experience": 480,
    "teaching_evaluation": 210,
    "graduate": 300,
    "employer": 360,
    "staff": 330,
}
POPULATION = {
    "student_experience": "students",
    "teaching_evaluation": "students",
    "graduate": "graduates",
    "employer": "employers",
    "staff": "staff",
}
#: Planted effects, in % positive points and latent offsets.
PLANTED_CHANGE_POINTS = 15.0
UNIT_OFFSET = 0.6
TEACHER_OFFSETS = (-0.9, -0.9, 0.7)
MISSING_RATE = 0.03
NA_RATE = 0.04
DORM_NONRESIDENT = 0.55
COMMENT_RATE = 0.15

FIRST_NAMES = [
    "aibek",
    "nurlan",
    "aizada",
    "gulnara",
    "bakyt",
    "cholpon",
    "elnura",
    "azamat",
    "meerim",
    "timur",
    "aidana",
    "kanybek",
]
DOMAINS = ["gmail.com", "mail.ru", "bsu.kg"]


@dataclass
class Plan:
    """Population, rates and planted effects for one run."""

    units: pd.DataFrame  # per instrument: unit rows
    faculty_offset: dict[str, float] = field(default_factory=dict)
    changes: list[dict] = field(default_factory=list)
    differences: list[dict] = field(default_factory=list)
    teacher_offset: dict[str, float] = field(default_factory=dict)
    employment: dict[str, float] = field(default_factory=dict)
    rates: dict[str, dict[str, float]] = field(default_factory=dict)


def _faculty_rates(seed: int, instrument: str, faculties: list[str]) -> dict[str, float]:
    rng = np.random.default_rng(stable_seed(seed, "rates", instrument))
    low, high = (0.30, 0.80) if instrument == "employer" else (0.15, 0.70)
    return {f: float(rng.uniform(low, high)) for f in faculties}


def _units(reg: OrgRegistry, instrument: str, wave: str, scale: float) -> pd.DataFrame:
    """Units surveyed with their headcount; columns unit, faculty, level, headcount."""
    pop = POPULATION[instrument]
    h = reg.headcount(wave, pop)
    if h.empty:  # waves beyond the registry reuse its latest headcounts
        h = reg.headcount(reg.waves[-1], pop)
    out = pd.DataFrame(
        {
            "unit": h["unit_code"].to_numpy(),
            "level": h["level"].to_numpy(),
            "headcount": np.rint(h["headcount"].to_numpy(dtype=float) * scale).astype(np.int64),
        }
    )
    out["faculty"] = [reg.faculty_of(u) or u for u in out["unit"]]
    return out


def build_plan(reg: OrgRegistry, catalog: Catalog, waves: list[str], seed: int) -> Plan:
    """Choose planted effects from the registry's structure (largest units carry them)."""
    rng = np.random.default_rng(stable_seed(seed, "plan"))
    students = _units(reg, "student_experience", waves[0], 1.0)
    sizes = students.groupby("faculty")["headcount"].sum().sort_values(ascending=False)
    faculties = list(sizes.index)
    plan = Plan(units=students)
    for instrument in FORMAT_PLAN:
        facs = sorted(set(_units(reg, instrument, waves[0], 1.0)["faculty"]))
        plan.rates[instrument] = _faculty_rates(seed, instrument, facs)
    # the two largest faculties carry wave changes; the next two differ from the rest
    change_units, high, low = faculties[:2], faculties[2], faculties[3]
    # units carrying planted effects get enough respondents for the effects to be testable
    for inst in ("student_experience", "teaching_evaluation", "staff"):
        for f in plan.rates[inst]:
            if f in change_units:
                plan.rates[inst][f] = max(plan.rates[inst][f], 0.45)
            elif f in (high, low):
                plan.rates[inst][f] = max(plan.rates[inst][f], 0.40)
    plan.faculty_offset = {high: UNIT_OFFSET, low: -UNIT_OFFSET}
    for inst in ("student_experience", "staff"):
        for unit, off in plan.faculty_offset.items():
            plan.differences.append(
                {
                    "instrument": inst,
                    "unit": unit,
                    "unit_kind": reg.kind(unit),
                    "latent_offset": off,
                    "direction": "higher" if off > 0 else "lower",
                    "applies_to": "every item, every wave",
                }
            )
    if len(waves) >= 2:
        se_versions = [catalog.for_wave("student_experience", w) for w in waves]
        common = [
            f
            for f in se_versions[-1].items
            if all(v.has(f.code) for v in se_versions[-2:])
            and f.dimension != "overall"
            and catalog.comparable(
                "student_experience", f.code, se_versions[-2].version, se_versions[-1].version
            )
        ]
        by_dim: dict[str, list] = {}
        for f in common:
            by_dim.setdefault(f.dimension, []).append(f)
        dims = sorted(by_dim)
        prefer = [d for d in ("infrastructure", "teaching") if d in by_dim] or dims
        picks = [(change_units[0], by_dim[prefer[0]][0], +1)]
        second_dim = prefer[1] if len(prefer) > 1 else dims[(dims.index(prefer[0]) + 1) % len(dims)]
        picks.append((change_units[1], by_dim[second_dim][0], -1))
        wave_from, wave_to = waves[-2], waves[-1]
        for unit, f, sign in picks:
            latest = se_versions[-1]
            p = item_params(
                seed,
                f.code,
                f.reverse,
                dimension_loading(len(latest.items)),
                len(latest.dimension_items()[f.dimension]),
            )
            mu = plan.faculty_offset.get(unit, 0.0)
            before = p.pct_positive(mu)
            target = before + sign * PLANTED_CHANGE_POINTS / 100
            shift = p.shift_for(mu, target)
            plan.changes.append(
                {
                    "instrument": "student_experience",
                    "unit": unit,
                    "unit_kind": reg.kind(unit),
                    "item": f.code,
                    "wave_from": wave_from,
                    "wave_to": wave_to,
                    "direction": "up" if sign > 0 else "down",
                    "delta_points": sign * PLANTED_CHANGE_POINTS,
                    "expected_pct_positive_from": round(100 * before, 3),
                    "expected_pct_positive_to": round(100 * p.pct_positive(mu, shift), 3),
                    "latent_shift": shift,
                }
            )
    teachers = sorted(reg.disciplines["teacher_code"].unique())
    chosen = rng.choice(teachers, size=min(len(TEACHER_OFFSETS), len(teachers)), replace=False)
    plan.teacher_offset = {str(t): off for t, off in zip(chosen, TEACHER_OFFSETS, strict=False)}
    grads = sorted(set(_units(reg, "graduate", waves[0], 1.0)["faculty"]))
    plan.employment = {f: 0.50 if f == low else 0.75 for f in grads}
    return plan


class Generator:
    """Makes the coded responses of one instrument in one wave, chunk by chunk."""

    def __init__(self, reg, catalog, plan, seed, instrument, waves, wave_index, scale):
        self.reg, self.plan, self.seed = reg, plan, seed
        self.waves, self.wave_index = list(waves), wave_index
        self.instrument = instrument
        self.wave = wave = waves[wave_index]
        self.inst: Instrument = catalog.for_wave(instrument, wave)
        self.rng = np.random.default_rng(stable_seed(seed, "responses", instrument, wave))
        units = _units(reg, instrument, wave, scale)
        rates = plan.rates[instrument]
        jitter = self.rng.uniform(-0.03, 0.03, len(units))
        rate = np.clip(units["faculty"].map(rates).to_numpy() + jitter, 0.05, 0.95)
        units["respondents"] = self.rng.binomial(units["headcount"].to_numpy(), rate)
        self.units = units
        self.items = self.inst.items
        general = dimension_loading(len(self.items))
        sizes = {d: len(items) for d, items in self.inst.dimension_items().items()}
        self.params = [
            item_params(seed, f.code, f.reverse, general, sizes[f.dimension]) for f in self.items
        ]
        self.dims = sorted({f.dimension for f in self.items})
        self.programmes = reg.programmes.set_index("code")
        self.disciplines = reg.disciplines

    @property
    def total(self) -> int:
        return int(self.units["respondents"].sum())

    def chunks(self) -> Iterator[tuple[pd.DataFrame, int]]:
        """Yield (rows, respondents in them); several rows per respondent for evaluations."""
        rng = self.rng
        order = np.repeat(np.arange(len(self.units)), self.units["respondents"].to_numpy())
        rng.shuffle(order)
        month, offset, days = WINDOWS[self.instrument]
        t0 = pd.Timestamp(wave_start_year(self.wave) + offset, month, 1, 8, 0, 0)
        starts = np.sort(rng.uniform(0, days * 86400.0, len(order)))
        for lo in range(0, len(order), CHUNK):
            idx = order[lo : lo + CHUNK]
            yield (
                self._chunk(idx, t0 + pd.to_timedelta(starts[lo : lo + CHUNK], unit="s")),
                len(idx),
            )

    # ------------------------------------------------------------------ rows
    def _chunk(self, unit_idx: np.ndarray, start: pd.DatetimeIndex) -> pd.DataFrame:
        rng, inst = self.rng, self.inst
        units = self.units.iloc[unit_idx].reset_index(drop=True)
        n = len(units)
        frame = pd.DataFrame(index=range(n))
        mu = units["faculty"].map(self.plan.faculty_offset).fillna(0.0).to_numpy()
        if self.instrument not in ("student_experience", "staff"):
            mu = np.zeros(n)
        for f in inst.context_fields:
            frame[f.code] = self._context(f, units, rng)
        if self.instrument == "teaching_evaluation":
            frame, units, mu, start = self._expand_evaluations(frame, units, mu, start)
            n = len(frame)
        g = mu + rng.standard_normal(n)
        shifts = np.zeros((n, len(self.items)))
        for ch in self.plan.changes:
            if ch["instrument"] != self.instrument or self.wave_index < self._wave_pos(ch):
                continue
            for j, f in enumerate(self.items):
                if f.code == ch["item"]:
                    shifts[(units["faculty"] == ch["unit"]).to_numpy(), j] += ch["latent_shift"]
        coded = answers(rng, g, self.dims, self.params, [f.dimension for f in self.items], shifts)
        dorm = rng.random(n) < DORM_NONRESIDENT
        for j, f in enumerate(self.items):
            col = pd.array(coded[:, j], dtype="Int8")
            scale = inst.scale_of(f)
            if scale and scale.not_applicable:
                na = rng.random(n) < NA_RATE
                if f.dimension == "dormitory":
                    na |= dorm
                col[na] = scale.by_name(scale.not_applicable).code
            col[rng.random(n) < MISSING_RATE] = pd.NA
            frame[f.code] = col
        for f in inst.outcomes:
            frame[f.code] = self._outcome(f, g, units, frame, rng)
        for f in inst.comments:  # an index into COMMENTS; the writer picks the language
            pick = pd.array(rng.integers(0, len(COMMENTS["ky"]), n), dtype="Int8")
            pick[rng.random(n) >= COMMENT_RATE] = pd.NA
            frame[f.code] = pick
        seconds = rng.lognormal(np.log(MEDIAN_SECONDS[self.instrument]), 0.25, n)
        frame["_start"] = start.floor("s")
        frame["_end"] = (start + pd.to_timedelta(seconds, unit="s")).floor("s")
        frame["_lang"] = rng.choice(["ky", "ru"], size=n, p=[0.65, 0.35])
        names = rng.choice(FIRST_NAMES, n)
        frame["_email"] = [
            f"{nm}.{k}@{DOMAINS[k % 3]}"
            for nm, k in zip(names, rng.integers(10, 99999, n), strict=True)
        ]
        frame["_seed"] = rng.integers(1, 2**62, n)
        frame["_fault"] = ""
        frame["_fault_item"] = ""
        return frame

    def _wave_pos(self, change: dict) -> int:
        return self.waves.index(change["wave_to"])

    def _context(self, f, units: pd.DataFrame, rng) -> object:
        key = f.context
        n = len(units)
        if key == "programme":
            if self.instrument == "employer":
                progs = self.reg.programmes
                out = []
                for fac in units["faculty"]:
                    choices = progs.loc[progs["faculty_code"] == fac, "code"].to_numpy()
                    out.append(str(rng.choice(choices)) if len(choices) else "")
                return out
            return units["unit"].to_numpy()
        if key == "unit":
            return units["unit"].to_numpy()
        scale = self.inst.scale_of(f)
        if key == "study_level":
            levels = units["level"].replace("", "bachelor").to_numpy()
            return pd.array([scale.by_name(lv).code for lv in levels], dtype="Int8")
        if key == "year_of_study":
            top = np.where(
                units["level"] == "master", 2, np.where(units["level"] == "vocational", 3, 4)
            )
            years = 1 + (rng.random(n) * top).astype(int)
            valid = {c.name: c.code for c in scale.valid_choices}
            return pd.array([valid.get(str(y), valid[min(valid)]) for y in years], dtype="Int8")
        if key == "graduation_year":
            return pd.array(np.full(n, wave_start_year(self.wave)), dtype="Int16")
        if scale is not None:  # sector, staff_category…: uniform over the list
            codes = np.array(scale.codes)
            return pd.array(codes[rng.integers(0, len(codes), n)], dtype="Int8")
        return [""] * n

    def _expand_evaluations(self, frame, units, mu, start):
        """A student rates 2–4 different teacher × discipline pairs of their programme."""
        rng = self.rng
        by_prog = {p: g for p, g in self.disciplines.groupby("programme_code")}
        rep, teachers, codes = [], [], []
        for i, (prog, k) in enumerate(
            zip(units["unit"], rng.integers(2, 5, len(frame)), strict=True)
        ):
            g = by_prog.get(prog)
            if g is None or g.empty:
                rep.append(i)
                teachers.append("")
                codes.append("")
                continue
            for j in rng.choice(len(g), size=min(int(k), len(g)), replace=False):
                rep.append(i)
                teachers.append(g.iloc[int(j)]["teacher_code"])
                codes.append(g.iloc[int(j)]["discipline_code"])
        rep = np.asarray(rep)
        frame = frame.iloc[rep].reset_index(drop=True)
        units = units.iloc[rep].reset_index(drop=True)
        mu, start = mu[rep], start[rep]
        frame["teacher"] = teachers
        frame["discipline"] = codes
        mu = mu + pd.Series(teachers).map(self.plan.teacher_offset).fillna(0.0).to_numpy()
        return frame, units, mu, start

    def _outcome(self, f, g, units, frame, rng):
        n = len(g)
        scale = self.inst.scale_of(f)
        if f.code == "gr_emp_status":
            p_emp = units["faculty"].map(self.plan.employment).fillna(0.75).to_numpy()
            u = rng.random(n)
            names = np.where(
                u < p_emp * 0.85,
                "employed",
                np.where(
                    u < p_emp,
                    "self_employed",
                    np.where(
                        u < p_emp + (1 - p_emp) * 0.35,
                        "further_study",
                        np.where(
                            u < p_emp + (1 - p_emp) * 0.8, "unemployed_seeking", "not_seeking"
                        ),
                    ),
                ),
            )
            return pd.array([scale.by_name(x).code for x in names], dtype="Int8")
        if f.code == "gr_months_to_job":
            status = frame.get("gr_emp_status")
            months = np.minimum(rng.geometric(0.22, n) - 1, 60)
            out = pd.array(months, dtype="Int16")
            if status is not None:
                sc = self.inst.scale_of(self.inst.field("gr_emp_status"))
                working = {sc.by_name("employed").code, sc.by_name("self_employed").code}
                out[~status.isin(working).to_numpy()] = pd.NA
            return out
        if f.code == "gr_job_in_field":
            names = rng.choice(["yes", "partly", "no"], size=n, p=[0.55, 0.25, 0.20])
            out = pd.array([scale.by_name(x).code for x in names], dtype="Int8")
            status = frame.get("gr_emp_status")
            if status is not None:
                sc = self.inst.scale_of(self.inst.field("gr_emp_status"))
                working = {sc.by_name("employed").code, sc.by_name("self_employed").code}
                out[~status.isin(working).to_numpy()] = pd.NA
            return out
        if scale is not None and {"yes", "no"} <= {c.name for c in scale.choices}:
            names = np.where(g > -0.2, "yes", np.where(g > -1.0, "unsure", "no"))
            if "unsure" not in {c.name for c in scale.choices}:
                names = np.where(names == "unsure", "no", names)
            return pd.array([scale.by_name(x).code for x in names], dtype="Int8")
        if scale is not None:
            codes = np.array(scale.codes)
            return pd.array(codes[rng.integers(0, len(codes), n)], dtype="Int8")
        return pd.array(rng.integers(0, 12, n), dtype="Int16")


def plant_faults(frame: pd.DataFrame, inst: Instrument, rng, with_speeders: bool) -> pd.DataFrame:
    """Plant realistic faults in the first chunk of a file; they are listed in the truth."""
    n = len(frame)
    if n < 40:
        return frame
    pos = rng.choice(np.arange(5, n - 1), size=9, replace=False)
    items = [f.code for f in inst.items]
    ordinal = [f.code for f in inst.items if inst.scale_of(f).kind == "ordinal"]
    frame = frame.copy()
    # straight-liners: the same answer everywhere
    for p in pos[0:2]:
        v = int(rng.integers(1, 6))
        for c in items:
            frame.at[p, c] = v
        frame.at[p, "_fault"] = "straight_liner"
    for p in pos[2:4]:
        c = str(rng.choice(ordinal))
        frame.at[p, c] = OUT_OF_RANGE
        frame.at[p, "_fault"] = "out_of_range"
        frame.at[p, "_fault_item"] = c
    if with_speeders:
        for p in pos[4:6]:
            frame.at[p, "_end"] = frame.at[p, "_start"] + pd.Timedelta(
                seconds=int(rng.integers(18, 38))
            )
            frame.at[p, "_fault"] = "speeder"
    if any(f.context == "programme" for f in inst.context_fields):
        p = pos[6]
        frame.at[p, "programme"] = UNKNOWN_PROGRAMME
        frame.at[p, "_fault"] = "unknown_programme"
    # duplicate submissions: the same answers again, a few seconds later
    dup_of = sorted(int(p) for p in pos[7:9])
    pieces, last = [], 0
    for p in dup_of:
        pieces.append(frame.iloc[last : p + 1])
        copy = frame.iloc[[p]].copy()
        copy["_start"] = copy["_start"] + pd.Timedelta(seconds=40)
        copy["_end"] = copy["_end"] + pd.Timedelta(seconds=45)
        copy["_seed"] = copy["_seed"] + 1
        copy["_fault"] = "duplicate_submission"
        pieces.append(copy)
        last = p + 1
    pieces.append(frame.iloc[last:])
    return pd.concat(pieces, ignore_index=True)


def _sinks(out: Path, inst: Instrument, wave: str, dialect: str, lookups: Lookups) -> dict:
    ext = EXTENSIONS[dialect]
    folder = out / wave
    if dialect == "google_forms":
        return {
            lang: Sink(
                folder / f"{inst.id}__google_forms_{lang}.{ext}",
                dialect,
                lang,
                inst,
                lookups,
                with_email=True,
            )
            for lang in ("ky", "ru")
        }
    lang = "ru" if dialect in ("ms_forms", "plain_cp1251") else "ky"
    sink = Sink(
        folder / f"{inst.id}__{dialect}.{ext}",
        dialect,
        lang,
        inst,
        lookups,
        with_email=dialect == "ms_forms",
    )
    return {"ky": sink, "ru": sink}


def synthesize(
    out_dir: str | Path,
    reg: OrgRegistry,
    catalog: Catalog,
    *,
    waves: list[str] | tuple[str, ...] = DEFAULT_WAVES,
    seed: int = 2026,
    scale: float = 1.0,
    instruments: list[str] | None = None,
    dialect: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    """Write synthetic exports for every instrument × wave and ``truth.json``.

    Returns the truth dictionary (also written to ``out_dir/truth.json``).
    ``progress(label, done_rows, total_rows)`` is called after every chunk.
    """
    out = Path(out_dir)
    waves = list(waves)
    for w in waves:
        wave_start_year(w)  # raises a DeclarationError naming the bad wave
    plan = build_plan(reg, catalog, waves, seed)
    names = {
        r.code: {"ky": r.name_ky, "ru": r.name_ru, "en": r.name_en} for r in reg.units.itertuples()
    }
    lookups = Lookups(names)
    truth: dict = {
        "generated_by": f"sapat {__version__}",
        "seed": seed,
        "scale": scale,
        "waves": waves,
        "files": [],
        "faults": [],
        "planted_changes": plan.changes,
        "unit_differences": plan.differences,
        "teacher_effects": [
            {"teacher": t, "latent_offset": o} for t, o in plan.teacher_offset.items()
        ],
        "employment_rates": plan.employment,
        "response_rates": plan.rates,
        "null": "Every unit x item x wave not listed above has no planted change or difference.",
    }
    for instrument in instruments or list(FORMAT_PLAN):
        for wi, wave in enumerate(waves):
            gen = Generator(reg, catalog, plan, seed, instrument, waves, wi, scale)
            fmt = dialect or FORMAT_PLAN[instrument][wi % len(FORMAT_PLAN[instrument])]
            sinks = _sinks(out, gen.inst, wave, fmt, lookups)
            for s in {id(s): s for s in sinks.values()}.values():
                s.open()
            done, total = 0, gen.total
            fault_rng = np.random.default_rng(stable_seed(seed, "faults", instrument, wave))
            try:
                for k, (frame, respondents) in enumerate(gen.chunks()):
                    if k == 0:
                        frame = plant_faults(
                            frame,
                            gen.inst,
                            fault_rng,
                            with_speeders=fmt in ("ms_forms", "kobo", "limesurvey"),
                        )
                    for lang in ("ky", "ru"):
                        part = (
                            frame[frame["_lang"] == lang]
                            if sinks["ky"] is not sinks["ru"]
                            else (frame if lang == "ky" else frame.iloc[0:0])
                        )
                        sinks[lang].write(part)
                    done += respondents
                    if progress:
                        progress(f"{instrument} {wave}", done, total)
            finally:
                for s in {id(s): s for s in sinks.values()}.values():
                    s.close()
            for s in {id(s): s for s in sinks.values()}.values():
                truth["files"].append(
                    {
                        "file": str(s.path.relative_to(out)),
                        "instrument": gen.inst.id,
                        "version": gen.inst.version,
                        "wave": wave,
                        "dialect": fmt,
                        "language": s.lang,
                        "encoding": s.encoding,
                        "delimiter": s.delimiter,
                        "header_rows": s.header_rows,
                        "rows": s.rows,
                    }
                )
                for flt in s.faults:
                    truth["faults"].append(
                        {
                            "file": str(s.path.relative_to(out)),
                            **{k: v for k, v in flt.items() if k != "file"},
                        }
                    )
                if fmt in ("google_forms", "ms_forms") and s.with_email:
                    truth["faults"].append(
                        {
                            "file": str(s.path.relative_to(out)),
                            "row": None,
                            "kind": "email_column",
                            "column": s.columns()[1] if fmt == "google_forms" else "Email",
                            "detail": "respondents' e-mail addresses",
                        }
                    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=2), "utf-8")
    return truth
