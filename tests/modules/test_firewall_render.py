"""The sipguard firewall layer without a kernel: rendering of every option, the boot unit and the
rollback script, bad input, and how apply() backs out when a command is refused.

The real kernel tests (apply, re-apply, packets) are in tests/integration/test_firewall_netns.py.
"""

from pathlib import Path

import ansible.module_utils
import pytest
from hypothesis import given
from hypothesis import strategies as st

# ansible.cfg ships module_utils/ as ansible.module_utils.<name>; do the same for this import.
_MODULE_UTILS = str(Path(__file__).resolve().parents[2] / "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.sipguard_firewall_apply import (  # noqa: E402
    FirewallError,
    LayerState,
    Netfilter,
    apply,
    revert_text,
)
from ansible.module_utils.sipguard_firewall_persist import boot_files, rollback_script  # noqa: E402
from ansible.module_utils.sipguard_firewall_rules import (  # noqa: E402
    FirewallConfigError,
    allow_members,
    apply_text,
    build_spec,
    hashlimit_name,
    ipset_lines,
    normalise_rules,
    own_lines,
    removal_text,
    render_rules,
)


def rules(version=4, **options):
    return render_rules(build_spec(options), version).splitlines()


def sip_rules(version=4, **options):
    return [
        line.removeprefix("-A sipguard-SIP ")
        for line in rules(version, **options)
        if line.startswith("-A sipguard-SIP ")
    ]


def test_default_layer_is_open_sip_with_block_and_allow_sets():
    lines = rules()
    assert lines[:3] == [":sipguard-INPUT - [0:0]", ":sipguard-SIP - [0:0]", ":sipguard-BAN - [0:0]"]
    assert "-A sipguard-INPUT -p tcp -m multiport --dports 22 -j RETURN" in lines
    assert "-A sipguard-INPUT -p udp -m multiport --dports 5060 -j sipguard-SIP" in lines
    assert "-A sipguard-INPUT -p tcp -m multiport --dports 5060 -j sipguard-SIP" in lines
    assert sip_rules() == [
        "-m set --match-set sipguard-block4 src -j DROP",
        "-m set --match-set sipguard-allow4 src -j ACCEPT",
        "-j ACCEPT",
    ]


def test_management_ports_come_before_the_sip_jump_and_can_be_empty():
    lines = rules(management_ports=[2222, 22])
    mgmt = lines.index("-A sipguard-INPUT -p tcp -m multiport --dports 2222,22 -j RETURN")
    first_sip = next(i for i, line in enumerate(lines) if line.endswith("-j sipguard-SIP"))
    assert mgmt < first_sip
    assert not [line for line in rules(management_ports=[]) if "RETURN" in line]


def test_many_ports_are_split_into_multiport_chunks_of_15():
    ports = list(range(5060, 5080))
    jumps = [line for line in rules(sip_ports=ports, protocols=["udp"]) if line.endswith("-j sipguard-SIP")]
    assert len(jumps) == 2
    assert jumps[0].count(",") == 14
    assert jumps[1].endswith("--dports 5075,5076,5077,5078,5079 -j sipguard-SIP")


@given(st.lists(st.integers(1, 65535), min_size=1, max_size=40))
def test_every_sip_port_is_jumped_exactly_once_per_protocol(ports):
    jumps = [line for line in rules(sip_ports=ports, protocols=["tcp"]) if line.endswith("-j sipguard-SIP")]
    rendered = [int(p) for line in jumps for p in line.split("--dports ")[1].split()[0].split(",")]
    assert rendered == list(dict.fromkeys(ports))


def test_scanner_user_agents_are_dropped_first_and_deduplicated():
    lines = sip_rules(scanner_user_agents=["friendly-scanner", "sip cli", "friendly-scanner"])
    assert lines[:2] == [
        '-m string --string "friendly-scanner" --algo bm --icase -j DROP',
        '-m string --string "sip cli" --algo bm --icase -j DROP',
    ]
    assert lines[2].startswith("-m set --match-set sipguard-block4")


def test_log_adds_a_rate_limited_log_rule_before_each_drop():
    lines = sip_rules(
        scanner_user_agents=["sipvicious"],
        log=True,
        log_rate="2/second",
        log_prefix="sg: ",
        allowed_networks=["198.18.0.0/24"],
    )
    assert lines[0] == (
        '-m string --string "sipvicious" --algo bm --icase -m limit --limit 2/sec '
        '-j LOG --log-prefix "sg: ua "'
    )
    assert lines[1].endswith("-j DROP")
    assert lines[2] == (
        '-m set --match-set sipguard-block4 src -m limit --limit 2/sec -j LOG --log-prefix "sg: block "'
    )
    assert lines[-2] == '-m limit --limit 2/sec -j LOG --log-prefix "sg: deny "'
    assert not [line for line in sip_rules(scanner_user_agents=["sipvicious"]) if "LOG" in line]


