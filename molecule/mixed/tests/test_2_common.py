"""The checks every profile scenario runs after its own: restart, reboot, rollback (last)."""

from common_checks import (  # noqa: F401 (collected by pytest)
    test_audit_matches_the_profile,
    test_connection_survives_converge,
    test_firewall_and_responder_survive_reboot,
    test_firewall_survives_unit_restart,
    test_rollback_restores_the_host,
)

