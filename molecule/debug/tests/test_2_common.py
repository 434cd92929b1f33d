"""The checks every profile scenario runs after its own: molecule/shared/common_checks.py."""

from common_checks import *  # noqa: F403 (its tests, collected here, after test_1_*)
