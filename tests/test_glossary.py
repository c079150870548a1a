"""docs/glossary.md: the same terms, in the same order, in Kyrgyz, Russian and English, with
the headings Sapat prints on screen, and linked from where a reader starts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GLOSSARY = ROOT / "docs" / "glossary.md"
SECTIONS = {"ky": "Кыргызча", "ru": "Русский", "en": "English"}
#: the terms a dean meets in Sapat's outputs, by the column or word Sapat prints
KEYS = [
    "pct_positive",
    "mean",
    "pct_positive_ci_low",
    "response_rate",
    "indicative_only",
    "suppressed",
    "p_adjusted",
    "alpha",
    "effect_size",
    "fpc",
    "weighted",
    "wave",
    "unit",
    "instrument",
    "dimension",
    "reverse",
    "straight_liner",
    "speeder",
    "quarantine",
]
#: screen headings (pipeline/locale) each language's section must use
HEADINGS = [
    "col.pct_positive",
    "col.mean",
    "col.ci",
    "col.response_rate",
    "col.indicative",
    "col.p_adjusted",
    "col.effect_size",
    "col.wave",
    "col.unit_name",
    "col.dimension_name",
    "col.instrument_name",
]
TERM = re.compile(r"^- \*\*(?P<term>[^*]+)\*\* \(`(?P<key>[^`]+)`")


def _sections() -> dict[str, str]:
    text = GLOSSARY.read_text(encoding="utf-8")
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    by_title = {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}
    return {lang: by_title.get(title, "") for lang, title in SECTIONS.items()}


def _terms(section: str) -> list[tuple[str, str]]:
    return [
        (m.group("term"), m.group("key"))
        for m in (TERM.match(line) for line in section.splitlines())
        if m
    ]


def test_the_glossary_has_a_section_per_language():
    sections = _sections()
    assert all(sections.values()), {lang: bool(s) for lang, s in sections.items()}


def test_each_language_explains_the_same_terms_in_the_same_order():
    keys = {lang: [k for _, k in _terms(s)] for lang, s in _sections().items()}
    assert keys["en"] == KEYS
    assert keys["ky"] == keys["ru"] == keys["en"]


def test_every_term_is_explained_in_a_sentence_or_two():
    for lang, section in _sections().items():
        entries = re.split(r"^- ", section, flags=re.MULTILINE)[1:]
        assert len(entries) == len(KEYS), lang
        for entry in entries:
            parts = re.split(r"\s—\s", entry, maxsplit=1)
            explanation = " ".join(parts[1].split()) if len(parts) == 2 else ""
            sentences = re.split(r"(?<=[.!?])\s+(?=[A-ZА-ЯЁӨҮҢ«\"`])", explanation)
            assert explanation and len(sentences) <= 2, (lang, entry[:60], sentences)


def test_the_kyrgyz_section_is_kyrgyz_and_the_russian_one_russian():
    sections = _sections()
    kyrgyz_letters = set("өүңӨҮҢ")
    assert kyrgyz_letters & set(sections["ky"])
    assert not kyrgyz_letters & set(sections["ru"])
    assert not re.search(r"[А-Яа-я]", re.sub(r"«[^»]*»", "", sections["en"]))


@pytest.mark.parametrize("lang", list(SECTIONS))
def test_each_section_uses_the_headings_sapat_prints(lang):
    from pipeline.locale import t

    section = _sections()[lang]
    missing = [t(h, lang) for h in HEADINGS if t(h, lang).casefold() not in section.casefold()]
    assert not missing, f"{SECTIONS[lang]}: name these screen headings: {missing}"


def test_the_glossary_is_linked_and_links_to_pages_that_exist():
    assert "docs/glossary.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(glossary.md)" in (ROOT / "docs" / "indicators.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)", GLOSSARY.read_text(encoding="utf-8")):
        assert (GLOSSARY.parent / target).exists(), target
