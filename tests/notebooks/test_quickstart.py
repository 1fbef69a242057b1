"""The quickstart notebook runs headless, as committed (fast settings: a tiny model, a few steps)."""

import os

import pytest

NOTEBOOKS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "notebooks")


@pytest.mark.long(1.2)
@pytest.mark.timeout(900)
def test_quickstart_runs_headless(tmp_path, monkeypatch):
    import nbclient
    import nbformat

    monkeypatch.setenv("TFDET_QUICKSTART", "fast")
    monkeypatch.setenv("TFDET_QUICKSTART_DIR", str(tmp_path))
    notebook = nbformat.read(os.path.join(NOTEBOOKS, "quickstart.ipynb"), as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # committed clean
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert "mAP@0.5" in text and "detections per image:" in text and "| valid: True" in text
    assert len(images) == 3  # the drawn predictions
    assert os.path.exists(tmp_path / "serving" / "1" / "saved_model.pb")
