"""The layer as ``sam build`` makes it for python3.13/arm64, unzipped and zipped, and each function's code."""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ledger_dev.bench.report import TARGETS, Report, Row
from ledger_dev.bench.seeds import LAYER_DIR, WEBHOOK_FUNCTIONS, WORKER_FUNCTION, function_dir


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def zipped_bytes(path: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            archive.write(file, file.relative_to(path).as_posix())
    return buffer.tell()


def build_layer(target: Path) -> None:
    """The layer as ``sam build`` makes it: the layer's own Makefile (``build-SharedLayer``), which fetches its
    requirements as python3.13 / arm64 wheels and copies the package, under ``python/``."""
    subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(LAYER_DIR),
            "build-SharedLayer",
            f"ARTIFACTS_DIR={target}",
            f"PYTHON={sys.executable}",
        ],
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure_size(report: Report) -> None:
    with tempfile.TemporaryDirectory(prefix="ledger-layer-") as tmp:
        try:
            build_layer(Path(tmp))
        except (subprocess.SubprocessError, OSError) as exc:
            report.notes.append(f"The layer could not be built here ({type(exc).__name__}); size not measured.")
            return
        unzipped, zipped = directory_bytes(Path(tmp)), zipped_bytes(Path(tmp))
        biggest = sorted(
            ((directory_bytes(p), p.name) for p in (Path(tmp) / "python").iterdir() if p.is_dir()), reverse=True
        )[:4]
    mb = 1024 * 1024
    report.add(
        Row(
            "size",
            "layer (python3.13, arm64) unzipped",
            unzipped / mb,
            None,
            "MB",
            TARGETS["layer_mb"],
            note="largest: " + ", ".join(f"{name} {size / mb:.1f} MB" for size, name in biggest),
        ),
        Row("size", "layer zipped", zipped / mb, None, "MB"),
    )
    for logical_id in (*WEBHOOK_FUNCTIONS, WORKER_FUNCTION):
        folder = function_dir(logical_id)
        report.add(
            Row(
                "size",
                f"{logical_id} code",
                directory_bytes_without_cache(folder) / 1024,
                None,
                "KB",
                note=f"zipped {zipped_bytes(folder) / 1024:.1f} KB",
            )
        )


def directory_bytes_without_cache(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
