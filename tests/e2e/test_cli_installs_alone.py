"""`redemption-ledger` stands alone: it imports only the layer package, boto3 and the standard library (never
PyYAML, moto or the dev tools), `pip install .` without extras in a fresh venv gives a working CLI, and `--local`
finds `make run`'s stack by the conventions the local stack follows."""

from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

import redemption_ledger_cli
from ledger_dev.harness.queues import local_queue_name
from ledger_dev.harness.template import PROJECT_ROOT, resources
from ledger_dev.local_stack import WORKER_QUEUE, LocalConfig
from redemption_ledger_cli import local

CLI_DIR = Path(redemption_ledger_cli.__file__).parent
ALLOWED_TOP_LEVEL = {"boto3", "botocore", "voucherify_ledger", "redemption_ledger_cli"}
FORBIDDEN_TOP_LEVEL = ("yaml", "moto", "ledger_dev", "werkzeug", "flask", "pytest")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_every_import_in_the_cli_package_is_the_layer_boto3_or_the_standard_library() -> None:
    found: dict[str, set[str]] = {}
    for path in sorted(CLI_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(path.name)
    outside = {
        name: sorted(files)
        for name, files in found.items()
        if name not in ALLOWED_TOP_LEVEL and name not in sys.stdlib_module_names and name != "__future__"
    }
    assert not outside, f"the CLI imports beyond the layer, boto3 and the standard library: {outside}"
    assert {"boto3", "voucherify_ledger"} <= set(found)  # the scan sees the lazy imports too


# Every command once, each as far as it gets without AWS: the modules each path imports are all loaded.
_RUN_EVERY_COMMAND = """
import json, sys
from redemption_ledger_cli.cli import main
codes = []
for argv in json.loads(sys.argv[1]):
    try:
        codes.append(main(argv))
    except SystemExit as stop:  # --help
        codes.append(stop.code)
roots = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"codes": codes, "modules": roots}))
"""


def test_running_every_command_loads_neither_pyyaml_nor_moto_nor_the_dev_tools(tmp_path: Path) -> None:
    closed = _closed_port()
    queue = f"http://127.0.0.1:{closed}/123456789012/q"
    commands = [
        ["--help"],
        ["show", "--help"],
        ["rollback", "--help"],
        ["quarantine", "replay", "--help"],
        ["show", "r_1", "--local"],  # nothing listening: 3
        ["show", "r_1", "--table", "t"],  # the ledger read, unreachable: 3
        ["list", "--order", "ord_1", "--table", "t"],
        ["quarantine", "list", "--table", "t"],
        ["quarantine", "replay", "q_1", "--table", "t"],
        ["quarantine", "replay", "q_1", "--route", "nowhere"],  # 2
        ["rollback", "r_1", "--reason", "x", "--queue-url", queue],  # the request built, the queue unreachable: 3
        ["rollback", "--order", "not-an-order-id", "--queue-url", queue],  # refused by the model: 2
        ["reconcile", "--help"],
        ["reconcile", "--status", "--table", "t"],  # the reconciler's state, unreachable: 3
        ["reconcile", "--since", "2026-09-01T00:00:00Z", "--local"],  # nothing listening: 3
        ["reconcile", "--since", "2026-09-02T00:00:00Z", "--until", "2026-09-01T00:00:00Z", "--local"],  # 2
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
    env.update(
        {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_MAX_ATTEMPTS": "1",
            local.AWS_PORT_ENV: str(closed),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", _RUN_EVERY_COMMAND, json.dumps(commands)],
        env=env,
        cwd=tmp_path,  # not the checkout: nothing found by accident on sys.path
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["codes"] == [0, 0, 0, 0, 3, 3, 3, 3, 3, 2, 3, 2, 0, 3, 3, 2], done.stderr
    loaded = [name for name in FORBIDDEN_TOP_LEVEL if name in answer["modules"]]
    assert not loaded, f"the CLI loaded {loaded}"
    assert {"boto3", "voucherify_ledger", "pydantic"} <= set(answer["modules"])


def test_local_finds_the_queue_and_the_table_the_local_stack_creates() -> None:
    props = resources("AWS::SQS::Queue")[WORKER_QUEUE].get("Properties", {})
    assert local_queue_name(WORKER_QUEUE, props, {"AWS::StackName": local.STACK_NAME}) == local.ROLLBACK_QUEUE_NAME
    config = LocalConfig.from_env({})
    assert (config.aws_endpoint, config.region, config.table_name) == (
        local.LocalAws.from_env({}).endpoint,
        local.REGION,
        local.TABLE_NAME,
    )
    moved = local.LocalAws.from_env({local.AWS_PORT_ENV: "5123", local.AWS_HOST_ENV: "0.0.0.0"})
    assert moved.endpoint == "http://127.0.0.1:5123" == LocalConfig.from_env({"LOCAL_AWS_PORT": "5123"}).aws_endpoint


# --- a fresh venv, no extras ---------------------------------------------------------------------------------
_NOT_COPIED = shutil.ignore_patterns(".git", ".venv*", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis")


def test_pip_install_without_extras_in_a_fresh_venv_gives_a_working_cli(tmp_path: Path) -> None:
    """What an operator does with no checkout: `pip install <the project>` (no `[dev]`), then `redemption-ledger`.
    About 10-20 s here (pip resolves powertools, pydantic and boto3 from its index and cache)."""
    source = tmp_path / "source"
    shutil.copytree(PROJECT_ROOT, source, ignore=_NOT_COPIED)  # a clean tree: no build/ left from an earlier build
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    python = target / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    started = time.monotonic()
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        check=True,
        timeout=600,
    )
    installed = time.monotonic() - started
    helped = subprocess.run(
        [target / "bin" / "redemption-ledger", "--help"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    shown = subprocess.run(
        [target / "bin" / "redemption-ledger", "show", "r_1", "--stack", "s", "--region", "eu-west-1"],
        env={
            **env,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_MAX_ATTEMPTS": "1",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    absent = subprocess.run(
        [
            python,
            "-c",
            "import importlib.util as u; print([m for m in ('yaml', 'moto', 'ledger_dev') if u.find_spec(m)])",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    print(f"fresh venv: pip install without extras took {installed:.1f} s")
    assert helped.returncode == 0, helped.stderr
    assert "show" in helped.stdout and "quarantine" in helped.stdout
    # --stack reads the stack's outputs through CloudFormation: here its endpoint is unreachable, said as such
    assert shown.returncode == 3 and "AWS could not be reached" in shown.stderr, shown.stderr
    assert absent.stdout.strip() == "[]"  # nothing of the dev tools or their dependencies came along
