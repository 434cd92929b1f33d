"""The sipguard firewall layer without a kernel: rendering of every option, the boot unit and the
rollback script, bad input, and how apply() backs out when a command is refused.

The real kernel tests (apply, re-apply, packets) are in tests/integration/test_firewall_netns.py.
"""

import json

import pytest
from ansible_collections.sipguard.hardening.plugins.module_utils.sipguard_firewall_apply import (
    FirewallError,
    LayerState,
    Netfilter,
    apply,
    differences,
    revert_text,
)
from ansible_collections.sipguard.hardening.plugins.module_utils.sipguard_firewall_neighbours import (
    firewalld_backend,
    native_drop_chains,
)
from ansible_collections.sipguard.hardening.plugins.module_utils.sipguard_firewall_persist import (
    boot_files,
    debug_close_script,
    rollback_script,
)
from ansible_collections.sipguard.hardening.plugins.module_utils.sipguard_firewall_rules import (
    FirewallConfigError,
    InputView,
    allow_members,
    apply_text,
    build_spec,
    hashlimit_name,
    ipset_lines,
    normalise_line,
    normalise_rules,
    own_lines,
    removal_text,
    render_rules,
    ua_hex,
    without_debug,
)
from hypothesis import given
from hypothesis import strategies as st

NOTHING = LayerState(rules={4: [], 6: []}, views={4: InputView(), 6: InputView()}, sets={})


def rules(version=4, **options):
    return render_rules(build_spec(options), version).splitlines()


def sip_rules(version=4, **options):
    return [
        line.removeprefix("-A sipguard-SIP ")
        for line in rules(version, **options)
        if line.startswith("-A sipguard-SIP ")
    ]


def test_default_layer_only_removes_and_returns_the_rest_to_the_host():
    lines = rules()
    assert lines[:2] == [":sipguard-INPUT - [0:0]", ":sipguard-SIP - [0:0]"]
    assert "-A sipguard-INPUT -p tcp -m multiport --dports 22 -j RETURN" in lines
    assert "-A sipguard-INPUT -p udp -m multiport --dports 5060 -j sipguard-SIP" in lines
    assert "-A sipguard-INPUT -p tcp -m multiport --dports 5060 -j sipguard-SIP" in lines
    assert sip_rules() == [
        "-m set --match-set sipguard-allow4 src -j RETURN",
        "-m set --match-set sipguard-block4 src -j DROP",
        "-j RETURN",
    ]
    # Whatever the options, the layer never accepts unless accept_sip asks for it.
    busy = rules(scanner_user_agents=["sipcli"], rate_limit=5, log=True, allowed_networks=["198.18.0.0/24"])
    assert not [line for line in busy if "ACCEPT" in line]


def test_accept_sip_opens_only_what_the_profile_opens_in_a_chain_of_its_own():
    world = [line for line in rules(accept_sip=True) if line.startswith("-A sipguard-ACCEPT")]
    assert world == ["-A sipguard-ACCEPT -p udp -m multiport --dports 5060 -j ACCEPT",
                     "-A sipguard-ACCEPT -p tcp -m multiport --dports 5060 -j ACCEPT"]
    lan = [line for line in rules(accept_sip=True, allowed_networks=["198.18.0.0/24"])
           if line.startswith("-A sipguard-ACCEPT")]
    assert lan[0] == ("-A sipguard-ACCEPT -p udp -m multiport --dports 5060 "
                      "-m set --match-set sipguard-allow4 src -j ACCEPT")
    assert ":sipguard-ACCEPT - [0:0]" not in rules()


def test_management_ports_come_before_the_sip_jump_and_can_be_empty():
    lines = rules(management_ports=[2222, 22])
    mgmt = lines.index("-A sipguard-INPUT -p tcp -m multiport --dports 2222,22 -j RETURN")
    first_sip = next(i for i, line in enumerate(lines) if line.endswith("-j sipguard-SIP"))
    assert mgmt < first_sip
    entry = [line for line in rules(management_ports=[]) if line.startswith("-A sipguard-INPUT")]
    assert not [line for line in entry if "RETURN" in line]


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


