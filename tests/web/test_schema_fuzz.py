"""A property-based run of the OpenAPI document against the real server (schemathesis): whatever
the document allows gets an answer the document describes, never a 500.

Bounded: at most 25 valid and 25 invalid examples per operation, no shrinking, so the run takes some seconds. Each
operation's cases come from schemathesis's strategy and run under plain hypothesis (its pytest
plugin's lazy loader does not work with pytest 9).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

#: Examples per operation; raise it for a deeper run by hand (``PYRESQUE_FUZZ_EXAMPLES=500``).
EXAMPLES = int(os.environ.get("PYRESQUE_FUZZ_EXAMPLES", "25"))

#: Operations in the document: a route added without this run seeing it fails the count below.
OPERATIONS = 22


def operations(web):
    document = schemathesis.openapi.from_url(f"{web.url}/api/v1/openapi.json")
    return [result.ok() for result in document.get_all_operations()]


def test_the_run_covers_every_operation(web):
    assert len(operations(web)) == OPERATIONS


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("index", range(OPERATIONS))
def test_each_operation_answers_as_documented(web, redis_url, index, mode):
    """Valid requests and requests that break the document (wrong types, out of range, missing
    fields) alike get a documented answer: a 2xx or a 4xx in the error shape, never a 500."""
    operation = operations(web)[index]
    auth = {"Authorization": f"Bearer {web.token}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    def answers_as_documented(case):
        if case.path.endswith("/wait") and isinstance(case.query, dict):
            case.query["timeout"] = 0.2  # a long-poll on a job the run enqueued would hold the run up
        case.call_and_validate(base_url=web.url, headers=auth, checks=CHECKS)

    answers_as_documented()
