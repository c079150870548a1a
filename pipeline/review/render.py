"""The review pack written for people: DOCX (python-docx: headings, a table-of-contents
field, numbered tables and figures), XLSX (every table on its own sheet, formula-safe) or
HTML (one self-contained file), chosen by the file's extension.

Charts are drawn as PNG by plotly's static export (kaleido) with the system Chromium; on a
computer without it each chart's place says so and its table stands in for it.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
from datetime import date
from pathlib import Path

import pandas as pd

from pipeline.errors import UsageError
from pipeline.locale import t
from pipeline.review.pack import Pack, Section

FORMATS = (".docx", ".xlsx", ".html")


def write(pack: Pack, path: Path) -> Path:
    """Write ``pack`` to ``path`` (its extension chooses the format), atomically."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(
            f"--out {path.name}: cannot tell the format from the extension",
            expected="a .docx, .xlsx or .html file",
        )
    if not path.parent.is_dir():
        raise UsageError(
            "--out: the folder does not exist", file=str(path.parent), expected="an existing folder"
        )
    part = path.with_name(f".{path.name}.part")
    try:
        {".docx": _docx, ".xlsx": _xlsx, ".html": _html}[suffix](pack, part)
        os.replace(part, path)
    except OSError as exc:
        raise UsageError(
            f"--out: cannot write the file ({exc.strerror})",
            file=str(path),
            expected="a file in a folder that may be written (close it if Word or Excel has it open)",
        ) from exc
    finally:
        part.unlink(missing_ok=True)
    return path


# -------------------------------------------------------------------- charts
def draw_charts(pack: Pack) -> int:
    """Draw every figure of ``pack`` as PNG with the system Chromium (one browser for all);
    returns how many were drawn (0 where no Chromium is found)."""
    figures = [f for s in _walk(pack.sections) for f in s.figures]
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not figures or not browser:
        return 0
    os.environ.setdefault("BROWSER_PATH", browser)
    try:
        import asyncio

        import kaleido

        async def draw() -> None:
            async with kaleido.Kaleido(n=1, timeout=60) as k:
                for f in figures:
                    f.png = await k.calc_fig(f.figure, opts={"format": "png", "scale": 1.5})

        asyncio.run(draw())
    except Exception:  # noqa: BLE001 - no chart is no reason to fail the pack
        for f in figures:
            f.png = None
        return 0
    return sum(f.png is not None for f in figures)


def _walk(sections: list[Section]):
    for s in sections:
        yield s
        yield from _walk(s.subsections)


def _mark(section: Section, lang: str) -> str:
    if section.state == "to_complete":
        return f" [{t('review.to_complete_mark', lang)}]"
    if section.state == "draft":
        return f" [{t('review.draft_mark', lang)}]"
    return ""