def test_scanner_rules_match_the_user_agent_header_on_udp_after_the_trusted_sources():
    lines = sip_rules(scanner_user_agents=["friendly-scanner", "sip cli", "Friendly-Scanner"])
    assert lines[0] == "-m set --match-set sipguard-allow4 src -j RETURN"
    assert lines[2] == "-p udp -m conntrack ! --ctstate INVALID"
    ua = [line for line in lines if "--hex-string" in line]
    assert ua == [f'-p udp -m string --hex-string "{ua_hex(name, space)}" --algo bm --icase -j DROP'
                  for name in ("friendly-scanner", "sip cli") for space in (True, False)]
    assert bytes.fromhex(ua_hex("sip cli", True).strip("|")) == b"\nUser-Agent: sip cli"
    assert bytes.fromhex(ua_hex("sip cli", False).strip("|")) == b"\nUser-Agent:sip cli"
    tcp_only = sip_rules(scanner_user_agents=["sipcli"], protocols=["tcp"])
    assert not [line for line in tcp_only if "string" in line]


def test_log_adds_a_rate_limited_log_rule_before_each_drop():
    lines = sip_rules(
        scanner_user_agents=["sipvicious"],
        log=True,
        log_rate="2/second",
        log_prefix="sg: ",
        allowed_networks=["198.18.0.0/24"],
    )
    assert lines[1] == (
        '-m set --match-set sipguard-block4 src -m limit --limit 2/sec -j LOG --log-prefix "sg: block "'
    )
    assert lines[3] == "-p udp -m conntrack ! --ctstate INVALID"  # only so fragments get reassembled
    assert lines[4] == (
        f'-p udp -m string --hex-string "{ua_hex("sipvicious", True)}" --algo bm --icase '
        '-m limit --limit 2/sec -j LOG --log-prefix "sg: ua "'
    )
    assert lines[5].endswith("-j DROP")
    assert lines[-2] == '-m limit --limit 2/sec -j LOG --log-prefix "sg: deny "'
    assert not [line for line in sip_rules(scanner_user_agents=["sipvicious"]) if "LOG" in line]


def test_rate_excess_is_dropped_never_banned_and_ipv6_counts_per_prefix():
    assert not [line for line in rules() if "hashlimit" in line]
    spec = build_spec({"rate_limit": 20, "rate_burst": 40})
    name = hashlimit_name(spec, 4)
    assert sip_rules(rate_limit=20, rate_burst=40)[2:4] == [
        f"-p udp -m hashlimit --hashlimit-above 20/sec --hashlimit-burst 40 --hashlimit-mode srcip "
        f"--hashlimit-name {name} -j DROP",
        f"-p tcp -m conntrack --ctstate NEW -m hashlimit --hashlimit-above 20/sec --hashlimit-burst 40 "
        f"--hashlimit-mode srcip --hashlimit-name {name} -j DROP",
    ]
    assert not [line for line in rules(rate_limit=20) if "SET" in line or "BAN" in line]
    assert "--hashlimit-srcmask 64 -j DROP" in sip_rules(6, rate_limit=20)[2]
    assert "--hashlimit-srcmask 56 -j DROP" in sip_rules(6, rate_limit=20, ipv6_prefix=56)[2]
    assert "srcmask" not in sip_rules(6, rate_limit=20, ipv6_prefix=128)[2]
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
    assert lines[0] == f"-m set --match-set sipguard-allow{version} src -j RETURN"


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
    assert render_rules(spec, 4).splitlines()[-1] == "-A sipguard-SIP -j RETURN"


def test_restricting_to_nothing_is_refused_and_the_lan_can_be_trusted_in_an_open_profile():
    for empty in ({}, {"trunk_addresses": []}, {"allowed_networks": [], "trunk_addresses": []}):
        with pytest.raises(FirewallConfigError, match="both are empty"):
            build_spec({"restrict_to_allowed": True, **empty})
    # Only IPv6 trunks while only IPv4 is built: still nothing to allow.
    with pytest.raises(FirewallConfigError, match="both are empty"):
        build_spec({"restrict_to_allowed": True, "trunk_addresses": ["2001:2::5"], "ip_versions": [4]})
    public = build_spec({"allowed_networks": ["198.18.3.0/24"], "restrict_to_allowed": False})
    assert not public.restricted and allow_members(public, 4) == ("198.18.3.0/24",)


