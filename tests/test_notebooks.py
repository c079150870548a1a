"""The notebooks in notebooks/ run top to bottom and hold no logic of their own.

Each notebook is executed with nbclient in a fresh kernel started from this interpreter (the
``python3`` kernelspec of the environment; jupyter_client starts its ``python`` with
``sys.executable``), in a temporary working directory. A probe cell appended to the copy in
memory checks that the kernel really ran in this environment. The files themselves are checked
statically: no code cell defines a function or class (logic belongs in ``pipeline/``, where it
is tested), and they are stored without outputs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
DEFINITION = re.compile(r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]", re.MULTILINE)
CELL_TIMEOUT_S = 300


def _code_cells(path: Path) -> list:
    nb = nbformat.read(path, as_version=4)
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_is_a_notebook_to_run():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb file"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_defines_no_function_or_class(path: Path):
    offenders = [
        f"cell {i}: {m.group(0).strip()!r}"
        for i, cell in enumerate(_code_cells(path))
        for m in DEFINITION.finditer(cell.source)
    ]
    assert not offenders, f"{path.name} defines logic; move it to pipeline/: {offenders}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path):
    dirty = [
        i
        for i, cell in enumerate(_code_cells(path))
        if cell.get("outputs") or cell.get("execution_count") is not None
    ]
    assert not dirty, f"{path.name}: clear the outputs of cells {dirty} before committing"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom_in_this_environment(path: Path, tmp_path: Path):
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)"))
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on the first failure
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    probe = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    assert probe.strip() == sys.prefix, "the kernel ran another Python than the test suite's"
