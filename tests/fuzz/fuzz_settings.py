"""Hypothesis settings shared by the fuzz harnesses in tests/fuzz.

The normal test suite (and so CI) runs a short, derandomized pass: the same ~200 examples per harness on
every run, a few seconds in all, so a failure there is a regression and never a flaky draw. A long run
explores: ``HYPOTHESIS_PROFILE=fuzz ./run tests tests/fuzz`` (``FUZZ_EXAMPLES`` examples per harness,
20,000 by default, fresh random draws each time, failures kept in .hypothesis/ so the next run replays
them first). A crash found that way becomes a regression test next to the code it broke.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"


def fuzz(short: int = 200) -> settings:
    """Settings for one harness; ``short`` is its example count in the normal suite."""
    if LONG:
        return settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20000")), deadline=None,
                        suppress_health_check=list(HealthCheck))
    # No example database in the short run: it is derandomized, and the suite runs with -p no:cacheprovider.
    return settings(max_examples=short, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