def test_ipset_lines_create_allow_and_timed_block_sets():
    spec = build_spec({"block_set_timeout": 900, "allowed_networks": ["2001:2::/48"]})
    assert ipset_lines(spec, 6) == [
        "create sipguard-allow6 hash:net family inet6",
        "create sipguard-block6 hash:ip family inet6 netmask 64 timeout 900",
    ]
    assert ipset_lines(spec, 4)[1] == "create sipguard-block4 hash:ip family inet timeout 900"
    boot = ipset_lines(spec, 6, for_boot=True)
    assert boot[2:] == ["flush sipguard-allow6", "add sipguard-allow6 2001:2::/48"]


def test_name_prefixes_every_chain_set_and_jump():
    text = render_rules(build_spec({"name": "edge_1", "accept_sip": True}), 6)
    assert "sipguard" not in text
    assert ":edge_1-ACCEPT - [0:0]" in text and "edge_1-block6" in text


def test_apply_text_puts_one_jump_above_every_accept_and_leaves_a_good_one_alone():
    spec = build_spec({})
    in_place = InputView(heads=(2,), first_accept=3, length=4)  # fail2ban inserted above us: fine
    assert "INPUT" not in apply_text(spec, 4, in_place).replace("sipguard-INPUT", "")
    missing = apply_text(spec, 4, InputView()).splitlines()
    assert missing[0] == "*filter" and missing[-1] == "COMMIT"
    assert missing[-2] == "-I INPUT 1 -j sipguard-INPUT"
    below_accept = apply_text(spec, 4, InputView(heads=(3,), first_accept=1)).splitlines()
    assert below_accept[-3:-1] == ["-D INPUT -j sipguard-INPUT", "-I INPUT 1 -j sipguard-INPUT"]
    moved = apply_text(spec, 4, InputView(heads=(3, 5))).splitlines()
    assert moved[-4:-1] == ["-D INPUT -j sipguard-INPUT"] * 2 + ["-I INPUT 1 -j sipguard-INPUT"]


def test_apply_text_appends_the_accept_jump_and_removes_stale_chains():
    opened = apply_text(build_spec({"accept_sip": True}), 4, InputView(heads=(1,))).splitlines()
    assert opened[-2] == "-A INPUT -j sipguard-ACCEPT"
    closed = apply_text(build_spec({}), 4, InputView(heads=(1,), tails=(5,)),
                        {"sipguard-INPUT", "sipguard-SIP", "sipguard-ACCEPT", "sipguard-BAN"}).splitlines()
    assert ":sipguard-ACCEPT - [0:0]" in closed and ":sipguard-BAN - [0:0]" in closed
    assert closed[-4:-1] == ["-D INPUT -j sipguard-ACCEPT", "-X sipguard-ACCEPT", "-X sipguard-BAN"]


def test_removal_text_deletes_jump_then_flushes_and_deletes_only_existing_chains():
    text = removal_text("sipguard", InputView(heads=(1,)), {"sipguard-INPUT", "sipguard-SIP"})
    body = text.splitlines()[1:-1]
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
    # iptables versions print a string match as text, as mixed hex or as all hex.
    hexed = normalise_rules('-A x -m string --hex-string "|0a557365|" --algo bm -j DROP')
    assert "--hex-string '|0a|Use'" in hexed[0]
    assert hexed == normalise_rules('-A x -m string --hex-string "|0a|Use" --algo bm -j DROP')
    assert normalise_rules('-A x -m string --string "Use" --algo bm -j DROP') == normalise_rules(
        '-A x -m string --hex-string "|557365|" --algo bm -j DROP')


