"""The ``sam local invoke --env-vars`` file: the committed ``events/env.json`` is what the generator gives for
``make run``'s default ports, and ``make run`` writes the same file for the ports it actually uses
(``build/local/env.json``), the ports the only difference."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ledger_dev.local_stack import DEFAULT_AWS_PORT, DEFAULT_VOUCHERIFY_PORT
from ledger_dev.local_stack.__main__ import write_sam_env
from ledger_dev.payloads import make_events


def committed_env() -> dict[str, dict[str, str]]:
    return json.loads((make_events.EVENTS_DIR / make_events.ENV_FILE).read_text(encoding="utf-8"))


def test_the_committed_env_json_is_the_generators_for_make_runs_default_ports() -> None:
    defaults = make_events.build_env(
        aws_endpoint=f"http://127.0.0.1:{DEFAULT_AWS_PORT}",
        voucherify_api_url=f"http://127.0.0.1:{DEFAULT_VOUCHERIFY_PORT}",
    )

    assert committed_env() == defaults == make_events.build_env()
    text = (make_events.EVENTS_DIR / make_events.ENV_FILE).read_text(encoding="utf-8")
    assert (
        f"host.docker.internal:{DEFAULT_AWS_PORT}" in text and f"host.docker.internal:{DEFAULT_VOUCHERIFY_PORT}" in text
    )


def test_other_ports_change_the_urls_and_nothing_else() -> None:
    moved = make_events.build_env(aws_endpoint="http://127.0.0.1:5123", voucherify_api_url="http://localhost:8899")

    expected = json.dumps(make_events.build_env())
    expected = expected.replace("host.docker.internal:5000", "host.docker.internal:5123")
    expected = expected.replace("host.docker.internal:8787", "host.docker.internal:8899")
    assert moved == json.loads(expected)
    assert moved["RollbackWorkerFunction"]["ROLLBACK_QUEUE_URL"].startswith("http://host.docker.internal:5123/")


def test_a_real_voucherify_is_named_as_it_is_and_a_wildcard_bind_through_the_docker_host() -> None:
    real = make_events.build_env(aws_endpoint="http://0.0.0.0:5000", voucherify_api_url="https://us1.api.voucherify.io")

    for function in ("RollbackWorkerFunction", "ReconcilerFunction"):
        assert real[function]["VOUCHERIFY_API_URL"] == "https://us1.api.voucherify.io"
    assert {env["AWS_ENDPOINT_URL"] for env in real.values()} == {"http://host.docker.internal:5000"}


def test_make_run_writes_the_file_for_the_ports_its_stack_uses(tmp_path: Path) -> None:
    stack: Any = SimpleNamespace(
        aws_endpoint="http://127.0.0.1:5123", refs={"VoucherifyApiUrl": "http://127.0.0.1:8899"}
    )

    written = write_sam_env(stack, tmp_path / "local" / "env.json")

    assert written == tmp_path / "local" / "env.json"
    assert json.loads(written.read_text(encoding="utf-8")) == make_events.build_env(
        aws_endpoint="http://127.0.0.1:5123", voucherify_api_url="http://127.0.0.1:8899"
    )
    assert make_events.LOCAL_ENV_FILE == make_events.PROJECT_ROOT / "build" / "local" / "env.json"  # git ignores build/
