"""The infrastructure tier: template.yaml as SAM source and as the CloudFormation template the SAM transform makes
of it, its policies run against the calls the functions make (moto), checkov in its own venv."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from samtranslator.translator.transform import transform

from support.template import ManagedPolicyLoader, sam_source, with_s3_artifacts


@pytest.fixture(scope="session")
def cfn() -> Iterator[dict[str, Any]]:
    """The CloudFormation template that the SAM transform makes of template.yaml."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        env.delenv("AWS_PROFILE", raising=False)
        yield transform(with_s3_artifacts(sam_source()), {}, ManagedPolicyLoader())