def test_own_lines_picks_our_chains_and_jump_positions_from_iptables_save():
    save = "\n".join(
        [
            "*filter",
            ":INPUT DROP [0:0]",
            ":sipguard-SIP - [0:0]",
            ":other - [0:0]",
            "-A INPUT -j f2b-sip",
            "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-A INPUT -j sipguard-INPUT",
            "-A INPUT -j other",
            "-A INPUT -j sipguard-ACCEPT",
            "-A sipguard-SIP -j DROP",
            "-A other -j DROP",
            "COMMIT",
        ]
    )
    ours, view = own_lines(save, "sipguard")
    assert ours == [":sipguard-SIP - [0:0]", "-A sipguard-SIP -j DROP"]
    assert view == InputView(heads=(3,), tails=(5,), first_accept=2, length=5)
    assert not view.head_in_place()  # the ESTABLISHED accept would let a banned source through
    assert InputView(heads=(2,), first_accept=3).head_in_place()


DEBUG = {"debug_log": "open", "debug_log_prefix": "dbg: ", "debug_log_rate": "3/second"}


def test_a_debug_window_logs_every_sip_packet_and_each_drop_inside_the_layers_chains():
    options = {"scanner_user_agents": ["sipvicious"], "allowed_networks": ["198.18.0.0/24"]}
    lines = sip_rules(**options, **DEBUG)
    assert lines[0] == '-m limit --limit 3/sec -j LOG --log-prefix "dbg: sip "'  # before any decision
    assert lines[1] == "-m set --match-set sipguard-allow4 src -j RETURN"
    assert lines[2] == ("-m set --match-set sipguard-block4 src "
                        '-m limit --limit 3/sec -j LOG --log-prefix "dbg: block "')
    assert '-m limit --limit 3/sec -j LOG --log-prefix "dbg: ua "' in lines[5]
    assert lines[-2] == '-m limit --limit 3/sec -j LOG --log-prefix "dbg: deny "'
    everything = rules(**options, **DEBUG)
    log_rules = [line for line in everything if "-j LOG" in line]
    assert len(log_rules) == 5  # sip, block, ua with and without the space, deny
    assert all(line.startswith("-A sipguard-SIP ") for line in log_rules), "only inside the layer's chains"
    assert not [line for line in everything if "INPUT" in line and line.startswith("-A INPUT")]
    # Without the window (keep and close render none, whatever prefix or rate is given) no LOG rule:
    # the rest of the layer is exactly the same rules in the same order.
    for mode in ("keep", "close"):
        plain = rules(**options, **dict(DEBUG, debug_log=mode))
        assert plain == [line for line in everything if "-j LOG" not in line]
    assert render_rules(without_debug(build_spec(dict(options, **DEBUG))), 4) == render_rules(
        build_spec(options), 4)


def test_a_debug_window_replaces_the_profiles_log_rules_and_its_end_brings_them_back():
    options = {"log": True, "log_prefix": "sg: ", "allowed_networks": ["198.18.0.0/24"]}
    during = [line for line in sip_rules(**options, **DEBUG) if "-j LOG" in line]
    assert during == [
        '-m limit --limit 3/sec -j LOG --log-prefix "dbg: sip "',
        '-m set --match-set sipguard-block4 src -m limit --limit 3/sec -j LOG --log-prefix "dbg: block "',
        '-m limit --limit 3/sec -j LOG --log-prefix "dbg: deny "',
    ], "one LOG rule per drop, not two"
    after = [line for line in sip_rules(**options) if "-j LOG" in line]
    assert [line.split("--log-prefix ")[1] for line in after] == ['"sg: block "', '"sg: deny "']


