"""Draft a questionnaire workbook from an export the office already has.

``sapat instruments draft FILE --form-id ID`` reads the export's columns and answers and
writes a first XLSForm workbook: every column whose answers form a rating scale becomes an
item (its scale recognised from numbers 0..10 / 1..k, from numbered labels such as
``(1) Not useful at all``, or from the wording of common agreement, satisfaction, quality
and frequency scales in English, Russian and Kyrgyz), items with the same heading stem
and scale form a dimension, "don't know" and "not applicable" answers are declared as
non-answers, and the columns named with ``--unit``/``--programme``/``--teacher``/
``--discipline`` become context fields. The draft is a starting point: the office checks
the order of every scale it prints, names the dimensions, marks reverse-worded items, and
runs ``sapat instruments check``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
import yaml

from pipeline.config import LANGUAGE_NAMES
from pipeline.errors import DeclarationError, UsageError
from pipeline.instruments.model import MAX_POINTS

#: Answer wordings and their place on the scale (low = unfavourable / rare). The
#: longest wording found in an answer decides; all answers of a scale must be placed.
VOCABULARY: dict[str, float] = {
    # agreement
    "strongly disagree": 1,
    "completely disagree": 1,
    "totally disagree": 1,
    "disagree strongly": 1,
    "disagree": 2,
    "somewhat disagree": 2.5,
    "neither": 3,
    "neutral": 3,
    "undecided": 3,
    "neither agree nor disagree": 3,
    "somewhat agree": 3.5,
    "agree": 4,
    "strongly agree": 5,
    "strong agree": 5,
    "completely agree": 5,
    "totally agree": 5,
    "agree strongly": 5,
    "полностью не согласен": 1,
    "совершенно не согласен": 1,
    "не согласен": 2,
    "скорее не согласен": 2.5,
    "затрудняюсь ответить": 3,
    "нейтрально": 3,
    "скорее согласен": 3.5,
    "согласен": 4,
    "полностью согласен": 5,
    "таптакыр макул эмесмин": 1,
    "макул эмесмин": 2,
    "бейтарапмын": 3,
    "макулмун": 4,
    "толугу менен макулмун": 5,
    # satisfaction
    "very dissatisfied": 1,
    "dissatisfied": 2,
    "satisfied": 4,
    "very satisfied": 5,
    "совсем не удовлетворен": 1,
    "не удовлетворен": 2,
    "удовлетворен": 4,
    "полностью удовлетворен": 5,
    # quality
    "very poor": 1,
    "poor": 2,
    "fair": 3,
    "average": 3,
    "good": 4,
    "very good": 5,
    "excellent": 5,
    "very bad": 1,
    "bad": 2,
    # frequency and extent
    "never": 0,
    "almost never": 1,
    "hardly ever": 1,
    "never or almost never": 1,
    "never or hardly ever": 1,
    "rarely": 1.5,
    "a few times a year": 2,
    "once a month": 3,
    "about once a month": 3,
    "sometimes": 4,
    "some lessons": 4,
    "several times a month": 4,
    "often": 5,
    "most lessons": 5,
    "several times a week": 5,
    "usually": 5,
    "almost always": 6,
    "always": 6.5,
    "all lessons": 6,
    "several times a day": 6,
    "every day": 6,
    "никогда": 0,
    "редко": 1.5,
    "иногда": 4,
    "часто": 5,
    "всегда": 6.5,
    "not at all": 1,
    "a little": 2,
    "somewhat": 3,
    "quite a bit": 4,
    "very much": 5,
}
#: Answers that are not a place on the scale.
NON_ANSWERS = {
    "dont_know": (
        "don't know",
        "dont know",
        "do not know",
        "don t know",
        "не знаю",
        "билбейм",
        "difficult to say",
    ),
    "not_applicable": (
        "not applicable",
        "n a",
        "na",
        "не применимо",
        "неприменимо",
        "тиешелүү эмес",
        "does not apply",
    ),
}
_LEADING_NUMBER = re.compile(r"^\s*\(?\s*(\d{1,2})\s*\)?(?:[\s.:\-–]|$)")
_STEM = re.compile(r"^(.*?)[_\-. ]?(\d+)$")
_CODE_CHARS = re.compile(r"[^a-z0-9_]+")


def _norm(text: str) -> str:
    from pipeline.ingest.mapping import normalise

    return normalise(text)


def code_of(heading: str, used: set[str]) -> str:
    """A valid, unused item code for a column heading (``ST24Q01`` → ``st24q01``)."""
    base = _CODE_CHARS.sub("_", heading.strip().lower()).strip("_") or "q"
    if not base[0].isalpha():
        base = "q_" + base
    base = base[:40]
    code, k = base, 2
    while code in used:
        code, k = f"{base}_{k}", k + 1
    used.add(code)
    return code


def _non_answer(label: str) -> str | None:
    n = _norm(label)
    for kind, words in NON_ANSWERS.items():
        if any(n == _norm(w) or n.startswith(_norm(w) + " ") for w in words):
            return kind
    return None


def _rank(label: str) -> float | None:
    n = _norm(label)
    hits = [
        (len(k), v) for k, v in _VOCAB.items() if n == k or re.search(rf"\b{re.escape(k)}\b", n)
    ]
    if not hits:
        return None
    return max(hits)[1]


_VOCAB = {_norm(k): v for k, v in VOCABULARY.items()}


@dataclass
class DraftScale:
    """A scale found in the answers: its choices in order, with their codes."""

    name: str
    choices: list[tuple[str, str, list[str]]]  # (code name, label, aliases)
    missing: dict[str, str] = field(default_factory=dict)  # choice name -> kind
    how: str = ""
    checked: bool = True  # False: order not recognised, the office must check it

    @property
    def key(self) -> tuple:
        return (
            tuple(c[0] for c in self.choices),
            tuple(sorted(self.missing.items())),
            tuple(_norm(c[1]) for c in self.choices),
        )


def recognise_scale(values: Counter) -> DraftScale | None:
    """The rating scale a column's answers form, or None (not a rating question)."""
    by_norm: dict[str, Counter] = {}
    for v, n in values.items():
        text = str(v).strip()
        if text:
            by_norm.setdefault(_norm(text), Counter())[text] += n
    if not 2 <= len(by_norm) <= MAX_POINTS + 2:
        return None
    spellings = {k: [s for s, _ in c.most_common()] for k, c in by_norm.items()}
    missing = {k: kind for k in by_norm if (kind := _non_answer(spellings[k][0]))}
    answers = [k for k in by_norm if k not in missing]
    if len(answers) < 2:
        return None
    # whole numbers 0..10 or 1..k (also "4.0")
    nums = {}
    for k in answers:
        try:
            f = float(spellings[k][0].replace(",", "."))
        except ValueError:
            break
        if not f.is_integer():
            break
        nums[k] = int(f)
    else:
        codes = sorted(nums.values())
        low = codes[0]
        if low in (0, 1) and codes[-1] - low + 1 <= MAX_POINTS:
            full = range(low, codes[-1] + 1)
            choices = [(str(c), str(c), []) for c in full]
            return _with_missing(choices, missing, spellings, f"numbers {low}..{codes[-1]}")
        return None
    # numbered labels: "(1) Not useful at all", "(2)", …
    lead = {k: _LEADING_NUMBER.match(spellings[k][0]) for k in answers}
    if all(lead.values()):
        num = {k: int(m.group(1)) for k, m in lead.items()}
        codes = sorted(num.values())
        if (
            len(set(codes)) == len(codes)
            and codes[0] in (0, 1)
            and codes == list(range(codes[0], codes[0] + len(codes)))
        ):
            choices = [
                (str(num[k]), spellings[k][0], spellings[k][1:])
                for k in sorted(answers, key=num.get)
            ]
            return _with_missing(choices, missing, spellings, "numbered labels")
    # wordings of common scales
    ranks = {k: _rank(spellings[k][0]) for k in answers}
    if (
        len(answers) <= MAX_POINTS
        and all(r is not None for r in ranks.values())
        and len(set(ranks.values())) == len(answers)
    ):
        ordered = sorted(answers, key=ranks.get)
        choices = [(str(i), spellings[k][0], spellings[k][1:]) for i, k in enumerate(ordered, 1)]
        return _with_missing(choices, missing, spellings, "recognised wording")
    if len(answers) <= 7 and all(not k.isdigit() for k in answers):
        # an unrecognised wording: in order of frequency, for the office to put right
        ordered = sorted(answers, key=lambda k: -sum(by_norm[k].values()))
        choices = [(str(i), spellings[k][0], spellings[k][1:]) for i, k in enumerate(ordered, 1)]
        out = _with_missing(choices, missing, spellings, "order NOT recognised")
        out.checked = False
        return out
    return None


