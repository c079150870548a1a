"""What a questionnaire is, once read from its XLSForm workbook.

Plain frozen dataclasses; no I/O here (see :mod:`pipeline.instruments.catalog`).
Nothing here knows a questionnaire by name: the roles of fields, the scales, the outcome
measures and the population a questionnaire samples are all declared in its workbook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from pipeline.config import LANGUAGES


class Role(StrEnum):
    """What a survey row is for (column ``sapat_role``)."""

    META = "meta"
    CONTEXT = "context"
    ITEM = "item"
    OUTCOME = "outcome"
    COMMENT = "comment"


class ContextRole(StrEnum):
    """Context fields Sapat itself uses (column ``context`` of the survey sheet).

    Each is stored in a column of this name, whatever the field's code; other context
    fields (year of study, sector, …) are kept under their own code.
    """

    PROGRAMME = "programme"
    UNIT = "unit"
    TEACHER = "teacher"
    DISCIPLINE = "discipline"
    STUDY_LEVEL = "study_level"


class Missing(StrEnum):
    """Answers that are not a position on the scale (declared per scale)."""

    NOT_APPLICABLE = "not_applicable"
    DONT_KNOW = "dont_know"


#: Storage codes of the declared non-answers. Answer codes on a scale are >= 0 (an
#: ordinal scale may run 0..10), so these are negative; -1 marks an unknown answer while
#: typing and never reaches the store.
MISSING_CODES = {Missing.NOT_APPLICABLE: -2, Missing.DONT_KNOW: -3}
NOT_APPLICABLE_CODE = MISSING_CODES[Missing.NOT_APPLICABLE]
DONT_KNOW_CODE = MISSING_CODES[Missing.DONT_KNOW]
#: Largest number of answer positions of a rating scale.
MAX_POINTS = 11


@dataclass(frozen=True)
class Choice:
    """One answer option of a choice list."""

    name: str
    labels: dict[str, str]
    code: int  # small integer stored in DuckDB; negative for a declared non-answer
    aliases: tuple[str, ...] = ()

    def label(self, lang: str) -> str:
        return _label(self.labels, lang, self.name)


@dataclass(frozen=True)
class Scale:
    """A choice list with its meaning: ordinal (rating), nominal or binary.

    For an ordinal scale the answer codes are the choice names (consecutive whole
    numbers starting at 0 or 1); ``positive_from`` is the smallest code counted as
    positive and ``negative_to`` the largest counted as negative.
    """

    list_name: str
    kind: str  # ordinal | nominal | binary
    choices: tuple[Choice, ...]
    positive_from: int | None = None
    negative_to: int | None = None
    missing: dict[str, Missing] = field(default_factory=dict)  # choice name -> kind

    @property
    def valid_choices(self) -> tuple[Choice, ...]:
        """Choices that are real answers (not a declared non-answer)."""
        return tuple(c for c in self.choices if c.name not in self.missing)

    @property
    def codes(self) -> tuple[int, ...]:
        """Answer codes, in scale order."""
        return tuple(c.code for c in self.valid_choices)

    @property
    def low(self) -> int:
        return min(self.codes)

    @property
    def high(self) -> int:
        return max(self.codes)

    @property
    def points(self) -> int:
        return len(self.valid_choices)

    @property
    def not_applicable(self) -> str | None:
        """Name of the (first) "not applicable" choice, if any."""
        return next((n for n, k in self.missing.items() if k is Missing.NOT_APPLICABLE), None)

    def reverse(self, code: float) -> float:
        """A reverse-coded item's answer on the scale's direction: ``low + high - x``."""
        return self.low + self.high - code

    def by_name(self, name: str) -> Choice:
        for c in self.choices:
            if c.name == name:
                return c
        raise KeyError(name)

    def signature(self) -> tuple:
        """What must be identical for two items to be comparable."""
        return (
            self.kind,
            self.positive_from,
            self.negative_to,
            tuple(sorted((k, v.value) for k, v in self.missing.items())),
            tuple((c.name, c.code, tuple(sorted(c.labels.items()))) for c in self.choices),
        )


def default_thresholds(low: int, high: int) -> tuple[int, int]:
    """(positive_from, negative_to) when a workbook does not say: the codes above and
    below the scale's midpoint (4 and 2 on 1..5, 3 and 2 on 1..4, 5 and 3 on 1..7, 6 and 4
    on 0..10)."""
    mid = (low + high) / 2
    return math.floor(mid) + 1, math.ceil(mid) - 1


class Statistic(StrEnum):
    """How an outcome measure summarises its field."""

    SHARE = "share"  # % of the base answers that are a success
    MEDIAN = "median"  # median of a number, with a distribution-free interval
    MEAN = "mean"  # mean of a number, with a t interval


@dataclass(frozen=True)
class Measure:
    """An outcome measure declared in the workbook's ``measures`` sheet.

    ``share``: 100 × (answers in ``success``) / (answers in ``base``; every valid answer
    when ``base`` is empty). ``median``/``mean``: of a numeric field's answers.
    """

    code: str
    field: str
    statistic: Statistic
    success: tuple[int, ...] = ()
    base: tuple[int, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)

    def label(self, lang: str) -> str:
        return _label(self.labels, lang, self.code)


@dataclass(frozen=True)
class Field:
    """One row of the survey sheet that carries data (not a group or note)."""

    code: str
    type: str
    role: Role
    labels: dict[str, str]
    dimension: str | None = None
    reverse: bool = False
    aliases: tuple[str, ...] = ()
    context: str | None = None
    list_name: str | None = None
    group: str | None = None
    group_labels: dict[str, str] = field(default_factory=dict)
    required: bool = False
    optional: bool = False  # an item a file may lack (sapat_optional)
    constraint: str | None = None
    relevant: str | None = None
    from_file: str | None = None  # select_one_from_file <file>

    def label(self, lang: str) -> str:
        return _label(self.labels, lang, self.code)

    @property
    def base_type(self) -> str:
        return self.type.split()[0]

    @property
    def column(self) -> str:
        """The column of the fact table holding this field: the context role for the
        roles Sapat uses (``programme``, ``teacher``, …), else the field's code."""
        if self.role is Role.CONTEXT and self.context in {r.value for r in ContextRole}:
            return self.context
        return self.code