def test_a_debug_window_is_never_persisted_and_its_close_script_loads_the_plain_layer():
    spec = build_spec({"ip_versions": [4, 6], "scanner_user_agents": ["sipcli"], **DEBUG})
    boot = boot_files(spec, BINS)
    assert boot == boot_files(without_debug(spec), BINS)
    assert not [path for path, text in boot.items() if "LOG" in text]
    script = debug_close_script(spec, BINS, "2030-01-01 00:00:00 UTC", systemd=False)
    lines = script.splitlines()
    assert lines[3:6] == ["exec 9>/run/sipguard-firewall-sipguard.lock", "flock 9",
                          "[ -e /run/sipguard-firewall-sipguard.debug ] || exit 0"]
    for v, tool in ((4, "iptables"), (6, "ip6tables")):
        start = f"/usr/sbin/{tool}-restore --noflush <<'SIPGUARD_EOF' || failed=\"$failed IPv{v}\"\n"
        body = script.split(start)[1].split("SIPGUARD_EOF")[0]
        plain = render_rules(without_debug(spec), v).splitlines()
        assert body.strip().splitlines() == ["*filter", *plain, "COMMIT"]
        assert f"/usr/sbin/{tool} -w -S sipguard-INPUT" in script  # a removed layer is left alone
    assert "-j LOG" not in script and "INPUT -j" not in script and "-D " not in script, "only our chains"
    assert 'kill -TERM -- "-$sleeper"' in script
    with_systemd = debug_close_script(spec, BINS, "2030-01-01 00:00:00 UTC", systemd=True)
    assert "systemctl stop sipguard-firewall-debug-sipguard.timer" in with_systemd
    assert "sleeper" not in with_systemd


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
        ({"allowed_networks": ["0.0.0.0/0"]}, "set restrict_to_allowed: false"),
        ({"scanner_user_agents": ["sipcli\n"]}, "printable ASCII"),
        ({"log_prefix": "sg:\n"}, "printable ASCII"),
        ({"name": "sipguard\n"}, "name"),
        ({"ipv6_prefix": 16}, "ipv6_prefix"),
        ({"ipv6_prefix": 129}, "ipv6_prefix"),
        ({"trunk_addresses": ["trunk.example"]}, "trunk_addresses"),
        ({"block_addresses": ["198.18.0.0/24"]}, "not a single IP address"),
        ({"scanner_user_agents": ['say "hi"']}, "without quotes"),
        ({"scanner_user_agents": ["x" * 116]}, "longer than 115"),
        ({"scanner_user_agents": ["caf\u00e9"]}, "printable ASCII"),
        ({"rate_limit": -1}, "rate_limit"),
        ({"rate_burst": 0}, "rate_burst"),
        ({"block_set_timeout": 0}, "block_set_timeout"),
        ({"log_prefix": "x" * 24}, "log_prefix"),
        ({"log_rate": "fast"}, "log_rate"),
        ({"log_rate": "0/second"}, "log_rate"),
        ({"final_action": "ACCEPT"}, "final_action"),
        ({"debug_log": "open", "debug_log_prefix": "x" * 24}, "debug_log_prefix"),
        ({"debug_log": "open", "debug_log_prefix": 'a"b'}, "debug_log_prefix"),
        ({"debug_log": "open", "debug_log_rate": "lots"}, "debug_log_rate"),
    ],
)
def test_bad_options_are_refused_with_the_option_named(options, message):
    with pytest.raises(FirewallConfigError, match=message.replace("(", r"\(")):
        build_spec(options)


BINS = {tool: f"/usr/sbin/{tool}" for tool in (
    "iptables", "ip6tables", "iptables-restore", "ip6tables-restore", "ipset")}


def test_boot_units_create_the_sets_before_host_rulesets_and_the_chains_after():
    files = boot_files(build_spec({"ip_versions": [4], "trunk_addresses": ["198.18.7.7"]}), BINS)
    sets_unit, rules_unit = ("/etc/systemd/system/sipguard-firewall-sets.service",
                             "/etc/systemd/system/sipguard-firewall.service")
    assert set(files) == {"/etc/sipguard/firewall/sipguard.ipset", "/etc/sipguard/firewall/sipguard.rules4",
                          sets_unit, rules_unit}
    conf = "/etc/sipguard/firewall/sipguard"
    sets = files[sets_unit].splitlines()
    before = next(line for line in sets if line.startswith("Before=")).split("=", 1)[1].split()
    assert {"netfilter-persistent.service", "iptables.service", "network-pre.target"} <= set(before)
    assert [line for line in sets if line.startswith("ExecStart=")] == [
        f"ExecStart=/usr/sbin/ipset -exist -file {conf}.ipset restore"]
    unit = files[rules_unit].splitlines()
    after = next(line for line in unit if line.startswith("After=")).split("=", 1)[1].split()
    assert {"sipguard-firewall-sets.service", "netfilter-persistent.service"} <= set(after)
    assert "Requires=sipguard-firewall-sets.service" in unit
    assert {"Type=oneshot", "RemainAfterExit=yes", "Before=network-pre.target shutdown.target"} <= set(unit)
    starts = [line for line in unit if line.startswith("ExecStart=")]
    assert starts[0] == f"ExecStart=/usr/sbin/iptables-restore --noflush {conf}.rules4"
    assert "-C INPUT -j sipguard-INPUT 2>/dev/null || /usr/sbin/iptables -I INPUT 1" in starts[1]
    assert "add sipguard-allow4 198.18.7.7" in files["/etc/sipguard/firewall/sipguard.ipset"]
    assert "-I INPUT" not in files["/etc/sipguard/firewall/sipguard.rules4"]


