"""Write the notebooks of this folder from the cell lists in ``cells/``.

    python notebooks/make_notebooks.py

Each ``cells/NN_name.py`` defines CELLS, a list of ("md" | "code", source) pairs; the
notebooks are written without outputs (the test suite executes them).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat

HERE = Path(__file__).parent


def load_cells(path: Path) -> list[tuple[str, str]]:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CELLS


def notebook(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    make = {"md": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    nb = nbformat.v4.new_notebook()
    # numbered cell ids, so regenerating an unchanged notebook changes nothing
    nb.cells = [
        make[kind](source.strip("\n"), id=f"cell-{i:02d}") for i, (kind, source) in enumerate(cells)
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main() -> None:
    for path in sorted((HERE / "cells").glob("[0-9][0-9]_*.py")):
        target = HERE / f"{path.stem}.ipynb"
        nbformat.write(notebook(load_cells(path)), target)
        print(f"wrote {target.name}")


if __name__ == "__main__":
    main()
