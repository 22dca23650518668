"""Checks what ``sam build`` made (``make build`` runs it after the build): the artifact Lambda would run.

- every compiled file in the layer is for CPython 3.13 on arm64 (a wheel built for this machine would import here
  and fail on Lambda), and every wheel's tags say the same;
- no development dependency is in the layer, nor boto3/botocore (the runtime brings them);
- every distribution the layer ships has what it requires in the layer (or in the runtime: boto3, botocore);
- the layer's ``voucherify_ledger`` is the source tree's, without caches;
- each function's handler module is where the built template says, and defines the handler.

``python -m ledger_dev.build_check [.aws-sam/build]``: prints one line per problem and exits 1, or a summary and 0.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ledger_dev.harness.template import PROJECT_ROOT, load_template

RUNTIME_BRINGS = frozenset({"boto3", "botocore", "s3transfer"})  # the Lambda Python runtime has them
# A compiled extension's name: ``name.cpython-313-aarch64-linux-gnu.so`` or the stable ABI ``name.abi3.so``.
EXTENSION = re.compile(r"\.(?:cpython-(?P<version>\d+)-(?P<machine>[a-z0-9_]+)-linux-gnu|abi3)\.so$")
# A wheel's tag, from its WHEEL file: pure (``py3-none-any``) or CPython 3.13 (or abi3) on manylinux aarch64.
PURE_TAG = re.compile(r"^py3?\d*-none-any$")
ARM64_TAG = re.compile(r"^cp3\d+-(?:cp313|abi3)-(?:manylinux|musllinux)[0-9_]*_aarch64$")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dev_dependencies(pyproject: Path = PROJECT_ROOT / "pyproject.toml") -> frozenset[str]:
    """The distributions of the project's ``dev`` extra (names only), which must never ship."""
    with open(pyproject, "rb") as handle:
        extra = tomllib.load(handle)["project"]["optional-dependencies"]["dev"]
    return frozenset(normalized(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0]) for spec in extra)


def required_distributions(metadata: str) -> set[str]:
    """What a distribution's METADATA requires unconditionally (no extra; markers other than extras are taken as
    holding on Lambda's python3.13)."""
    needed = set()
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        spec, _, marker = line.split(":", 1)[1].partition(";")
        if "extra" in marker or 'python_version < "3.' in marker.replace("'", '"'):
            continue
        needed.add(normalized(re.split(r"[\[<>=!~ (]", spec.strip(), maxsplit=1)[0]))
    return needed


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    wheels: int = 0
    extensions: int = 0
    functions: int = 0

    def problem(self, text: str) -> None:
        self.problems.append(text)


def check_layer(python: Path, findings: Findings, source: Path = PROJECT_ROOT / "layers" / "shared") -> None:
    if not python.is_dir():
        findings.problem(f"{python}: the layer has no python/ folder")
        return
    forbidden = dev_dependencies() | {normalized(n) for n in RUNTIME_BRINGS}
    for wheel in sorted(python.glob("*.dist-info/WHEEL")):
        findings.wheels += 1
        distribution = normalized(wheel.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0])
        if distribution in forbidden:
            findings.problem(f"{wheel.parent.name}: a development or runtime-provided package is in the layer")
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
        if not tags or not all(PURE_TAG.match(t) or ARM64_TAG.match(t) for t in tags):
            findings.problem(f"{wheel.parent.name}: wheel tags {tags} are not pure or cp313 / aarch64")
    shipped = {normalized(d.name.removesuffix(".dist-info").rsplit("-", 1)[0]) for d in python.glob("*.dist-info")}
    for metadata in sorted(python.glob("*.dist-info/METADATA")):
        for needed in required_distributions(metadata.read_text(encoding="utf-8")):
            if needed not in shipped and needed not in {normalized(n) for n in RUNTIME_BRINGS}:
                findings.problem(f"{metadata.parent.name}: needs {needed}, which is not in the layer")
    for path in sorted(python.rglob("*.so")):
        findings.extensions += 1
        match = EXTENSION.search(path.name)
        if match is None or (match["version"] and (match["version"], match["machine"]) != ("313", "aarch64")):
            findings.problem(f"{path.relative_to(python)}: not a CPython 3.13 / aarch64 extension")
    for cache in sorted(python.rglob("__pycache__")):
        findings.problem(f"{cache.relative_to(python)}: compiled caches (of the build machine's Python) in the layer")
    built, wanted = python / "voucherify_ledger", source / "voucherify_ledger"
    ours = {p.relative_to(wanted) for p in wanted.rglob("*.py")}
    theirs = {p.relative_to(built) for p in built.rglob("*.py")} if built.is_dir() else set()
    if ours != theirs:
        findings.problem(f"voucherify_ledger in the layer differs from the source: {sorted(map(str, ours ^ theirs))}")
    for relative in sorted(ours & theirs):
        if (built / relative).read_bytes() != (wanted / relative).read_bytes():
            findings.problem(f"voucherify_ledger/{relative}: the layer's copy is stale")


def check_functions(build: Path, template: dict[str, object], findings: Findings) -> None:
    resources = template.get("Resources", {})
    assert isinstance(resources, dict)
    for name, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        findings.functions += 1
        properties = resource["Properties"]
        module, _, handler = properties["Handler"].rpartition(".")
        code = build / properties["CodeUri"] / f"{module.replace('.', '/')}.py"
        if not code.is_file():
            findings.problem(f"{name}: no {code.relative_to(build)} where the built template points")
        elif not re.search(rf"^def {re.escape(handler)}\(", code.read_text(encoding="utf-8"), re.MULTILINE):
            findings.problem(f"{name}: {code.relative_to(build)} defines no {handler}()")


def check(build: Path) -> Findings:
    findings = Findings()
    template_path = build / "template.yaml"
    if not template_path.is_file():
        findings.problem(f"{template_path}: no built template (run `make build`)")
        return findings
    template = load_template(template_path)
    layers = [r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::LayerVersion"]
    if not layers:
        findings.problem("the built template has no layer")
    for layer in layers:
        check_layer(build / layer["Properties"]["ContentUri"] / "python", findings)
    check_functions(build, template, findings)
    return findings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    build = Path(args[0]) if args else PROJECT_ROOT / ".aws-sam" / "build"
    findings = check(build)
    for problem in findings.problems:
        print(f"build check: {problem}", file=sys.stderr)
    if findings.problems:
        return 1
    print(
        f"build check: {findings.functions} functions with their handlers; the layer's {findings.wheels} wheels and "
        f"{findings.extensions} compiled extensions are for python3.13 / arm64, with no development dependency"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