def test_rollback_to_nothing_removes_chains_jump_and_new_sets():
    script = rollback_script("sipguard", NOTHING, build_spec({"ip_versions": [4]}), BINS)
    assert "-D INPUT -j sipguard-INPUT\n-X sipguard-INPUT" in script
    assert script.count("ipset destroy") == 4
    assert "ip6tables-restore" not in script  # IPv6 was neither there before nor applied
    lock = script.splitlines()[3:6]
    assert lock == ["exec 9>/run/sipguard-firewall-sipguard.lock", "flock 9",
                    "[ -e /var/lib/sipguard/firewall/sipguard/rollback.sh ] || exit 0"]


EARLIER = LayerState(
    rules={4: [":sipguard-SIP - [0:0]", "-A sipguard-SIP -j DROP"],
           6: [":sipguard-SIP - [0:0]", "-A sipguard-SIP -j DROP"]},
    views={4: InputView(heads=(1,)), 6: InputView(heads=(2,), first_accept=1)},
    sets={"sipguard-allow4": "create sipguard-allow4 hash:net family inet\n"
                             "add sipguard-allow4 198.18.3.0/24",
          "sipguard-block4": "create sipguard-block4 hash:ip family inet timeout 300\n"
                             "add sipguard-block4 198.18.9.9 timeout 120",
          "sipguard-block6": "create sipguard-block6 hash:ip family inet6 timeout 300\n"
                             "add sipguard-block6 2001:2::9 timeout 100"},
)


def test_rollback_to_earlier_rules_puts_them_and_the_allow_set_back():
    text = revert_text("sipguard", 4, EARLIER, build_spec({"ip_versions": [4]})).splitlines()
    assert "-A sipguard-SIP -j DROP" in text
    assert "-I INPUT" not in "\n".join(text), "the jump was in place: the apply did not move it"
    script = rollback_script("sipguard", EARLIER, build_spec({"ip_versions": [4]}), BINS)
    assert "add sipguard-allow4-new 198.18.3.0/24\nswap sipguard-allow4-new sipguard-allow4" in script
    assert "destroy sipguard-allow4 " not in script and "ipset destroy sipguard-allow6" in script
    # The apply removed IPv6: its block set comes back with its members, its jump at the top again.
    assert "add sipguard-block6-new 2001:2::9 timeout 100" in script
    assert "-I INPUT 1 -j sipguard-INPUT" in script.split("ip6tables-restore")[1]
    assert "sipguard-block4-new" not in script, "the block set kept its type: left alone"


def test_rollback_restores_a_block_set_the_apply_retimed():
    retimed = build_spec({"ip_versions": [4], "block_set_timeout": 900})
    script = rollback_script("sipguard", EARLIER, retimed, BINS)
    assert "create sipguard-block4-new hash:ip family inet timeout 300" in script
    assert "add sipguard-block4-new 198.18.9.9 timeout 120" in script