def test_rate_limit_sends_udp_and_new_tcp_over_the_limit_to_the_ban_chain():
    assert not [line for line in rules() if "hashlimit" in line]
    spec = build_spec({"rate_limit": 20, "rate_burst": 40})
    name = hashlimit_name(spec, 4)
    assert sip_rules(rate_limit=20, rate_burst=40)[2:4] == [
        f"-p udp -m hashlimit --hashlimit-above 20/sec --hashlimit-burst 40 --hashlimit-mode srcip "
        f"--hashlimit-name {name} -j sipguard-BAN",
        f"-p tcp -m conntrack --ctstate NEW -m hashlimit --hashlimit-above 20/sec --hashlimit-burst 40 "
        f"--hashlimit-mode srcip --hashlimit-name {name} -j sipguard-BAN",
    ]
    ban = [line for line in rules(rate_limit=20) if line.startswith("-A sipguard-BAN")]
    assert ban == ["-A sipguard-BAN -j SET --add-set sipguard-block4 src --exist", "-A sipguard-BAN -j DROP"]
    only_udp = sip_rules(rate_limit=20, protocols=["udp"])
    assert [line for line in only_udp if "hashlimit" in line] == [only_udp[2]]


def test_hashlimit_name_is_short_and_changes_with_the_rate():
    a, b = build_spec({"rate_limit": 20}), build_spec({"rate_limit": 21})
    assert hashlimit_name(a, 4) != hashlimit_name(b, 4)
    assert hashlimit_name(a, 4) != hashlimit_name(a, 6)
    assert len(hashlimit_name(a, 6)) <= 15


@pytest.mark.parametrize(
    ("action", "version", "target"),
    [
        ("DROP", 4, "-j DROP"),
        ("REJECT", 4, "-j REJECT --reject-with icmp-port-unreachable"),
        ("REJECT", 6, "-j REJECT --reject-with icmp6-port-unreachable"),
    ],
)
def test_allowed_networks_close_sip_to_everyone_else(action, version, target):
    lines = sip_rules(version, allowed_networks=["198.18.0.0/24", "2001:2::/64"], final_action=action)
    assert lines[-1] == target
    assert f"-m set --match-set sipguard-allow{version} src -j ACCEPT" in lines


def test_allow_set_holds_canonical_networks_and_trunks_per_version():
    spec = build_spec(
        {
            "allowed_networks": ["198.18.0.9/24", "2001:2:0:0::1/64", "198.18.7.7"],
            "trunk_addresses": ["198.18.7.7", "2001:2::5"],
        }
    )
    assert allow_members(spec, 4) == ("198.18.0.0/24", "198.18.7.7")
    assert allow_members(spec, 6) == ("2001:2::/64", "2001:2::5")


def test_trunks_alone_keep_sip_open_to_the_world():
    spec = build_spec({"trunk_addresses": ["198.18.7.7"]})
    assert not spec.restricted
    assert render_rules(spec, 4).splitlines()[-3] == "-A sipguard-SIP -j ACCEPT"


def test_ipset_lines_create_allow_and_timed_block_sets():
    spec = build_spec({"block_set_timeout": 900, "allowed_networks": ["2001:2::/48"]})
    assert ipset_lines(spec, 6) == [
        "create sipguard-allow6 hash:net family inet6",
        "create sipguard-block6 hash:ip family inet6 timeout 900",
    ]
    boot = ipset_lines(spec, 6, for_boot=True)
    assert boot[2:] == ["flush sipguard-allow6", "add sipguard-allow6 2001:2::/48"]


def test_name_prefixes_every_chain_set_and_jump():
    text = render_rules(build_spec({"name": "edge_1"}), 6)
    assert "sipguard" not in text
    assert ":edge_1-BAN - [0:0]" in text and "edge_1-block6" in text


def test_apply_text_inserts_exactly_one_jump_at_position_1():
    spec = build_spec({})
    assert "INPUT" not in apply_text(spec, 4, [1]).replace("sipguard-INPUT", "")
    missing = apply_text(spec, 4, []).splitlines()
    assert missing[0] == "*filter" and missing[-1] == "COMMIT"
    assert missing[-2] == "-I INPUT 1 -j sipguard-INPUT"
    moved = apply_text(spec, 4, [3, 5]).splitlines()
    assert moved[-4:-1] == ["-D INPUT -j sipguard-INPUT"] * 2 + ["-I INPUT 1 -j sipguard-INPUT"]