def _label(labels: dict[str, str], lang: str, fallback: str) -> str:
    return labels.get(lang) or next((labels[x] for x in LANGUAGES if labels.get(x)), fallback)


@dataclass(frozen=True)
class Instrument:
    """One version of one questionnaire."""

    id: str
    version: str
    title: str
    fields: tuple[Field, ...]
    scales: dict[str, Scale]
    dimensions: dict[str, dict[str, str]]  # code -> {lang: label}
    source: str = ""
    #: headcount population sampled (``headcounts.csv`` ``population``); None: the rows
    #: are not people of a known population (response rates, weights and the finite
    #: population correction are then not computed)
    population: str | None = None
    measures: tuple[Measure, ...] = ()
    #: the dimension holding the overall-satisfaction item (key drivers' outcome)
    overall_dimension: str | None = None
    default_language: str = "en"
    titles: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_code", {f.code: f for f in self.fields})

    @property
    def key(self) -> tuple[str, str]:
        return (self.id, self.version)

    def field(self, code: str) -> Field:
        return self._by_code[code]  # type: ignore[attr-defined]

    def has(self, code: str) -> bool:
        return code in self._by_code  # type: ignore[attr-defined]

    def by_role(self, *roles: Role) -> list[Field]:
        return [f for f in self.fields if f.role in roles]

    @property
    def items(self) -> list[Field]:
        """Rated items feeding the satisfaction indicators."""
        return self.by_role(Role.ITEM)

    @property
    def outcomes(self) -> list[Field]:
        return self.by_role(Role.OUTCOME)

    @property
    def context_fields(self) -> list[Field]:
        return self.by_role(Role.CONTEXT)

    @property
    def comments(self) -> list[Field]:
        return self.by_role(Role.COMMENT)

    def context_field(self, role: ContextRole | str) -> Field | None:
        """The field declared with this context role, if any."""
        return next((f for f in self.context_fields if f.context == role), None)

    def has_context(self, role: ContextRole | str) -> bool:
        return self.context_field(role) is not None

    def scale_of(self, f: Field) -> Scale | None:
        return self.scales.get(f.list_name) if f.list_name else None

    def item_scale(self, code: str) -> Scale:
        """The (ordinal) scale of a rated item."""
        scale = self.scale_of(self.field(code))
        assert scale is not None, code
        return scale

    def dimension_items(self) -> dict[str, list[str]]:
        """Dimension code -> item codes, in questionnaire order."""
        out: dict[str, list[str]] = {}
        for f in self.items:
            if f.dimension:
                out.setdefault(f.dimension, []).append(f.code)
        return out

    def dimension_label(self, code: str, lang: str) -> str:
        return _label(self.dimensions.get(code, {}), lang, code)

    def title_in(self, lang: str) -> str:
        return _label(self.titles, lang, self.title)

    def item_signature(self, code: str) -> tuple:
        """Wording (all languages) and scale: equal signatures mean comparable items."""
        f = self.field(code)
        scale = self.scale_of(f)
        return (
            tuple(f.labels.get(lang, "") for lang in LANGUAGES),
            f.reverse,
            f.type,
            scale.signature() if scale else None,
        )