def test_differences_accept_a_jump_below_other_tools_but_not_below_an_accept():
    spec = build_spec({"ip_versions": [4]})
    sets = {"sipguard-allow4": "create sipguard-allow4 hash:net family inet",
            "sipguard-block4": "create sipguard-block4 hash:ip family inet timeout 300"}
    rules4 = render_rules(spec, 4).splitlines()
    under_f2b = LayerState(rules={4: rules4, 6: []}, views={4: InputView(heads=(2,), first_accept=4),
                                                             6: InputView()}, sets=sets)
    assert differences(spec, under_f2b) == []
    under_accept = LayerState(rules={4: rules4, 6: []}, views={4: InputView(heads=(2,), first_accept=1),
                                                                6: InputView()}, sets=sets)
    assert differences(spec, under_accept) == [
        "IPv4 INPUT jump missing, repeated or below an ACCEPT rule (jumps at [2], first ACCEPT at 1)"]


def test_neighbour_detection_parses_firewalld_and_nftables():
    assert firewalld_backend("# c\nFirewallBackend=iptables\n") == "iptables"
    assert firewalld_backend("") == "nftables"
    ruleset = {"nftables": [
        {"metainfo": {}},
        {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "hook": "input", "policy": "drop"}},
        {"chain": {"family": "inet", "table": "firewalld", "name": "filter_INPUT", "hook": "input",
                   "policy": "accept"}},
        {"chain": {"family": "inet", "table": "filter", "name": "input", "hook": "input", "policy": "drop"}},
        {"chain": {"family": "inet", "table": "mine", "name": "fwd", "hook": "forward", "policy": "drop"}},
    ]}
    assert native_drop_chains(json.dumps(ruleset)) == ["inet filter/input"]
    assert native_drop_chains("not json") == []


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
    with pytest.raises(FirewallError, match="ip6tables-restore"):
        apply(Netfilter(kernel, {tool: tool for tool in BINS}), build_spec({}), NOTHING)
    v4 = [data for tool, args, data in kernel.calls if tool == "iptables-restore" and "--test" not in args]
    assert len(v4) == 2  # the apply, then the way back
    assert "-X sipguard-INPUT" in v4[1] and "-D INPUT -j sipguard-INPUT" in v4[1]
    destroyed = [args[1] for tool, args, _ in kernel.calls if tool == "ipset" and args[0] == "destroy"]
    assert sorted(destroyed) == ["sipguard-allow4", "sipguard-allow6", "sipguard-block4", "sipguard-block6"]


def test_a_refused_test_run_changes_nothing_but_the_sets_it_had_to_create():
    kernel = Kernel(lambda args, data: "--test" in args)
    with pytest.raises(FirewallError, match="refused the IPv4 rules, nothing was changed"):
        apply(Netfilter(kernel, {tool: tool for tool in BINS}), build_spec({}), NOTHING)
    commits = [args for tool, args, _ in kernel.calls
               if tool.endswith("tables-restore") and "--test" not in args]
    assert not commits
    assert len([args for tool, args, _ in kernel.calls if tool == "ipset" and args[0] == "destroy"]) == 4


def test_module_refuses_bad_input_before_touching_anything(run_module):
    # build_spec runs before the first iptables/ipset call, so this needs no network namespace.
    result = run_module("firewall", {"allowed_networks": ["198.18.0.300/24"], "persist": False})
    assert result["failed"]
    assert "allowed_networks: '198.18.0.300/24' is not an IP address" in result["msg"]
    assert "Traceback" not in result["msg"]


def test_module_refuses_an_unknown_choice(run_module):
    result = run_module("firewall", {"final_action": "LOG"})
    assert result["failed"] and "final_action" in result["msg"]


def test_documentation_matches_the_argument_spec(documentation_check):
    documentation_check("firewall")


def test_string_match_defaults_printed_by_older_iptables_are_no_difference():
    # iptables 1.8.7 (Debian 11's legacy backend, and older) prints the string match's --from/--to defaults.
    old = ("-A sipguard-SIP -p udp -m string --hex-string \"|0a557365722d4167656e743a20736d6170|\" "
           "--algo bm --from 0 --to 65535 --icase -j DROP")
    new = ("-A sipguard-SIP -p udp -m string --hex-string \"|0a557365722d4167656e743a20736d6170|\" "
           "--algo bm --icase -j DROP")
    assert normalise_line(old) == normalise_line(new)
    assert normalise_line(new.replace("--icase", "--to 1500 --icase")) != normalise_line(new)
