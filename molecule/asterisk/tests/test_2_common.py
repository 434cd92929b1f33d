"""The shared checks that fit an Asterisk host (molecule/shared/common_checks.py), on mol-asterisk-target
(private_lan), before test_3_pbx.py reboots and rolls back both PBXs. The shared ones this scenario does not
collect wait for the responder or compare softswitch.conf; test_3_pbx.py has Asterisk's equivalents.
"""

from common_checks import test_connection_survives_converge, test_firewall_survives_unit_restart  # noqa: F401