# ---------------------------------------------------------------------- DOCX
def _docx(pack: Pack, path: Path) -> None:
    import io

    from docx import Document
    from docx.enum.section import WD_ORIENT
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Cm, Pt, RGBColor

    doc = Document()
    sec = doc.sections[0]
    sec.orientation = WD_ORIENT.LANDSCAPE
    sec.page_width, sec.page_height = sec.page_height, sec.page_width
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(sec, side, Cm(1.8))
    style = doc.styles["Normal"]
    style.font.name = "DejaVu Sans"
    style.font.size = Pt(10)
    doc.core_properties.title = pack.title
    doc.core_properties.language = pack.lang
    doc.add_heading(pack.title, level=0)
    doc.add_paragraph(pack.university)
    doc.add_paragraph(t("review.prepared", pack.lang, date=date.today().isoformat()))
    doc.add_heading(t("review.toc", pack.lang), level=1)
    _field(doc.add_paragraph(), 'TOC \\o "1-2" \\h \\z \\u', OxmlElement, qn)
    for note in pack.notes:
        doc.add_paragraph(note, style="Intense Quote")

    def caption(kind: str, text: str) -> None:
        p = doc.add_paragraph(style="Caption")
        p.add_run(f"{t('review.' + kind, pack.lang)} ")
        label = "Table" if kind == "table" else "Figure"
        _field(p, f"SEQ {label} \\* ARABIC", OxmlElement, qn)
        p.add_run(f". {text}")

    def section(s: Section, level: int) -> None:
        doc.add_heading(s.title + _mark(s, pack.lang), level=level)
        for para in s.paragraphs:
            p = doc.add_paragraph(para)
            if s.state != "data":
                for run in p.runs:
                    run.font.color.rgb = RGBColor(0xA0, 0x40, 0x00)
        for f in s.figures:
            caption("figure", f.caption)
            if f.png:
                doc.add_picture(io.BytesIO(f.png), width=Cm(22))
            else:
                doc.add_paragraph(t("review.no_chart", pack.lang))
        for tb in s.tables:
            caption("table", tb.caption)
            frame = tb.frame
            table = doc.add_table(rows=1, cols=len(frame.columns))
            table.style = "Light Grid Accent 1"
            for cell, name in zip(table.rows[0].cells, frame.columns, strict=True):
                cell.text = str(name)
            for row in frame.itertuples(index=False):
                cells = table.add_row().cells
                for cell, value in zip(cells, row, strict=True):
                    cell.text = "" if value is None or value != value else str(value)
            if tb.note:
                doc.add_paragraph(tb.note, style="Quote")
        for sub in s.subsections:
            section(sub, level + 1)

    for s in pack.sections:
        section(s, 1)
    doc.save(str(path))


def _field(paragraph, instruction: str, element, qn) -> None:
    """A Word field (table of contents, a SEQ number) Word fills in when the file opens."""
    run = paragraph.add_run()
    begin = element("w:fldChar")
    begin.set(qn("w:fldCharType"), "begin")
    begin.set(qn("w:dirty"), "true")
    code = element("w:instrText")
    code.set(qn("xml:space"), "preserve")
    code.text = instruction
    separate = element("w:fldChar")
    separate.set(qn("w:fldCharType"), "separate")
    placeholder = element("w:t")
    placeholder.text = "1" if instruction.startswith("SEQ") else " "
    end = element("w:fldChar")
    end.set(qn("w:fldCharType"), "end")
    for part in (begin, code, separate, placeholder, end):
        run._r.append(part)


