"""The notebooks run top to bottom (so they never rot): executed with nbclient on the python3 kernel, in
notebooks/ as a user would open them. A cell that raises (including the notebooks' own asserts) fails."""
from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ["01-quickstart.ipynb", "02-fit-from-vllm-traces.ipynb", "03-sync-vs-async-235b.ipynb"]


def test_the_notebooks_are_all_here():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    # every code cell ran, and each figure cell produced an image
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code)
    images = [o for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    figure_cells = [c for c in code if "plots." in c.source.splitlines()[-1]]
    assert len(images) >= len(figure_cells) > 0
