"""Every derived table, declared once: its columns with types, key, meaning and disclosure rule.

The one declaration generates the DDL (:func:`ddl`), tells the gate which column is the
number of respondents and which columns are statistics to hide (:mod:`pipeline.publish`),
and generates ``docs/tables.md`` (:func:`markdown`). Nothing else lists these columns.

Disclosure rules
----------------
``units``
    One row per unit of the org tree: a row whose ``n_column`` is below ``min_n`` shows
    no statistic, and complementary suppression runs along the org tree within each
    slice (``slice_by``), so that no hidden cell can be derived from its parent and
    visible siblings.
``parts``
    Rows that split a row another table publishes (:class:`Parent`): a teacher's results
    per discipline, whose answers add up to the teacher's row of ``ind_items``. A row
    whose ``n_column`` is below ``min_n`` shows no statistic, and complementary
    suppression runs within each slice with the parent row, as its own table's gate shows
    it, at the head of each family: no hidden part is the parent minus its visible
    siblings. The parts must add up to the parent exactly (a part for the answers that
    name no discipline included), so that the gate never needs to hide the parent.
``comparison``
    A row resting on any group smaller than ``min_n`` (every column in ``n_columns``)
    shows no statistic. A table whose rows compare cells of a ``units`` table (a unit's
    item in two waves, a unit against the rest of the university, two units, a unit's
    trend over the waves) declares those cells (:class:`Cell`, ``rests_on``): a row
    resting on a cell that its own table's gate hides (as a small cell or as a
    complement), or on a cell that table does not hold or holds with another ``n``,
    shows no statistic either, so that no comparison publishes what the units table
    hides. Rows of a table that declares no cells keep the small-group rule alone.
``none``
    Nothing to hide (no respondent-level numbers).

Every column that is not a key or a label is a statistic: hidden when its row is
hidden (fail-closed: a new column is hidden unless declared a label). A label stays
shown in a hidden row, so it must not depend on the respondents: a flag computed from
``n`` or the response rate (``indicative_only``, ``reliability_reason``, ``fpc``, a
test's ``p_method``, a fit's ``converged``) is a statistic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Answer codes a rating scale may use (0..10 or 1..11 at the most): one distribution
#: column ``pct_<code>`` each.
ANSWER_CODES = tuple(range(0, 12))


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    meaning: str
    #: key: identifies the row; label: describes it (shown even when the row is hidden);
    #: stat: a number resting on the respondents (hidden with its row)
    kind: str = "stat"


@dataclass(frozen=True)
class Parent:
    """The published row that a ``parts`` table's rows split: the rows of ``table`` that
    match ``where``, in the same slice, whose ``unit[1]`` column names the unit in this
    table's ``unit[0]`` column (e.g. ind_items' teacher row of a teacher)."""

    table: str
    #: (column, value) pairs selecting the parent rows of ``table``
    where: tuple[tuple[str, str], ...]
    #: (column of this table, column of the parent table) naming the same unit
    unit: tuple[str, str]


@dataclass(frozen=True)
class Cell:
    """A cell of a ``units`` table that each row of a ``comparison`` table rests on: the
    rows of ``table`` whose column ``c`` holds the comparison row's value of its column
    ``mine`` for every ``(c, mine)`` in ``on``, and the value ``v`` for every ``(c, v)``
    in ``where`` (e.g. the university's row of an item: ``org_level`` = university).

    ``through``: (column of ``table``, column of this table): every such row whose value
    of the first is at most the comparison row's value of the second (a trend rests on
    the unit's cells of every wave up to its own). ``n``: the column of the comparison
    row holding the cell's ``n`` (the cells' total with ``through``); a row whose number
    differs rests on answers the units table does not show (fail-closed: hidden)."""

    table: str
    on: tuple[tuple[str, str], ...]
    where: tuple[tuple[str, str], ...] = ()
    through: tuple[str, str] | None = None
    n: str | None = None

    def describe(self) -> str:
        """The cell in words (``docs/tables.md``)."""
        same = [f"`{c}`" for c, mine in self.on if c == mine]
        named = [f"`{c}` = its `{mine}`" for c, mine in self.on if c != mine]
        named += [f"`{c}` = {v}" for c, v in self.where]
        if self.through is not None:
            named.append(f"`{self.through[0]}` up to its `{self.through[1]}`")
        text = f"the `{self.table}` row" + ("s" if self.through else "")
        if same:
            text += f" of its {', '.join(same)}"
        if named:
            text += (" and " if same else " with ") + ", ".join(named)
        if self.n and self.through is not None:
            text += f" (their `n` adds up to its `{self.n}`)"
        elif self.n:
            text += f" (its `n` is the row's `{self.n}`)"
        return text


@dataclass(frozen=True)
class Table:
    name: str
    meaning: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    rule: str  # units | parts | comparison | none
    n_columns: tuple[str, ...] = ()
    slice_by: tuple[str, ...] = ()
    #: the column naming the unit a row is about (None: a whole-university table);
    #: comparison tables between two units name both
    unit_columns: tuple[str, ...] = ("unit",)
    #: rows a recompute of some (instrument, wave) pairs replaces
    replaced_by: tuple[str, ...] = ("instrument", "wave")
    cli_name: str = ""
    #: ``parts`` tables: the row of another table the rows of one unit add up to
    parent: Parent | None = None
    #: ``comparison`` tables: the cells of ``units`` tables each row rests on
    rests_on: tuple[Cell, ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def labels(self) -> list[str]:
        return [c.name for c in self.columns if c.kind in ("key", "label")]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def K(name: str, type: str, meaning: str) -> Column:  # noqa: N802 - a table-building shorthand
    return Column(name, type, meaning, "key")


def L(name: str, type: str, meaning: str) -> Column:  # noqa: N802
    return Column(name, type, meaning, "label")


def S(name: str, type: str, meaning: str) -> Column:  # noqa: N802
    return Column(name, type, meaning, "stat")


_INSTRUMENT = K("instrument", "VARCHAR", "questionnaire id (form_id)")
_WAVE = K("wave", "VARCHAR", "academic year YYYY-YYYY")
_ORG_LEVEL = K(
    "org_level",
    "VARCHAR",
    "level of the org tree: university, faculty, department, programme, teacher",
)
_UNIT = K("unit", "VARCHAR", "code of the unit (org_units.csv), or of the teacher")
_ITEM = K("item", "VARCHAR", "item code")
_CI_METHOD = L("ci_method", "VARCHAR", "interval method of the percentages")
_CONFIDENCE = L("confidence", "DOUBLE", "confidence level of every interval")
# computed from n and the respondents: statistics, hidden with their row
_INDICATIVE = S(
    "indicative_only",
    "BOOLEAN",
    "true when n or the response rate is below the reliability thresholds",
)
_REASON = S(
    "reliability_reason",
    "VARCHAR",
    "why indicative: low_n, low_response_rate, headcount_below_respondents",
)

_TEST_COLUMNS = (
    L("test", "VARCHAR", "two_proportion_z (on % positive) or mann_whitney (all answers)"),
    S("statistic", "DOUBLE", "test statistic (pooled z, Mann-Whitney W, Kruskal-Wallis H, ...)"),
    S("z", "DOUBLE", "the statistic as a standard normal deviate"),
    S("p_value", "DOUBLE", "unadjusted p-value"),
    L("family", "VARCHAR", "the family of tests adjusted together"),
    L("family_size", "BIGINT", "number of tests in the family"),
    L("adjust_method", "VARCHAR", "holm or bh"),
    S("p_adjusted", "DOUBLE", "p-value adjusted within the family"),
    S("effect_size", "DOUBLE", "Cohen's h (proportions) or rank-biserial r (Mann-Whitney)"),
    L("effect_size_kind", "VARCHAR", "which effect size"),
)

_P_METHOD = (
    "how p_value was obtained: normal (approximation), fisher_exact (an expected count "
    "below 5) or too_few_answers (no p-value: under 10 answers on a side)"
)

#: how a comparison row names its cell of ind_items: the same questionnaire, wave and
#: item; the same questionnaire, unit and item (its wave as each table says)
_SAME_ITEM = (("instrument", "instrument"), ("wave", "wave"), ("item", "item"))
_SAME_UNIT = tuple((c, c) for c in ("instrument", "org_level", "unit", "item"))

_PCT_CODES = tuple(
    S(f"pct_{c}", "DOUBLE", f"% of valid answers with code {c}") for c in ANSWER_CODES
)

TABLES: dict[str, Table] = {}


def _declare(t: Table) -> None:
    if (t.rule == "parts") != (t.parent is not None):
        raise ValueError(f"{t.name}: a parts table, and only one, declares its parent")
    if t.rests_on and t.rule != "comparison":
        raise ValueError(f"{t.name}: only a comparison table rests on cells of another")
    for cell in t.rests_on:
        up = TABLES[cell.table]  # declared before the tables resting on it
        theirs = [c for c, _ in (*cell.on, *cell.where)]
        mine = [m for _, m in cell.on]
        if cell.through is not None:
            theirs.append(cell.through[0])
            mine.append(cell.through[1])
        if up.rule != "units" or not set(theirs) <= set(up.names):
            raise ValueError(f"{t.name}: it rests on cells of a units table, by its columns")
        if not (set(mine) | ({cell.n} - {None})) <= set(t.names):
            raise ValueError(f"{t.name}: a cell is named by columns of {t.name}")
        if not set(up.slice_by) <= set(theirs):
            raise ValueError(f"{t.name}: a cell names the slice of {cell.table} it lies in")
    if t.parent is not None:
        up = TABLES[t.parent.table]  # declared before its parts
        if up.rule != "units" or tuple(t.slice_by) != tuple(up.slice_by):
            raise ValueError(f"{t.name}: its parent must be a units table sliced alike")
        if t.unit_columns != (t.parent.unit[0],) or len(t.n_columns) != 1:
            raise ValueError(f"{t.name}: one unit column (the parent's unit), one n column")
    TABLES[t.name] = t


#: the columns describing an item's scale, its mean and its share of positive answers,
#: shared by the tables of answers per item (ind_items, ind_teaching)
_ITEM_SCALE = (
    L("dimension", "VARCHAR", "dimension of the item"),
    L("reverse", "BOOLEAN", "item worded negatively (a high answer is unfavourable)"),
    L("scale_low", "TINYINT", "lowest answer code of the item's scale"),
    L("scale_high", "TINYINT", "highest answer code"),
    L("positive_from", "TINYINT", "smallest code counted as positive"),
    L("negative_to", "TINYINT", "largest code counted as negative"),
)
_ITEM_MEAN = (
    S("n", "BIGINT", "valid answers (not blank, not applicable, don't know)"),
    S("mean", "DOUBLE", "mean answer code"),
    S("sd", "DOUBLE", "standard deviation (n - 1)"),
    S("se_mean", "DOUBLE", "standard error of the mean (with the FPC where applied)"),
    S("mean_ci_low", "DOUBLE", "t interval of the mean"),
    S("mean_ci_high", "DOUBLE", ""),
)
_ITEM_POSITIVE = (
    S("x_positive", "BIGINT", "answers >= positive_from"),
    S("x_negative", "BIGINT", "answers <= negative_to"),
    S("pct_positive", "DOUBLE", "% positive"),
    S("pct_negative", "DOUBLE", "% negative"),
    S("pct_positive_se", "DOUBLE", "standard error of % positive"),
    S("pct_positive_ci_low", "DOUBLE", "interval of % positive (ci_method, confidence)"),
    S("pct_positive_ci_high", "DOUBLE", ""),
)

_declare(
    Table(
        "ind_items",
        "Satisfaction indicators per item and unit: distribution, mean, % positive.",
        (
            _INSTRUMENT,
            L("version", "VARCHAR", "questionnaire version used in the wave"),
            _WAVE,
            _ORG_LEVEL,
            _UNIT,
            _ITEM,
            *_ITEM_SCALE,
            *_ITEM_MEAN,
            S("median_interpolated", "DOUBLE", "grouped-data interpolated median"),
            *_PCT_CODES,
            *_ITEM_POSITIVE,
            L("headcount", "DOUBLE", "people the unit had (headcounts.csv), where declared"),
            # set where the response rate reaches its threshold (fpc = auto): hidden
            S(
                "fpc",
                "BOOLEAN",
                "true when the interval is narrowed by the finite population "
                "correction (assumes respondents are a random sample of the headcount)",
            ),
            S("respondents", "BIGINT", "respondents of the unit (whatever they answered)"),
            S("response_rate", "DOUBLE", "respondents / headcount (0-1)"),
            _INDICATIVE,
            _REASON,
            _CI_METHOD,
            _CONFIDENCE,
        ),
        key=("instrument", "wave", "org_level", "unit", "item"),
        rule="units",
        n_columns=("n",),
        slice_by=("instrument", "wave", "item"),
        cli_name="items",
    )
)

_declare(
    Table(
        "ind_dimensions",
        "Dimension scores (mean of a respondent's items) per unit.",
        (
            _INSTRUMENT,
            _WAVE,
            _ORG_LEVEL,
            _UNIT,
            K("dimension", "VARCHAR", "dimension code"),
            L("scale_low", "TINYINT", "lowest answer code"),
            L("scale_high", "TINYINT", "highest"),
            L("positive_from", "TINYINT", "a score at or above this is positive"),
            S("n", "BIGINT", "respondents with a score (at least half the items answered)"),
            S("mean", "DOUBLE", "mean score"),
            S("sd", "DOUBLE", "standard deviation"),
            S("se_mean", "DOUBLE", "standard error"),
            S("mean_ci_low", "DOUBLE", "t interval"),
            S("mean_ci_high", "DOUBLE", ""),
            S("x_positive", "BIGINT", "scores >= positive_from"),
            S("pct_positive", "DOUBLE", "% of scores that are positive"),
            S("pct_positive_ci_low", "DOUBLE", "interval of % positive"),
            S("pct_positive_ci_high", "DOUBLE", ""),
            _CI_METHOD,
            _CONFIDENCE,
        ),
        key=("instrument", "wave", "org_level", "unit", "dimension"),
        rule="units",
        n_columns=("n",),
        slice_by=("instrument", "wave", "dimension"),
        cli_name="dimensions",
    )
)

_declare(
    Table(
        "ind_teaching",
        "Teaching evaluation per teacher, discipline and item: mean, % positive "
        "(questionnaires with a teacher and a discipline field).",
        (
            _INSTRUMENT,
            L("version", "VARCHAR", "questionnaire version used in the wave"),
            _WAVE,
            K("teacher", "VARCHAR", "teacher code (teachers.csv): the unit of the row"),
            K(
                "discipline",
                "VARCHAR",
                "discipline code (disciplines.csv); missing (NULL) for the answers that name "
                "no discipline",
            ),
            _ITEM,
            *_ITEM_SCALE,
            *_ITEM_MEAN,
            *_ITEM_POSITIVE,
            # a function of n alone here: hidden with the row
            S("indicative_only", "BOOLEAN", "true when n is below the reliability threshold"),
            S("reliability_reason", "VARCHAR", "why indicative: low_n"),
            _CI_METHOD,
            _CONFIDENCE,
        ),
        key=("instrument", "wave", "teacher", "discipline", "item"),
        rule="parts",
        n_columns=("n",),
        slice_by=("instrument", "wave", "item"),
        unit_columns=("teacher",),
        cli_name="teaching",
        parent=Parent("ind_items", (("org_level", "teacher"),), ("teacher", "unit")),
    )
)

_declare(
    Table(
        "ind_outcomes",
        "Outcome measures declared in the workbooks (employment rate, ...).",
        (
            _INSTRUMENT,
            _WAVE,
            _ORG_LEVEL,
            _UNIT,
            K("measure", "VARCHAR", "measure code"),
            L("statistic_kind", "VARCHAR", "share (a %), median or mean"),
            S("n", "BIGINT", "answers in the base"),
            S("x", "DOUBLE", "successes (shares)"),
            S("value", "DOUBLE", "the measure: % for shares"),
            S(
                "ci_low",
                "DOUBLE",
                "interval (ci_method for shares; order statistics for medians; t for means)",
            ),
            S("ci_high", "DOUBLE", ""),
            _CI_METHOD,
            _CONFIDENCE,
        ),
        key=("instrument", "wave", "org_level", "unit", "measure"),
        rule="units",
        n_columns=("n",),
        slice_by=("instrument", "wave", "measure"),
        cli_name="outcomes",
    )
)

_declare(
    Table(
        "ind_response",
        "Respondents and response rate per unit.",
        (
            _INSTRUMENT,
            _WAVE,
            _ORG_LEVEL,
            _UNIT,
            S("respondents", "BIGINT", "respondents (rows not excluded as repeats)"),
            L("headcount", "DOUBLE", "people the unit had (headcounts.csv)"),
            S(
                "response_rate",
                "DOUBLE",
                "respondents / headcount; empty when the headcount is "
                "unknown or below the respondents",
            ),
            _INDICATIVE,
            _REASON,
        ),
        key=("instrument", "wave", "org_level", "unit"),
        rule="units",
        n_columns=("respondents",),
        slice_by=("instrument", "wave"),
        cli_name="response",
    )
)

_declare(
    Table(
        "ind_reliability",
        "Cronbach's alpha of each dimension and of all items (listwise).",
        (
            _INSTRUMENT,
            _WAVE,
            K("scale", "VARCHAR", "dimension code, or all_items"),
            L("k", "BIGINT", "items"),
            S("n", "BIGINT", "respondents who answered every item"),
            S("alpha", "DOUBLE", "Cronbach's alpha"),
            S("low_alpha", "BOOLEAN", "alpha < 0.7"),
        ),
        key=("instrument", "wave", "scale"),
        rule="comparison",
        n_columns=("n",),
        unit_columns=(),
        cli_name="reliability",
    )
)

_declare(
    Table(
        "ind_item_total",
        "Item statistics of each scale: alpha if deleted, item-total r.",
        (
            _INSTRUMENT,
            _WAVE,
            _ITEM,
            K("scale", "VARCHAR", "dimension code, or all_items"),
            L("reversed", "BOOLEAN", "reverse-coded"),
            S("n", "BIGINT", "respondents (listwise)"),
            S("alpha_if_deleted", "DOUBLE", "alpha of the other items"),
            S("item_total_corr", "DOUBLE", "corrected item-total correlation"),
        ),
        key=("instrument", "wave", "scale", "item"),
        rule="comparison",
        n_columns=("n",),
        unit_columns=(),
        cli_name="item_total",
    )
)

_declare(
    Table(
        "ind_drivers",
        "Key drivers of overall satisfaction (dimension scores, Shapley R2).",
        (
            _INSTRUMENT,
            _WAVE,
            K("outcome", "VARCHAR", "the overall item"),
            K("predictor", "VARCHAR", "dimension"),
            S("n", "BIGINT", "respondents (listwise)"),
            S("r2", "DOUBLE", "R2 of the full model"),
            S("importance", "DOUBLE", "Shapley share of R2"),
            S("share", "DOUBLE", "importance / r2"),
            S("rank", "BIGINT", "1 = strongest driver"),
            S("correlation", "DOUBLE", "Pearson r with the outcome"),
            S("std_coef", "DOUBLE", "standardised coefficient"),
            S("predictor_mean", "DOUBLE", "mean dimension score"),
        ),
        key=("instrument", "wave", "outcome", "predictor"),
        rule="comparison",
        n_columns=("n",),
        unit_columns=(),
        cli_name="drivers",
    )
)

_declare(
    Table(
        "ind_weighted",
        "University estimates post-stratified to the headcounts (R survey).",
        (
            _INSTRUMENT,
            _WAVE,
            _ITEM,
            K("design", "VARCHAR", "equal_prob, weighted, poststratified"),
            K("estimate", "VARCHAR", "mean or pct_positive"),
            K("method", "VARCHAR", "interval method"),
            L("cells", "VARCHAR", "post-stratification cells"),
            S("n_respondents", "BIGINT", "respondents in the design"),
            S("n", "BIGINT", "answers to the item"),
            L("population", "DOUBLE", "headcount covered"),
            S("value", "DOUBLE", "estimate (percent for pct_positive)"),
            S("se", "DOUBLE", "design SE"),
            S("ci_low", "DOUBLE", "interval"),
            S("ci_high", "DOUBLE", ""),
            S("df", "DOUBLE", "degrees of freedom of the interval"),
        ),
        key=("instrument", "wave", "item", "design", "estimate", "method"),
        rule="comparison",
        n_columns=("n",),
        unit_columns=(),
        cli_name="weighted",
    )
)

_declare(
    Table(
        "ind_changes",
        "Changes between consecutive waves per unit and item.",
        (
            _INSTRUMENT,
            _WAVE,
            _ORG_LEVEL,
            _UNIT,
            _ITEM,
            K("wave_from", "VARCHAR", "earlier wave"),
            K("wave_to", "VARCHAR", "later wave"),
            *_TEST_COLUMNS[:1],
            S("n_from", "BIGINT", "answers in wave_from"),
            S("n_to", "BIGINT", "answers in wave_to"),
            S("x_from", "BIGINT", "positive answers"),
            S("x_to", "BIGINT", ""),
            S("share_from", "DOUBLE", "share positive (0-1)"),
            S("share_to", "DOUBLE", ""),
            S("mean_from", "DOUBLE", "mean answer"),
            S("mean_to", "DOUBLE", ""),
            S("estimate", "DOUBLE", "share difference (to - from), or mean difference"),
            L("estimate_kind", "VARCHAR", "share_difference or mean_difference"),
            S("se", "DOUBLE", "standard error of the estimate"),
            S("ci_low", "DOUBLE", "interval"),
            S("ci_high", "DOUBLE", ""),
            *_TEST_COLUMNS[1:4],
            S("p_method", "VARCHAR", _P_METHOD),
            *_TEST_COLUMNS[4:],
        ),
        key=("instrument", "wave", "org_level", "unit", "item", "test"),
        rule="comparison",
        n_columns=("n_from", "n_to"),
        cli_name="changes",
        # the unit's item in each of the two waves
        rests_on=(
            Cell("ind_items", (*_SAME_UNIT, ("wave", "wave_from")), n="n_from"),
            Cell("ind_items", (*_SAME_UNIT, ("wave", "wave_to")), n="n_to"),
        ),
    )
)

_declare(
    Table(
        "ind_benchmark",
        "Each unit against the rest of the university, per item.",
        (
            _INSTRUMENT,
            _WAVE,
            _ORG_LEVEL,
            _UNIT,
            _ITEM,
            *_TEST_COLUMNS[:1],
            S("n_unit", "BIGINT", "answers in the unit"),
            S("n_rest", "BIGINT", "in the rest"),
            S("x_unit", "BIGINT", "positive answers"),
            S("x_rest", "BIGINT", ""),
            S("share_unit", "DOUBLE", "share positive (0-1)"),
            S("share_rest", "DOUBLE", ""),
            S("mean_unit", "DOUBLE", "mean answer"),
            S("mean_rest", "DOUBLE", ""),
            S("estimate", "DOUBLE", "unit - rest"),
            L("estimate_kind", "VARCHAR", ""),
            S("se", "DOUBLE", "standard error"),
            S("ci_low", "DOUBLE", "interval"),
            S("ci_high", "DOUBLE", ""),
            *_TEST_COLUMNS[1:4],
            S("p_method", "VARCHAR", _P_METHOD),
            *_TEST_COLUMNS[4:],
        ),
        key=("instrument", "wave", "org_level", "unit", "item", "test"),
        rule="comparison",
        n_columns=("n_unit", "n_rest"),
        cli_name="benchmark",
        # the unit's item, and the university's (the rest is the university - the unit)
        rests_on=(
            Cell("ind_items", (*_SAME_UNIT, ("wave", "wave")), n="n_unit"),
            Cell("ind_items", _SAME_ITEM, where=(("org_level", "university"),)),
        ),
    )
)

_declare(
    Table(
        "ind_kruskal",
        "Kruskal-Wallis test across the units of one org level, per item.",
        (
            _INSTRUMENT,
            _WAVE,
            _ORG_LEVEL,
            _ITEM,
            *_TEST_COLUMNS[:1],
            S("n", "BIGINT", "answers"),
            S("n_groups", "BIGINT", "units compared"),
            S("statistic", "DOUBLE", "H with the tie correction"),
            S("df", "DOUBLE", "groups - 1"),
            *_TEST_COLUMNS[3:],
        ),
        key=("instrument", "wave", "org_level", "item"),
        rule="comparison",
        n_columns=("n",),
        unit_columns=(),
        cli_name="kruskal",
    )
)

_declare(
    Table(
        "ind_dunn",
        "Dunn's pairwise tests, where the Kruskal-Wallis test of the item, wave "
        "and level found a difference (its p_adjusted below alpha), at levels of at most 30 "
        "units (ind_unavailable names the others).",
        (
            _INSTRUMENT,
            _WAVE,
            _ORG_LEVEL,
            _ITEM,
            K("group_a", "VARCHAR", "first unit"),
            K("group_b", "VARCHAR", "second unit"),
            *_TEST_COLUMNS[:1],
            S("n_a", "BIGINT", "answers in group_a"),
            S("n_b", "BIGINT", "in group_b"),
            S("mean_rank_a", "DOUBLE", "mean rank"),
            S("mean_rank_b", "DOUBLE", ""),
            *_TEST_COLUMNS[1:],
        ),
        key=("instrument", "wave", "org_level", "item", "group_a", "group_b"),
        rule="comparison",
        n_columns=("n_a", "n_b"),
        unit_columns=("group_a", "group_b"),
        cli_name="dunn",
        # the item of each of the two units
        rests_on=tuple(
            Cell("ind_items", (*_SAME_ITEM, ("org_level", "org_level"), ("unit", g)), n=n)
            for g, n in (("group_a", "n_a"), ("group_b", "n_b"))
        ),
    )
)

_declare(
    Table(
        "ind_trends",
        "Logistic trend of % positive over all waves (>= 3) per unit and item.",
        (
            _INSTRUMENT,
            _WAVE,
            _ORG_LEVEL,
            _UNIT,
            _ITEM,
            *_TEST_COLUMNS[:1],
            K("term", "VARCHAR", "intercept or slope (per wave)"),
            S("n", "BIGINT", "answers over all waves"),
            S("n_positive", "BIGINT", "positive answers"),
            L("n_waves", "BIGINT", "waves"),
            S("estimate", "DOUBLE", "coefficient (log-odds)"),
            S("se", "DOUBLE", "standard error"),
            S("ci_low", "DOUBLE", "interval"),
            S("ci_high", "DOUBLE", ""),
            S("statistic", "DOUBLE", "Wald z"),
            S("p_value", "DOUBLE", "p-value"),
            L("family", "VARCHAR", ""),
            L("family_size", "BIGINT", ""),
            L("adjust_method", "VARCHAR", ""),
            S("p_adjusted", "DOUBLE", "adjusted p"),
            S("odds_ratio", "DOUBLE", "exp(estimate)"),
            S("odds_ratio_ci_low", "DOUBLE", ""),
            S("odds_ratio_ci_high", "DOUBLE", ""),
            S("effect_size", "DOUBLE", "slope"),
            L("effect_size_kind", "VARCHAR", ""),
            # not when every answer is alike (all positive, none): hidden with its row
            S("converged", "BOOLEAN", "the fit converged"),
        ),
        key=("instrument", "wave", "org_level", "unit", "item", "term"),
        rule="comparison",
        n_columns=("n",),
        cli_name="trends",
        # the unit's item in every wave up to the trend's own (stored under the last)
        rests_on=(Cell("ind_items", _SAME_UNIT, through=("wave", "wave"), n="n"),),
    )
)

_declare(
    Table(
        "ind_unavailable",
        "Indicators that could not be computed, and why.",
        (
            _INSTRUMENT,
            _WAVE,
            K("table_name", "VARCHAR", "the table left empty"),
            L("reason", "VARCHAR", "why (e.g. the file has no respondent id)"),
        ),
        key=("instrument", "wave", "table_name"),
        rule="none",
        unit_columns=(),
        cli_name="unavailable",
    )
)

#: Indicator tables by the name ``sapat indicators --table`` knows them.
BY_CLI_NAME = {t.cli_name: t for t in TABLES.values() if t.cli_name}


def ddl(table: Table) -> str:
    """``CREATE TABLE IF NOT EXISTS`` of a declared table (identifiers from the
    declaration only)."""
    body = ", ".join(f'"{c.name}" {c.type}' for c in table.columns)
    return f"CREATE TABLE IF NOT EXISTS {table.name} ({body})"


def markdown() -> str:
    """``docs/tables.md``: every table, column and disclosure rule, from the declarations."""
    rules = {
        "units": "rows on fewer than `min_n` respondents (column {n}) show no statistic; "
        "complementary suppression along the org tree within each {slices}",
        "parts": "rows on fewer than `min_n` respondents (column {n}) show no statistic; "
        "complementary suppression within each {slices}, with {parent} as the parent of the "
        "rows of one {unit} (the rows of a {unit} add up to it)",
        "comparison": "a row resting on a group smaller than `min_n` (columns {n}) shows no "
        "statistic{cells}",
        "none": "no respondent-level numbers: shown as they are",
    }
    lines = [
        "# The indicator tables",
        "",
        "Generated from `pipeline/store/tables.py` (the one declaration of every table); do "
        'not edit by hand: `python -c "from pipeline.store.tables import markdown; '
        "print(markdown(), end='')\" > docs/tables.md`.",
        "",
        "Every number leaves Sapat through one door (`pipeline.publish.read`), which applies "
        "each table's disclosure rule and limits rows to the units the reader may see. "
        "Columns marked *stat* are hidden in a hidden row; *key* and *label* columns stay "
        "(a label never depends on the respondents: a flag computed from `n` or the response "
        "rate is a *stat*).",
        "",
    ]
    for t in TABLES.values():
        n = ", ".join(f"`{c}`" for c in t.n_columns)
        slices = "slice of " + ", ".join(f"`{c}`" for c in t.slice_by) if t.slice_by else ""
        parent = unit = ""
        if t.parent is not None:
            where = " and ".join(f"`{c}` = {v}" for c, v in t.parent.where)
            unit = f"`{t.unit_columns[0]}`"
            parent = f"the `{t.parent.table}` row ({where}, `{t.parent.unit[1]}` = {unit})"
        cells = ""
        if t.rests_on:
            cells = (
                ", nor does a row resting on a cell its own table hides, lacks, or holds with "
                "another `n`: " + "; ".join(c.describe() for c in t.rests_on)
            )
        lines += [
            f"## `{t.name}`"
            + (f" (`sapat indicators --table {t.cli_name}`)" if t.cli_name else ""),
            "",
            t.meaning,
            "",
            f"- key: {', '.join(f'`{k}`' for k in t.key)}",
            "- disclosure: "
            + rules[t.rule].format(n=n, slices=slices, parent=parent, unit=unit, cells=cells),
            f"- unit columns (a reader sees only rows of units in their scope): "
            f"{', '.join(f'`{c}`' for c in t.unit_columns) or 'none (whole-university figures)'}",
            "",
            "| column | type | kind | meaning |",
            "|---|---|---|---|",
        ]
        for c in t.columns:
            lines.append(f"| `{c.name}` | {c.type} | {c.kind} | {c.meaning} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(markdown(), end="")


def column_meanings() -> dict[str, str]:
    """Each declared column's meaning by name (the first non-empty one where tables share a
    name): the explanation sheet of a written file."""
    out: dict[str, str] = {}
    for t in TABLES.values():
        for c in t.columns:
            if c.meaning and not out.get(c.name):
                out[c.name] = c.meaning
    out.setdefault("suppressed", "true when the row rests on too few respondents to show")
    out.setdefault("suppression_reason", "why the row is hidden")
    return out


def layout_signature() -> str:
    """A short fingerprint of every declared table's columns and types."""
    import hashlib

    text = ";".join(
        f"{t.name}:" + ",".join(f"{c.name} {c.type}" for c in t.columns) for t in TABLES.values()
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]
