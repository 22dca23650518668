"""The template's ``AWS::SQS::Queue`` resources, created in the embedded AWS as CloudFormation would create them.

``create_queues`` creates dead-letter queues first, passes every property on as a queue attribute (a
``RedrivePolicy`` with its ``deadLetterTargetArn`` resolved to the queue's ARN) and names a queue without a
``QueueName`` ``<stack name>-<logical-id>`` (kebab case), which ``redemption-ledger --local`` relies on.
``resolve_intrinsics`` resolves ``Ref``, ``Fn::GetAtt`` and ``Fn::Sub`` from local values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redemption_ledger_cli.local import STACK_NAME


@dataclass(frozen=True)
class LocalQueue:
    logical_id: str
    name: str
    url: str
    arn: str


_QUEUE_ATTRIBUTES_SKIPPED = {"QueueName", "Tags", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds"}


def _kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


def resolve_intrinsics(value: Any, refs: Mapping[str, str]) -> Any:
    """``Ref``, ``Fn::GetAtt`` and ``Fn::Sub`` resolved from ``refs`` (logical ids, ``Id.Attribute``,
    parameters, pseudo parameters), recursively; anything else unresolvable is a clear error."""
    if isinstance(value, list):
        return [resolve_intrinsics(v, refs) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return _lookup(refs, str(arg))
        if key == "Fn::GetAtt":
            return _lookup(refs, ".".join(arg) if isinstance(arg, list) else str(arg))
        if key == "Fn::Sub":
            text, extra = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
            scope = {**refs, **{k: str(resolve_intrinsics(v, refs)) for k, v in extra.items()}}
            return re.sub(r"\$\{([^}!][^}]*)\}", lambda m: _lookup(scope, m.group(1)), text)
        if key.startswith("Fn::") or key == "Condition":
            raise ValueError(f"{key} is not supported by the local stack")
    return {k: resolve_intrinsics(v, refs) for k, v in value.items()}


def _lookup(refs: Mapping[str, str], name: str) -> str:
    try:
        return refs[name]
    except KeyError:
        raise ValueError(f"cannot resolve {name!r} locally (known: {', '.join(sorted(refs))})") from None


def _queue_dependencies(props: Any, queue_ids: set[str]) -> set[str]:
    found: set[str] = set()
    if isinstance(props, dict):
        for key, arg in props.items():
            if key == "Ref" and arg in queue_ids:
                found.add(arg)
            elif key == "Fn::GetAtt":
                target = arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
                if target in queue_ids:
                    found.add(target)
            else:
                found |= _queue_dependencies(arg, queue_ids)
    elif isinstance(props, list):
        for item in props:
            found |= _queue_dependencies(item, queue_ids)
    return found


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def local_queue_name(logical_id: str, props: Mapping[str, Any], refs: Mapping[str, str]) -> str:
    """The queue's ``QueueName`` resolved locally, else ``<STACK_NAME>-<logical-id>`` (``.fifo`` if FIFO)."""
    name = resolve_intrinsics(props.get("QueueName"), refs)
    if name:
        return str(name)
    fifo = str(resolve_intrinsics(props.get("FifoQueue", ""), refs)).lower() == "true"
    return f"{STACK_NAME}-{_kebab(logical_id)}" + (".fifo" if fifo else "")


def create_queues(sqs: Any, queue_resources: Mapping[str, Mapping[str, Any]], refs: dict[str, str]) -> list[LocalQueue]:
    """Creates every ``AWS::SQS::Queue`` of ``queue_resources`` (logical id → resource), dead-letter
    queues first, with their properties as queue attributes (``RedrivePolicy`` with its
    ``deadLetterTargetArn`` resolved to the DLQ's ARN). A ``QueueName`` is resolved locally; without one
    the queue is named ``<STACK_NAME>-<logical-id>``. Adds ``Id``, ``Id.Arn``, ``Id.QueueName`` and
    ``Id.QueueUrl`` to ``refs``."""
    pending = {lid: dict(res.get("Properties") or {}) for lid, res in queue_resources.items()}
    ids = set(pending)
    created: list[LocalQueue] = []
    for _ in range(len(ids) + 1):  # each pass creates at least one queue, or the rest is a cycle
        ready = [lid for lid, props in pending.items() if not (_queue_dependencies(props, ids) & pending.keys())]
        if not pending:
            break
        if not ready:
            raise ValueError(f"queues reference each other in a cycle: {', '.join(sorted(pending))}")
        for lid in sorted(ready):
            props = resolve_intrinsics(pending.pop(lid), refs)
            name = local_queue_name(lid, props, refs)
            attributes = {k: _attribute_text(v) for k, v in props.items() if k not in _QUEUE_ATTRIBUTES_SKIPPED}
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            queue = LocalQueue(lid, name, url, arn)
            refs.update({lid: url, f"{lid}.Arn": arn, f"{lid}.QueueName": name, f"{lid}.QueueUrl": url})
            created.append(queue)
    return created
