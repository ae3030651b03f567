"""Settings shared by every test tier: one fixed Hypothesis profile, so property-based tests (the hostile-node
fuzz of tests/library/test_hostile_nodes.py) run the same examples on every machine, quickly, without
deadline flakiness on a loaded CI runner. ``HYPOTHESIS_PROFILE=explore`` runs more, random examples locally."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,  # the same examples every run: a failure in CI reproduces locally
    database=None,  # nothing written into the checkout
    max_examples=60,
    deadline=None,  # real sockets on a shared 2-core machine: time per example varies, correctness does not
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)
settings.register_profile(
    "explore",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