def test_removal_text_deletes_jump_then_flushes_and_deletes_only_existing_chains():
    body = removal_text("sipguard", [1], {"sipguard-INPUT", "sipguard-SIP"}).splitlines()[1:-1]
    assert body == [
        "-D INPUT -j sipguard-INPUT",
        ":sipguard-INPUT - [0:0]",
        ":sipguard-SIP - [0:0]",
        "-X sipguard-INPUT",
        "-X sipguard-SIP",
    ]


def test_normalising_makes_renderer_and_iptables_save_spellings_agree():
    rendered = '-A x -m limit --limit 5/minute --limit-burst 5 -j LOG --log-prefix "x"\n:x - [0:0]'
    saved = ":x - [12:34]\n-A x -m limit --limit 5/min -j LOG --log-prefix x"
    assert normalise_rules(rendered) == normalise_rules(saved)
    assert normalise_rules("-A x -j DROP\n-A x -j ACCEPT") != normalise_rules("-A x -j ACCEPT\n-A x -j DROP")
    # Chains may be listed in another order; inside a chain the order is kept.
    assert normalise_rules("-A b -j DROP\n-A a -j DROP") == normalise_rules("-A a -j DROP\n-A b -j DROP")


def test_own_lines_picks_our_chains_and_jump_positions_from_iptables_save():
    save = "\n".join(
        [
            "*filter",
            ":INPUT DROP [0:0]",
            ":sipguard-SIP - [0:0]",
            ":other - [0:0]",
            "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-A INPUT -j sipguard-INPUT",
            "-A INPUT -j other",
            "-A sipguard-SIP -j DROP",
            "-A other -j DROP",
            "COMMIT",
        ]
    )
    ours, jumps = own_lines(save, "sipguard")
    assert ours == [":sipguard-SIP - [0:0]", "-A sipguard-SIP -j DROP"]
    assert jumps == [2]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "this-name-is-too-long"}, "name"),
        ({"name": "1abc"}, "name"),
        ({"sip_ports": []}, "sip_ports must name at least one port"),
        ({"sip_ports": [70000]}, "sip_ports: 70000 is outside"),
        ({"sip_ports": ["five"]}, "sip_ports: 'five'"),
        ({"management_ports": [0]}, "management_ports"),
        ({"protocols": ["sctp"]}, "protocols"),
        ({"ip_versions": [5]}, "ip_versions"),
        ({"allowed_networks": ["198.18.0.0/33"]}, "allowed_networks: '198.18.0.0/33'"),
        ({"allowed_networks": ["0.0.0.0/0"]}, "leave allowed_networks empty"),
        ({"trunk_addresses": ["trunk.example"]}, "trunk_addresses"),
        ({"block_addresses": ["198.18.0.0/24"]}, "not a single IP address"),
        ({"scanner_user_agents": ['say "hi"']}, "without quotes"),
        ({"scanner_user_agents": ["x" * 129]}, "longer than 128"),
        ({"scanner_user_agents": ["caf\u00e9"]}, "printable ASCII"),
        ({"rate_limit": -1}, "rate_limit"),
        ({"rate_burst": 0}, "rate_burst"),
        ({"block_set_timeout": 0}, "block_set_timeout"),
        ({"log_prefix": "x" * 24}, "log_prefix"),
        ({"log_rate": "fast"}, "log_rate"),
        ({"log_rate": "0/second"}, "log_rate"),
        ({"final_action": "ACCEPT"}, "final_action"),
    ],
)
def test_bad_options_are_refused_with_the_option_named(options, message):
    with pytest.raises(FirewallConfigError, match=message.replace("(", r"\(")):
        build_spec(options)


BINS = {tool: f"/usr/sbin/{tool}" for tool in (
    "iptables", "ip6tables", "iptables-restore", "ip6tables-restore", "ipset")}


def test_boot_unit_restores_sets_then_rules_then_the_jump_once():
    files = boot_files(build_spec({"ip_versions": [4], "trunk_addresses": ["198.18.7.7"]}), BINS)
    assert set(files) == {"/etc/sipguard/firewall/sipguard.ipset", "/etc/sipguard/firewall/sipguard.rules4",
                          "/etc/systemd/system/sipguard-firewall.service"}
    unit = files["/etc/systemd/system/sipguard-firewall.service"].splitlines()
    assert {"Type=oneshot", "RemainAfterExit=yes", "Before=network-pre.target shutdown.target"} <= set(unit)
    starts = [line for line in unit if line.startswith("ExecStart=")]
    conf = "/etc/sipguard/firewall/sipguard"
    assert starts[0] == f"ExecStart=/usr/sbin/ipset -exist -file {conf}.ipset restore"
    assert starts[1] == f"ExecStart=/usr/sbin/iptables-restore --noflush {conf}.rules4"
    assert "-C INPUT -j sipguard-INPUT 2>/dev/null || /usr/sbin/iptables -I INPUT 1" in starts[2]
    assert "add sipguard-allow4 198.18.7.7" in files["/etc/sipguard/firewall/sipguard.ipset"]
    assert "-I INPUT" not in files["/etc/sipguard/firewall/sipguard.rules4"]