# ---------------------------------------------------------------------- XLSX
def _xlsx(pack: Pack, path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    from pipeline.outputs import _defuse

    wb = Workbook()
    index = wb.active
    index.title = _sheet(t("review.toc", pack.lang), set())
    index.append([pack.title])
    index["A1"].font = Font(bold=True, size=14)
    index.append([pack.university])
    for note in pack.notes:
        index.append([_defuse(note)])
    index.append([])
    taken = {index.title}
    number = 0
    for s in _walk(pack.sections):
        index.append([_defuse(s.title + _mark(s, pack.lang))])
        index.cell(index.max_row, 1).font = Font(bold=True)
        for para in s.paragraphs:
            index.append(["", _defuse(para)])
        for tb in s.tables:
            number += 1
            name = _sheet(f"{number} {tb.caption}", taken)
            taken.add(name)
            index.append(["", f"{t('review.table', pack.lang)} {number}: {tb.caption}", name])
            sheet = wb.create_sheet(name)
            sheet.append([_defuse(f"{t('review.table', pack.lang)} {number}. {tb.caption}")])
            sheet["A1"].font = Font(bold=True)
            sheet.append([_defuse(str(c)) for c in tb.frame.columns])
            for cell in sheet[2]:
                cell.font = Font(bold=True)
            for row in tb.frame.itertuples(index=False):
                sheet.append([_cell(v, _defuse) for v in row])
            if tb.note:
                sheet.append([])
                sheet.append([_defuse(tb.note)])
            sheet.freeze_panes = "A3"
            for col in sheet.columns:
                width = max(len(str(c.value or "")) for c in list(col)[1:]) if col else 10
                sheet.column_dimensions[col[0].column_letter].width = min(max(width + 2, 8), 60)
                for c in col:
                    c.alignment = Alignment(wrap_text=True, vertical="top")
    index.column_dimensions["A"].width = 60
    index.column_dimensions["B"].width = 90
    wb.save(str(path))


def _cell(value, defuse):
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return defuse(value)
    if hasattr(value, "item"):
        return value.item()
    return value


def _sheet(title: str, taken: set[str]) -> str:
    clean = "".join(" " if ch in "[]:*?/\\" else ch for ch in title).strip()[:31] or "Sheet"
    name, k = clean, 1
    while name in taken:
        k += 1
        name = f"{clean[: 31 - len(str(k)) - 1]}~{k}"
    return name


# ---------------------------------------------------------------------- HTML
_CSS = """
body{font-family:"DejaVu Sans",system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#1b1b1b;line-height:1.45}
h1{font-size:1.7rem}h2{font-size:1.3rem;border-bottom:2px solid #0072B2;padding-bottom:.2rem;margin-top:2.2rem}
h3{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #bbb;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#eef4fa}caption{caption-side:top;text-align:left;font-weight:600;padding:.3rem 0}
.note{color:#444;font-size:.85rem}.mark{color:#a04000;font-weight:700}
.to_complete p,.draft p{color:#a04000}img{max-width:100%}nav li{margin:.15rem 0}
"""


def _html(pack: Pack, path: Path) -> None:
    e = html.escape
    out = [
        "<!doctype html>",
        f'<html lang="{e(pack.lang)}"><head><meta charset="utf-8">',
        f"<title>{e(pack.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(pack.title)}</h1><p>{e(pack.university)}</p>",
        f"<p class=note>{e(t('review.prepared', pack.lang, date=date.today().isoformat()))}</p>",
    ]
    out += [f"<p class=note>{e(n)}</p>" for n in pack.notes]
    out.append(f"<nav><h2>{e(t('review.toc', pack.lang))}</h2><ol>")
    out += [f'<li><a href="#s-{e(s.key)}">{e(s.title)}</a></li>' for s in pack.sections]
    out.append("</ol></nav>")
    counter = {"table": 0, "figure": 0}

    def section(s: Section, level: int) -> None:
        mark = _mark(s, pack.lang)
        out.append(f'<section id="s-{e(s.key)}" class="{e(s.state)}">')
        out.append(
            f"<h{level}>{e(s.title)}"
            + (f' <span class="mark">{e(mark.strip())}</span>' if mark else "")
            + f"</h{level}>"
        )
        out.extend(f"<p>{e(p)}</p>" for p in s.paragraphs)
        for f in s.figures:
            counter["figure"] += 1
            label = f"{t('review.figure', pack.lang)} {counter['figure']}. {f.caption}"
            if f.png:
                data = base64.b64encode(f.png).decode()
                out.append(
                    f'<figure><img alt="{e(f.caption)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{e(label)}</figcaption></figure>"
                )
            else:
                out.append(f"<p class=note>{e(label)}: {e(t('review.no_chart', pack.lang))}</p>")
        for tb in s.tables:
            counter["table"] += 1
            out.append(
                f"<table><caption>{e(t('review.table', pack.lang))} {counter['table']}. "
                f"{e(tb.caption)}</caption><thead><tr>"
                + "".join(f"<th>{e(str(c))}</th>" for c in tb.frame.columns)
                + "</tr></thead><tbody>"
            )
            for row in tb.frame.itertuples(index=False):
                out.append(
                    "<tr>"
                    + "".join(f"<td>{e('' if v is None or v != v else str(v))}</td>" for v in row)
                    + "</tr>"
                )
            out.append("</tbody></table>")
            if tb.note:
                out.append(f"<p class=note>{e(tb.note)}</p>")
        for sub in s.subsections:
            section(sub, min(level + 1, 6))
        out.append("</section>")

    for s in pack.sections:
        section(s, 2)
    out.append("</body></html>")
    path.write_text("\n".join(out), encoding="utf-8")


def frames(pack: Pack) -> dict[str, pd.DataFrame]:
    """Every table of the pack by caption (for tests and checks)."""
    return {tb.caption: tb.frame for tb in pack.tables()}
