"""The questionnaires shipped with Sapat: valid XLSForm, complete labels, unique codes."""

from __future__ import annotations

import shutil
from itertools import combinations

import openpyxl
import pytest
from pyxform.xls2xform import convert

from pipeline.config import INSTRUMENTS_DIR, LANGUAGES
from pipeline.errors import DeclarationError
from pipeline.instruments import (
    Role,
    example_catalog,
    read_catalog,
    read_workbook,
    read_workbook_with_warnings,
)

CATALOG = example_catalog()
ENTRIES = [e for entries in CATALOG.versions.values() for e in entries]
EXPECTED = {"student_experience", "teaching_evaluation", "graduate", "employer", "staff"}


def test_all_five_questionnaires_are_declared():
    assert set(CATALOG.versions) == EXPECTED


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.workbook.name)
def test_workbook_converts_with_pyxform_without_warnings(entry):
    result = convert(xlsform=str(entry.workbook))
    assert "<h:html" in result.xform
    assert result.warnings == []


@pytest.mark.parametrize("inst", CATALOG.all(), ids=lambda i: f"{i.id}-{i.version}")
def test_every_label_present_and_different_across_languages(inst):
    texts = []
    for f in inst.by_role(Role.CONTEXT, Role.ITEM, Role.OUTCOME, Role.COMMENT):
        texts.append((f.code, f.labels))
        if f.group:
            texts.append((f"group {f.group}", f.group_labels))
    for code, labels in inst.dimensions.items():
        texts.append((f"dimension {code}", labels))
    for scale in inst.scales.values():
        for c in scale.choices:
            if scale.kind == "ordinal" and c.name.isdigit() and len(scale.choices) <= 2:
                continue
            texts.append((f"choice {scale.list_name}/{c.name}", c.labels))
    for what, labels in texts:
        values = [labels.get(lang, "").strip() for lang in LANGUAGES]
        assert all(values), f"{inst.id}: {what} lacks a label: {labels}"
        assert len(set(values)) == 3, f"{inst.id}: {what} has identical labels: {values}"


def test_kyrgyz_labels_use_kyrgyz_letters():
    """Kyrgyz text, not Russian copied over: the letters ң, ө, ү appear throughout."""
    for inst in CATALOG.all():
        ky = " ".join(f.label("ky") for f in inst.items)
        assert any(ch in ky for ch in "ңөүҢӨҮ"), inst.id


def test_item_codes_unique_across_instruments():
    owner: dict[str, str] = {}
    for inst in CATALOG.all():
        for f in inst.fields:
            if f.role in (Role.META, Role.CONTEXT):
                continue
            assert owner.setdefault(f.code, inst.id) == inst.id, (
                f"{f.code} used by {owner[f.code]} and {inst.id}"
            )


def test_items_have_dimensions_scales_and_one_overall_item():
    for inst in CATALOG.all():
        dims = inst.dimension_items()
        assert "overall" in dims, inst.id
        prefix = inst.items[0].code.split("_")[0]
        assert dims["overall"] == [f"{prefix}_overall"], inst.id
        for f in inst.items:
            scale = inst.scale_of(f)
            assert scale is not None and scale.kind == "ordinal", f.code
            assert scale.points == 5 and scale.positive_from == 4, f.code
            assert scale.codes == (1, 2, 3, 4, 5), f.code


@pytest.mark.parametrize(
    "instrument, low, high", [("student_experience", 25, 35), ("teaching_evaluation", 11, 13)]
)
def test_item_counts(instrument, low, high):
    for e in CATALOG.versions[instrument]:
        n = len(CATALOG.get(instrument, e.version).items)
        assert low <= n <= high, (instrument, e.version, n)


