"""checkov on the SAM source and on the expanded template (the roles, stage and permissions SAM generates),
every suppression listed and justified. checkov lives in its own venv (.venv-checkov, `make test` installs it)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger_dev.harness.template import PROJECT_ROOT, TEMPLATE_PATH
from support.template import sam_source

# --- checkov ------------------------------------------------------------------------------------------------
CHECKOV = PROJECT_ROOT / ".venv-checkov" / "bin" / "checkov"


# Every suppression, by resource: each is explained in the resource's Metadata in template.yaml.
SUPPRESSED = {
    "WebhookAccessLogs": {"CKV_AWS_158", "CKV_AWS_338"},
    "RedemptionSucceededFunctionLogs": {"CKV_AWS_158", "CKV_AWS_338"},
    "RedemptionRollbackSucceededFunctionLogs": {"CKV_AWS_158", "CKV_AWS_338"},
    "RollbackWorkerFunctionLogs": {"CKV_AWS_158", "CKV_AWS_338"},
    "ReconcilerFunctionLogs": {"CKV_AWS_158", "CKV_AWS_338"},
    "LedgerEventsFunctionLogs": {"CKV_AWS_158", "CKV_AWS_338"},
    "RedemptionSucceededFunction": {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"},
    "RedemptionRollbackSucceededFunction": {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"},
    "RollbackWorkerFunction": {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"},
    # reserved concurrency 1 (one run at a time): CKV_AWS_115 holds without a suppression
    "ReconcilerFunction": {"CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"},
    "LedgerEventsFunction": {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"},
    "LedgerEventsDeadLetterQueue": {"CKV_AWS_27"},
    "RollbackQueue": {"CKV_AWS_27"},
    "RollbackDeadLetterQueue": {"CKV_AWS_27"},
    "LedgerTable": {"CKV_AWS_119"},
}


def test_every_checkov_suppression_is_listed_and_justified() -> None:
    found: dict[str, set[str]] = {}
    for name, resource in sam_source()["Resources"].items():
        for skip in (resource.get("Metadata") or {}).get("checkov", {}).get("skip", []):
            found.setdefault(name, set()).add(skip["id"])
            assert len(skip.get("comment", "").split()) >= 12, f"{name} {skip['id']}: say why"
    assert found == SUPPRESSED


@pytest.fixture(scope="module")
def checkov() -> Iterator[Callable[[Path], dict[str, Any]]]:
    if not CHECKOV.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHECKOV} is missing: `make test` installs it")
        pytest.skip("checkov is not installed: `make test` installs it in .venv-checkov")

    def run(path: Path) -> dict[str, Any]:
        # --skip-download: no call home for guidelines or policies; the scan runs offline.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BC_", "PRISMA_"))}
        env.update(BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false", LOG_LEVEL="ERROR")
        result = subprocess.run(
            [str(CHECKOV), "-f", str(path), "--framework", "cloudformation", "--skip-download", "-o", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        report = json.loads(result.stdout)
        reports = report if isinstance(report, list) else [report]
        return {
            "failed": [
                f"{c['check_id']} {c['resource']}"
                for r in reports
                for c in r.get("results", {}).get("failed_checks", [])
            ],
            "passed": sum(len(r.get("results", {}).get("passed_checks", [])) for r in reports),
            "skipped": sorted(
                f"{c['check_id']} {c['resource']}"
                for r in reports
                for c in r.get("results", {}).get("skipped_checks", [])
            ),
        }

    yield run


def test_checkov_passes_on_the_sam_template(checkov: Callable[[Path], dict[str, Any]]) -> None:
    report = checkov(TEMPLATE_PATH)
    assert report["failed"] == []
    assert report["passed"] > 0
    print(f"checkov template.yaml: {report['passed']} passed, {len(report['skipped'])} suppressed")


def test_checkov_passes_on_the_expanded_template(
    checkov: Callable[[Path], dict[str, Any]],
    cfn: dict[str, Any],
    tmp_path: Path,
) -> None:
    """The roles, stage and permissions SAM generates are scanned too (the IAM checks see them only here)."""
    path = tmp_path / "expanded.json"
    path.write_text(json.dumps(cfn), encoding="utf-8")
    report = checkov(path)
    assert report["failed"] == []
    assert report["passed"] > 20