def _with_missing(choices, missing, spellings, how) -> DraftScale:
    names = {"dont_know": "dk", "not_applicable": "na"}
    out_missing = {}
    for k, kind in missing.items():
        name = names[kind]
        choices.append((name, spellings[k][0], spellings[k][1:]))
        out_missing[name] = kind
    return DraftScale(name="", choices=choices, missing=out_missing, how=how)


@dataclass
class DraftItem:
    column: str
    code: str
    scale: DraftScale | None
    role: str  # item | context | comment
    context: str | None = None
    dimension: str | None = None


def draft_items(
    columns: list[str], values: dict[str, Counter], roles: dict[str, str], skip: set[str]
) -> tuple[list[DraftItem], list[DraftScale]]:
    """Decide each column's role and scale; scales shared by identical answer sets."""
    used: set[str] = set()
    scales: dict[tuple, DraftScale] = {}
    items: list[DraftItem] = []
    for col in columns:
        if col in skip:
            continue
        code = code_of(col, used)
        if col in roles:
            items.append(DraftItem(col, code, None, "context", roles[col]))
            continue
        scale = recognise_scale(values[col])
        if scale is None:
            distinct = len([v for v in values[col] if str(v).strip()])
            role = "context" if distinct <= 60 else "comment"
            items.append(DraftItem(col, code, None, role, code if role == "context" else None))
            continue
        scale = scales.setdefault(scale.key, scale)
        if not scale.name:
            scale.name = f"scale{len(scales)}"
        items.append(DraftItem(col, code, scale, "item"))
    # dimensions: items with the same heading stem and scale (ST24Q01.. → st24q)
    for it in items:
        if it.role == "item":
            m = _STEM.match(it.code)
            stem = (m.group(1) if m and m.group(1) else it.code).strip("_") or "items"
            it.dimension = f"{stem}" if stem[0].isalpha() else f"d_{stem}"
    seen: dict[str, str] = {}
    for it in items:
        if it.role == "item":
            name = seen.setdefault(it.dimension, it.scale.name)
            if name != it.scale.name:
                it.dimension = f"{it.dimension}_{it.scale.name}"
    return items, list(scales.values())