def test_required_outcomes_and_context_fields():
    gr, em = CATALOG.get("graduate"), CATALOG.get("employer")
    for code in ("gr_emp_status", "gr_months_to_job", "gr_job_in_field", "gr_recommend"):
        assert gr.field(code).role is Role.OUTCOME
    assert em.field("em_hire_again").role is Role.OUTCOME
    te = CATALOG.get("teaching_evaluation")
    assert {f.context for f in te.context_fields} >= {"programme", "teacher", "discipline"}
    for inst in CATALOG.all():
        assert inst.comments, f"{inst.id} has no free-text comment field"
        assert any(f.reverse for f in inst.items) or inst.id in ("graduate", "employer")


def test_versions_share_codes_only_with_identical_wording():
    se = CATALOG.versions["student_experience"]
    assert len(se) >= 2
    a, b = (CATALOG.get("student_experience", e.version) for e in se[:2])
    common = {f.code for f in a.items} & {f.code for f in b.items}
    assert len(common) >= 20
    assert CATALOG.comparability_problems() == []
    for code in common:
        assert CATALOG.comparable("student_experience", code, a.version, b.version)
    only_old = {f.code for f in a.items} - common
    only_new = {f.code for f in b.items} - common
    assert only_old and only_new, "the 2025 version should reword one item (new code)"
    for code in only_old:
        assert not CATALOG.comparable("student_experience", code, a.version, b.version)


def _copy_catalog(tmp_path):
    dest = tmp_path / "instruments"
    shutil.copytree(INSTRUMENTS_DIR, dest, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return dest


def _edit_cell(path, sheet, code, column, value):
    wb = openpyxl.load_workbook(path)
    ws = wb[sheet]
    header = [c.value for c in ws[1]]
    for row in ws.iter_rows(min_row=2):
        if row[header.index("name")].value == code:
            row[header.index(column)].value = value
            wb.save(path)
            return
    raise AssertionError(f"{code} not found")


def test_reworded_item_with_same_code_breaks_comparability(tmp_path):
    dest = _copy_catalog(tmp_path)
    entries = CATALOG.versions["student_experience"]
    newest = dest / entries[-1].workbook.name
    a = CATALOG.get("student_experience", entries[-2].version)
    b = CATALOG.get("student_experience", entries[-1].version)
    code = next(f.code for f in b.items if a.has(f.code))
    _edit_cell(newest, "survey", code, "label::English (en)", "A different question entirely")
    cat = read_catalog(dest)
    assert not cat.comparable("student_experience", code, a.version, b.version)
    problems = cat.comparability_problems()
    assert any(code in p for p in problems), problems


def test_a_label_missing_in_one_language_falls_back_with_a_warning(tmp_path):
    dest = _copy_catalog(tmp_path)
    path = dest / CATALOG.versions["staff"][0].workbook.name
    code = CATALOG.get("staff").items[0].code
    _edit_cell(path, "survey", code, "label::Russian (ru)", None)
    inst, warnings = read_workbook_with_warnings(path)
    f = inst.field(code)
    assert "ru" not in f.labels and f.label("ru") == f.labels["ky"]  # the default language
    assert any(code in w and "Russian" in w and path.name in w and "row" in w for w in warnings), (
        warnings
    )
    assert any(code in w for w in read_catalog(dest).warnings)


def test_a_field_without_any_label_is_a_clear_error(tmp_path):
    dest = _copy_catalog(tmp_path)
    path = dest / CATALOG.versions["staff"][0].workbook.name
    code = CATALOG.get("staff").items[0].code
    for col in ("label::Kyrgyz (ky)", "label::Russian (ru)", "label::English (en)"):
        _edit_cell(path, "survey", code, col, None)
    with pytest.raises(DeclarationError) as info:
        read_workbook(path)
    err = info.value
    assert err.column == "label" and err.row and err.row > 1
    assert code in str(err) and path.name in str(err)


def test_all_scales_have_three_language_choice_labels():
    for inst in CATALOG.all():
        for scale in inst.scales.values():
            for a, b in combinations(scale.choices, 2):
                assert a.labels["en"] != b.labels["en"], (inst.id, scale.list_name)
