"""The dashboard's small parts, without a store: the URL state, objective status, number
formats, the answer colours, the guard's redirect target."""

from __future__ import annotations

import pytest

from dashboards.guard import _safe_next
from dashboards.state import parse, search
from dashboards.views import Filters, _answer_colour
from pipeline.locale import number
from pipeline.views.objectives import status


def test_the_url_holds_the_view_and_never_trusts_it():
    f = Filters(
        instrument="staff", waves=("2025-2026", "2024-2025"), level="programme", unit="F-NHP"
    )
    q = search(f, "ru")
    back, lang = parse(q)
    assert lang == "ru" and back.instrument == "staff" and back.unit == "F-NHP"
    assert back.waves == ("2024-2025", "2025-2026") and back.wave == "2025-2026"
    odd, lang = parse("?level=campus&lang=xx&wave=" + "9" * 50, default_lang="ky")
    assert odd.level == "faculty" and lang == "ky" and odd.waves == ("9" * 9,)
    assert parse(None)[0] == Filters()


@pytest.mark.parametrize(
    "value, lo, hi, target, higher, want",
    [
        (80, 76, 84, 75, True, "met"),
        (70, 66, 74, 75, True, "not_met"),
        (76, 72, 80, 75, True, "undecided"),
        (None, None, None, 75, True, "hidden"),
        (3.0, 2.5, 3.5, 4.0, False, "met"),
        (4.5, 4.2, 4.8, 4.0, False, "not_met"),
    ],
)
def test_objective_status_uses_the_interval(value, lo, hi, target, higher, want):
    assert status(value, lo, hi, target, ">=" if higher else "<=") == want


def test_numbers_follow_the_readers_language():
    assert number(12345.678, "ru") == "12\u2009345,7"
    assert number(12345.678, "ky", 0) == "12\u2009346"
    assert number(12345.678, "en") == "12,345.7"
    assert number(None, "en") == "" and number(float("nan"), "ru") == ""


def test_answer_colours_diverge_for_any_scale_length():
    for low, high in ((1, 4), (1, 5), (1, 7), (0, 10)):
        colours = [_answer_colour(c, low, high) for c in range(low, high + 1)]
        assert len(set(colours[: len(colours) // 2]) & set(colours[-(len(colours) // 2) :])) == 0
        if (high - low) % 2 == 0:
            assert colours[(high - low) // 2] == "#D9D9D9"  # the neutral middle is grey


def test_log_in_redirects_only_within_the_site():
    assert _safe_next("/compare?unit=F-NHP") == "/compare?unit=F-NHP"
    for bad in ("https://evil.example/", "//evil.example", "/\\evil", "javascript:alert(1)"):
        assert _safe_next(bad) == "/"