def write_draft(
    path: Path,
    *,
    form_id: str,
    version: str,
    items: list[DraftItem],
    scales: list[DraftScale],
    lang: str,
    population: str | None,
) -> None:
    """The workbook (sheets survey, choices, scales, dimensions, settings)."""
    label = f"label::{LANGUAGE_NAMES[lang]}"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "survey"
    ws.append(
        [
            "type",
            "name",
            label,
            "required",
            "sapat_role",
            "dimension",
            "reverse",
            "context",
            "aliases",
        ]
    )
    files = {
        "unit": "units.csv",
        "programme": "programmes.csv",
        "teacher": "teachers.csv",
        "discipline": "disciplines.csv",
    }
    for it in items:
        if it.role == "item":
            ws.append(
                [
                    f"select_one {it.scale.name}",
                    it.code,
                    it.column,
                    None,
                    "item",
                    it.dimension,
                    None,
                    None,
                    it.column,
                ]
            )
        elif it.role == "context":
            kind = f"select_one_from_file {files[it.context]}" if it.context in files else "text"
            ws.append(
                [
                    kind,
                    it.code,
                    it.column,
                    "yes" if it.context in files else None,
                    "context",
                    None,
                    None,
                    it.context,
                    it.column,
                ]
            )
        else:
            ws.append(["text", it.code, it.column, None, "comment", None, None, None, it.column])
    ch = wb.create_sheet("choices")
    ch.append(["list_name", "name", label, "aliases"])
    sc = wb.create_sheet("scales")
    sc.append(
        [
            "list_name",
            "kind",
            "points",
            "positive_from",
            "negative_to",
            "not_applicable",
            "dont_know",
            "how_recognised",
        ]
    )
    for s in scales:
        for name, text, aliases in s.choices:
            ch.append([s.name, name, text, "|".join(aliases) or None])
        na = "|".join(n for n, k in s.missing.items() if k == "not_applicable") or None
        dk = "|".join(n for n, k in s.missing.items() if k == "dont_know") or None
        sc.append(
            [
                s.name,
                "ordinal",
                None,
                None,
                None,
                na,
                dk,
                s.how if s.checked else f"{s.how}: CHECK THE ORDER OF THESE CHOICES",
            ]
        )
    dims = wb.create_sheet("dimensions")
    dims.append(["code", label, "kind"])
    for d in dict.fromkeys(it.dimension for it in items if it.role == "item"):
        dims.append([d, d, None])
    st = wb.create_sheet("settings")
    st.append(["form_title", "form_id", "version", "default_language", "population"])
    st.append([form_id, form_id, version, LANGUAGE_NAMES[lang], population])
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)


def add_version(
    instruments_dir: Path, form_id: str, version: str, workbook: str, waves: list[str]
) -> None:
    """List the workbook in versions.yaml (refusing a version already listed)."""
    path = instruments_dir / "versions.yaml"
    data = yaml.safe_load(path.read_text("utf-8")) if path.exists() else None
    data = data or {}
    entry = data.setdefault(form_id, {"versions": [], "not_comparable": []})
    if any(str(v.get("version")) == version for v in entry.get("versions", [])):
        raise UsageError(
            f"{form_id} already has a version {version} in versions.yaml",
            file=str(path),
            expected="another --version",
        )
    entry.setdefault("versions", []).append(
        {"version": version, "workbook": workbook, "waves": list(waves)}
    )
    entry.setdefault("not_comparable", [])
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "utf-8")


def check_form_id(form_id: str, version: str = "1") -> None:
    """A form id and version that make a workbook's file name: short codes only."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", form_id):
        raise UsageError(
            f"--form-id {form_id[:60]!r} is not a valid code",
            expected="lowercase letters, digits and _, starting with a letter, at most 40",
        )
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}", version):
        raise UsageError(
            f"--version {version[:60]!r} is not a valid version",
            expected="letters, digits, '.', '-' or '_', at most 20, e.g. 2026.1",
        )


__all__ = ["DeclarationError", "add_version", "draft_items", "recognise_scale", "write_draft"]
