"""`make run` writes the ``sam local invoke --env-vars`` file for the ports it actually uses and the banner names it:
a stack on ephemeral ports gets a file whose endpoints are its own (as a container reaches them), equal to the
committed ``events/env.json`` but for the ports."""

from __future__ import annotations

import json
from pathlib import Path

from ledger_dev.local_stack import LocalStack
from ledger_dev.local_stack.__main__ import write_sam_env
from ledger_dev.payloads import make_events


def test_the_env_file_names_the_ports_the_stack_uses_and_the_banner_names_the_file(
    stack: LocalStack, tmp_path: Path
) -> None:
    fake = stack.fake_voucherify
    assert fake is not None

    env_file = write_sam_env(stack, tmp_path / "env.json")

    written = json.loads(env_file.read_text(encoding="utf-8"))
    aws_port, fake_port = stack.config.aws_port, int(fake.url.rsplit(":", 1)[1])
    expected = json.dumps(make_events.build_env())
    expected = expected.replace("host.docker.internal:5000", f"host.docker.internal:{aws_port}")
    expected = expected.replace("host.docker.internal:8787", f"host.docker.internal:{fake_port}")
    assert written == json.loads(expected)
    assert written["RollbackWorkerFunction"]["VOUCHERIFY_API_URL"] == f"http://host.docker.internal:{fake_port}"
    queue = stack.queues["RollbackQueue"]
    assert written["RollbackWorkerFunction"]["ROLLBACK_QUEUE_URL"].rsplit("/", 1)[1] == queue.name
    banner = stack.banner(env_file=env_file)
    assert f"--env-vars {env_file.resolve()}" in banner
    assert "sam local invoke RedemptionSucceededFunction -e events/redemption_succeeded.json" in banner
    assert "--env-vars" not in stack.banner()  # no file written, none named
