"""What a questionnaire is, once read from its XLSForm workbook.

Plain frozen dataclasses; no I/O here (see :mod:`pipeline.instruments.catalog`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pipeline.config import LANGUAGES


class InstrumentId(StrEnum):
    """The five questionnaires of the quality manual."""

    STUDENT_EXPERIENCE = "student_experience"
    TEACHING_EVALUATION = "teaching_evaluation"
    GRADUATE = "graduate"
    EMPLOYER = "employer"
    STAFF = "staff"


class Role(StrEnum):
    """What a survey row is for (column ``sapat_role``)."""

    META = "meta"
    CONTEXT = "context"
    ITEM = "item"
    OUTCOME = "outcome"
    COMMENT = "comment"


#: Storage code of the "not applicable" answer; scale codes start at 1.
NOT_APPLICABLE_CODE = 0


@dataclass(frozen=True)
class Choice:
    """One answer option of a choice list."""

    name: str
    labels: dict[str, str]
    code: int  # small integer stored in DuckDB; NOT_APPLICABLE_CODE for "not applicable"

    def label(self, lang: str) -> str:
        return self.labels.get(lang) or self.labels["en"]


@dataclass(frozen=True)
class Scale:
    """A choice list with its meaning: ordinal Likert-type, nominal or binary."""

    list_name: str
    kind: str  # ordinal | nominal | binary
    choices: tuple[Choice, ...]
    points: int | None = None
    positive_from: int | None = None
    not_applicable: str | None = None

    @property
    def valid_choices(self) -> tuple[Choice, ...]:
        """Choices that are real answers (not "not applicable")."""
        return tuple(c for c in self.choices if c.name != self.not_applicable)

    @property
    def codes(self) -> tuple[int, ...]:
        return tuple(c.code for c in self.valid_choices)

    def by_name(self, name: str) -> Choice:
        for c in self.choices:
            if c.name == name:
                return c
        raise KeyError(name)

    def signature(self) -> tuple:
        """What must be identical for two items to be comparable."""
        return (
            self.kind,
            self.points,
            self.positive_from,
            self.not_applicable,
            tuple((c.name, c.code, tuple(sorted(c.labels.items()))) for c in self.choices),
        )


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
    constraint: str | None = None
    relevant: str | None = None
    from_file: str | None = None  # select_one_from_file <file>

    def label(self, lang: str) -> str:
        return self.labels.get(lang) or self.labels["en"]

    @property
    def base_type(self) -> str:
        return self.type.split()[0]


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

    def scale_of(self, f: Field) -> Scale | None:
        return self.scales.get(f.list_name) if f.list_name else None

    def dimension_items(self) -> dict[str, list[str]]:
        """Dimension code -> item codes, in questionnaire order."""
        out: dict[str, list[str]] = {}
        for f in self.items:
            if f.dimension:
                out.setdefault(f.dimension, []).append(f.code)
        return out

    def dimension_label(self, code: str, lang: str) -> str:
        labels = self.dimensions.get(code, {})
        return labels.get(lang) or labels.get("en") or code

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
