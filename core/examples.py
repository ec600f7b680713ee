"""The bundled examples, grouped by the tutorial's chapters: one table that feeds the
Examples menu and the test that runs every example (as pyqtgraph's examples/utils.py
feeds its menu and its test). The files live in resources/examples/; a test checks
that every file there is listed here exactly once."""
from __future__ import annotations

from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "resources" / "examples"

# (chapter, [file names in resources/examples, in menu order])
CHAPTERS: list[tuple[str, list[str]]] = [
    ("Tensors", ["10_tensor_attributes.py", "11_tensor_creation.py", "12_tensor_operations.py",
                 "13_views_and_inplace.py", "14_numpy_bridge.py"]),
    ("Data: Dataset, DataLoader, transforms", [
        "21_fashion_mnist_dataloader.py", "22_custom_dataset.py", "23_transforms_one_hot.py"]),
    ("GPU", ["08_gpu.py", "31_cuda_tensors.py", "32_data_parallel.py"]),
    ("Autograd and the computation graph", [
        "01_computation_graph.py", "02_mean_of_squares.py", "03_module_with_loss.py",
        "04_custom_function.py", "05_no_grad_and_detach.py", "06_vector_backward.py",
        "07_retain_grad.py"]),
]


def example_paths() -> list[Path]:
    """Every listed example, chapter by chapter."""
    return [EXAMPLES_DIR / name for _, names in CHAPTERS for name in names]


def example_title(path: Path) -> str:
    """An example's menu title: its first comment line, else its file name."""
    first = path.read_text(encoding="utf-8").splitlines()[:1]
    if first and first[0].startswith("#"):
        return first[0].lstrip("# ").strip()
    return path.stem
