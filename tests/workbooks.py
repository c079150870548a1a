"""Write questionnaire workbooks (XLSForm) and declaration files for test workspaces, as an
office would in Excel: plain rows on the sheets docs/own-questionnaire.md describes."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import yaml


def write_workbook(
    path: Path,
    *,
    form_id: str,
    version: str,
    survey: list[dict],
    choices: list[dict],
    scales: list[dict],
    dimensions: list[dict],
    measures: list[dict] = (),
    settings: dict | None = None,
    label_columns: tuple[str, ...] = ("label::English (en)",),
) -> Path:
    """One workbook; ``label`` keys in the row dicts go to the first label column."""

    def sheet(wb, name, rows, columns):
        ws = wb.create_sheet(name)
        ws.append(columns)
        for r in rows:
            ws.append(
                [r.get(c, r.get("label") if c == label_columns[0] else None) for c in columns]
            )

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    sheet(
        wb,
        "survey",
        survey,
        [
            "type",
            "name",
            *label_columns,
            "required",
            "sapat_role",
            "dimension",
            "reverse",
            "context",
            "aliases",
            "sapat_optional",
            "constraint",
        ],
    )
    sheet(wb, "choices", choices, ["list_name", "name", *label_columns, "aliases"])
    sheet(
        wb,
        "scales",
        scales,
        [
            "list_name",
            "kind",
            "points",
            "positive_from",
            "negative_to",
            "not_applicable",
            "dont_know",
        ],
    )
    sheet(wb, "dimensions", dimensions, ["code", *label_columns, "kind"])
    if measures:
        sheet(
            wb,
            "measures",
            list(measures),
            ["code", "field", "statistic", "success", "base", *label_columns],
        )
    s = {
        "form_title": form_id,
        "form_id": form_id,
        "version": version,
        "default_language": "English (en)",
        **(settings or {}),
    }
    ws = wb.create_sheet("settings")
    ws.append(list(s))
    ws.append(list(s.values()))
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def rating_choices(
    list_name: str,
    low: int,
    high: int,
    labels: dict[int, str] | None = None,
    missing: dict[str, str] | None = None,
) -> list[dict]:
    """Choice rows of a rating scale low..high (labels default to the number), then the
    declared non-answers {name: label}."""
    labels = labels or {}
    rows = [
        {"list_name": list_name, "name": str(c), "label": labels.get(c, str(c))}
        for c in range(low, high + 1)
    ]
    rows += [
        {"list_name": list_name, "name": n, "label": lab} for n, lab in (missing or {}).items()
    ]
    return rows


def write_versions(instruments_dir: Path, entries: dict[str, list[dict]]) -> None:
    """versions.yaml: {form_id: [{version, workbook, waves}]}."""
    data = {k: {"versions": v, "not_comparable": []} for k, v in entries.items()}
    (instruments_dir / "versions.yaml").write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path
