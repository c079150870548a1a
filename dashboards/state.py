"""The dashboard's state in the URL: a view is shared by sending its link.

``?instrument=student_experience&wave=2024-2025&wave=2025-2026&level=faculty&unit=F-NHP
&item=se_overall&lang=ky``. Reading a query never trusts it: unknown levels and languages
fall back to the defaults, and what a unit the viewer may not see would show is decided by
the read door, not here.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from dashboards.views import LEVELS, Filters

LANGS = ("ky", "ru", "en")


def parse(search: str | None, default_lang: str = "en") -> tuple[Filters, str]:
    """(filters, language) from a query string such as ``?wave=2025-2026&lang=ru``."""
    query = parse_qs((search or "").lstrip("?"), keep_blank_values=False)

    def one(key: str) -> str | None:
        values = query.get(key)
        return values[0][:100] if values else None

    level = one("level")
    lang = one("lang")
    waves = tuple(sorted({w[:9] for w in query.get("wave", [])}))[:20]
    return (
        Filters(
            instrument=one("instrument"),
            waves=waves,
            level=level if level in LEVELS else "faculty",
            unit=one("unit"),
            item=one("item"),
            dimension=one("dimension"),
        ),
        lang if lang in LANGS else default_lang,
    )


def search(f: Filters, lang: str) -> str:
    """The query string of ``f`` and ``lang`` (empty values left out)."""
    pairs = [
        ("instrument", f.instrument),
        *(("wave", w) for w in f.waves),
        ("level", f.level),
        ("unit", f.unit),
        ("item", f.item),
        ("dimension", f.dimension),
        ("lang", lang),
    ]
    return "?" + urlencode([(k, v) for k, v in pairs if v])
