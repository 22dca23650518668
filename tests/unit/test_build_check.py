"""``ledger_dev.build_check``, the check ``make build`` runs on what ``sam build`` made: on a built tree laid out as
``sam build`` lays it out, a clean one passes and each way a build can go wrong is named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ledger_dev.build_check import check, dev_dependencies, main
from ledger_dev.harness.template import PROJECT_ROOT

BUILT_TEMPLATE = """\
Resources:
  SharedLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: SharedLayer
  HookFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: HookFunction
      Handler: app.lambda_handler
      Layers: [!Ref SharedLayer]
"""


def wheel(python: Path, distribution: str, tag: str, extension: str | None = None) -> None:
    info = python / f"{distribution}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "WHEEL").write_text(f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n")
    if extension:
        package = python / distribution
        package.mkdir(exist_ok=True)
        (package / extension).write_bytes(b"\x7fELF")


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A clean build: a pure wheel, a cp313 aarch64 one with its extension, the package, one function."""
    (tmp_path / "template.yaml").write_text(BUILT_TEMPLATE)
    python = tmp_path / "SharedLayer" / "python"
    wheel(python, "pydantic_core", "cp313-cp313-manylinux_2_17_aarch64", "_core.cpython-313-aarch64-linux-gnu.so")
    wheel(python, "typing_extensions", "py3-none-any")
    shutil.copytree(
        PROJECT_ROOT / "layers" / "shared" / "voucherify_ledger",
        python / "voucherify_ledger",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (tmp_path / "HookFunction").mkdir()
    (tmp_path / "HookFunction" / "app.py").write_text("def lambda_handler(event, context):\n    return event\n")
    return tmp_path


def test_a_clean_build_passes(build: Path, capsys: pytest.CaptureFixture[str]) -> None:
    findings = check(build)
    assert findings.problems == []
    assert (findings.wheels, findings.extensions, findings.functions) == (2, 1, 1)
    assert main([str(build)]) == 0
    assert "python3.13 / arm64" in capsys.readouterr().out


def test_a_wheel_built_for_this_machine_is_named(build: Path) -> None:
    wheel(
        build / "SharedLayer" / "python",
        "orjson",
        "cp311-cp311-manylinux_2_17_x86_64",
        "orjson.cpython-311-x86_64-linux-gnu.so",
    )
    problems = check(build).problems
    assert any("orjson-1.0.dist-info: wheel tags ['cp311-cp311-manylinux_2_17_x86_64']" in p for p in problems)
    assert any("orjson/orjson.cpython-311-x86_64-linux-gnu.so: not a CPython 3.13 / aarch64" in p for p in problems)


def test_a_cp313_wheel_for_x86_64_is_named(build: Path) -> None:
    wheel(build / "SharedLayer" / "python", "ujson", "cp313-cp313-manylinux_2_17_x86_64")
    assert [p for p in check(build).problems if "ujson" in p] != []


@pytest.mark.parametrize("distribution", ["pytest", "moto", "boto3", "botocore"])
def test_development_and_runtime_packages_must_not_ship(build: Path, distribution: str) -> None:
    wheel(build / "SharedLayer" / "python", distribution, "py3-none-any")
    assert any(p.startswith(f"{distribution}-1.0.dist-info: a development") for p in check(build).problems)


def test_the_dev_extra_is_read_from_pyproject() -> None:
    assert {"moto", "pytest", "mypy", "cfn-lint", "boto3-stubs"} <= dev_dependencies()


def test_caches_and_a_stale_package_are_named(build: Path) -> None:
    package = build / "SharedLayer" / "python" / "voucherify_ledger"
    (package / "__pycache__").mkdir()
    (package / "settings.py").write_text("# an older copy\n")
    (package / "gone.py").write_text("")
    problems = check(build).problems
    assert any("__pycache__: compiled caches" in p for p in problems)
    assert any("voucherify_ledger/settings.py: the layer's copy is stale" in p for p in problems)
    assert any("differs from the source: ['gone.py']" in p for p in problems)


def test_a_handler_missing_where_the_built_template_points_is_named(
    build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (build / "HookFunction" / "app.py").write_text("def handler(event, context):\n    return event\n")
    assert check(build).problems == ["HookFunction: HookFunction/app.py defines no lambda_handler()"]
    (build / "HookFunction" / "app.py").unlink()
    assert check(build).problems == ["HookFunction: no HookFunction/app.py where the built template points"]
    assert main([str(build)]) == 1
    assert "build check: HookFunction" in capsys.readouterr().err


def test_no_build_at_all_is_named(tmp_path: Path) -> None:
    assert check(tmp_path).problems == [f"{tmp_path / 'template.yaml'}: no built template (run `make build`)"]


def test_a_requirement_the_layer_lacks_is_named_and_the_runtimes_or_an_extras_are_not(build: Path) -> None:
    metadata = build / "SharedLayer" / "python" / "pydantic_core-1.0.dist-info" / "METADATA"
    metadata.write_text(
        "Metadata-Version: 2.1\nName: pydantic-core\n"
        "Requires-Dist: typing-extensions>=4.6\n"  # in the layer
        "Requires-Dist: botocore>=1.11\n"  # the runtime's
        "Requires-Dist: pytest ; extra == 'test'\n"  # an extra: not installed, not needed
        "Requires-Dist: wrapt<3,>=1.10\n"  # missing
    )
    assert check(build).problems == ["pydantic_core-1.0.dist-info: needs wrapt, which is not in the layer"]