def test_rollback_to_nothing_removes_chains_jump_and_new_sets():
    nothing = LayerState(rules={4: [], 6: []}, jumps={4: [], 6: []}, sets={})
    script = rollback_script("sipguard", nothing, build_spec({"ip_versions": [4]}), BINS)
    assert "-D INPUT -j sipguard-INPUT\n:sipguard-INPUT - [0:0]" in script
    assert "-X sipguard-BAN" in script
    assert script.count("ipset destroy") == 4
    assert "ip6tables-restore" not in script  # IPv6 was neither there before nor applied


def test_rollback_to_earlier_rules_puts_them_and_the_allow_set_back():
    earlier = LayerState(
        rules={4: [":sipguard-SIP - [0:0]", "-A sipguard-SIP -j DROP"], 6: []},
        jumps={4: [1], 6: []},
        sets={"sipguard-allow4": "create sipguard-allow4 hash:net family inet\n"
                                 "add sipguard-allow4 198.18.3.0/24",
              "sipguard-block4": "create sipguard-block4 hash:ip family inet timeout 300"},
    )
    text = revert_text("sipguard", 4, earlier, [1]).splitlines()
    assert "-A sipguard-SIP -j DROP" in text
    assert text[-3:-1] == ["-D INPUT -j sipguard-INPUT", "-I INPUT 1 -j sipguard-INPUT"]
    script = rollback_script("sipguard", earlier, build_spec({"ip_versions": [4]}), BINS)
    assert "add sipguard-allow4-new 198.18.3.0/24\nswap sipguard-allow4-new sipguard-allow4" in script
    assert "destroy sipguard-allow4 " not in script and "ipset destroy sipguard-block6" in script


class Kernel:
    """Stands in for the commands only to drive apply()'s failure path; the real kernel
    cases are in tests/integration/test_firewall_netns.py."""

    def __init__(self, fail):
        self.calls, self.fail = [], fail

    def __call__(self, args, data=None):
        self.calls.append((args[0].rsplit("/", 1)[-1], args[1:], data))
        if self.fail(args, data):
            return 1, "", "refused"
        return 0, "", ""


def test_when_ipv6_fails_after_ipv4_loaded_ipv4_goes_back_and_new_sets_go():
    def ipv6_commit_fails(args, data):
        return args[0].endswith("ip6tables-restore") and "--test" not in args

    kernel = Kernel(ipv6_commit_fails)
    nothing = LayerState(rules={4: [], 6: []}, jumps={4: [], 6: []}, sets={})
    with pytest.raises(FirewallError, match="ip6tables-restore"):
        apply(Netfilter(kernel, {tool: tool for tool in BINS}), build_spec({}), nothing)
    v4 = [data for tool, args, data in kernel.calls if tool == "iptables-restore" and "--test" not in args]
    assert len(v4) == 2  # the apply, then the way back
    assert "-X sipguard-INPUT" in v4[1] and "-D INPUT -j sipguard-INPUT" in v4[1]
    destroyed = [args[1] for tool, args, _ in kernel.calls if tool == "ipset" and args[0] == "destroy"]
    assert sorted(destroyed) == ["sipguard-allow4", "sipguard-allow6", "sipguard-block4", "sipguard-block6"]


def test_a_refused_test_run_changes_nothing_but_the_sets_it_had_to_create():
    kernel = Kernel(lambda args, data: "--test" in args)
    nothing = LayerState(rules={4: [], 6: []}, jumps={4: [], 6: []}, sets={})
    with pytest.raises(FirewallError, match="refused the IPv4 rules, nothing was changed"):
        apply(Netfilter(kernel, {tool: tool for tool in BINS}), build_spec({}), nothing)
    commits = [args for tool, args, _ in kernel.calls
               if tool.endswith("tables-restore") and "--test" not in args]
    assert not commits
    assert len([args for tool, args, _ in kernel.calls if tool == "ipset" and args[0] == "destroy"]) == 4


def test_module_refuses_bad_input_before_touching_anything(run_module):
    # build_spec runs before the first iptables/ipset call, so this needs no network namespace.
    result = run_module("sipguard_firewall", {"allowed_networks": ["198.18.0.300/24"], "persist": False})
    assert result["failed"]
    assert "allowed_networks: '198.18.0.300/24' is not an IP address" in result["msg"]
    assert "Traceback" not in result["msg"]


def test_module_refuses_an_unknown_choice(run_module):
    result = run_module("sipguard_firewall", {"final_action": "LOG"})
    assert result["failed"] and "final_action" in result["msg"]


def test_documentation_matches_the_argument_spec(documentation_check):
    documentation_check("sipguard_firewall")
