"""The modules that run on a target need at most Python 2.7 / 3.6 (a CentOS 7 host's system Python).

vermin reads the files and names every construct a newer Python would need; the optional second test
compiles them with real 2.7 and 3.6 interpreters when this machine has them (pyenv, or the system's).
"""

import ipaddress
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.sipguard.hardening.plugins.module_utils import sipguard_ip

ROOT = Path(__file__).resolve().parents[2]
TARGET_MODULES = ["softswitch", "firewall", "sip_probe", "file_compare"]
MODULE_UTILS = "ansible_collections.sipguard.hardening.plugins.module_utils"


def target_files():
    """The target modules and every project module_utils file they import, transitively."""
    files, todo = [], [ROOT / "plugins" / "modules" / f"{name}.py" for name in TARGET_MODULES]
    while todo:
        path = todo.pop()
        if path in files:
            continue
        files.append(path)
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] == ["from"] and words[1].startswith(f"{MODULE_UTILS}.sipguard_"):
                todo.append(ROOT / "plugins" / "module_utils" / (words[1].rsplit(".", 1)[1] + ".py"))
    return sorted(files)


def test_the_target_files_include_every_module_util():
    names = {path.name for path in target_files()}
    assert names >= {
        "sipguard_firewall_rules.py", "sipguard_firewall_apply.py", "sipguard_firewall_persist.py",
        "sipguard_firewall_neighbours.py", "sipguard_sip.py", "sipguard_ip.py",
    }


def test_target_files_need_at_most_python_2_7_and_3_6():
    vermin = Path(sys.executable).with_name("vermin")
    # "-t=V-": the files must need V or less (a bare -t=V would ask for exactly V).
    completed = subprocess.run(
        [str(vermin), "-t=2.7-", "-t=3.6-", "--no-tips", "--violations", *map(str, target_files())],
        capture_output=True, text=True, check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def _interpreter(version):
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))
    if pyenv:
        return str(pyenv[-1])
    found = shutil.which(f"python{version}")
    return found if found and "/shims/" not in found else None  # a pyenv shim may not run it


@pytest.mark.parametrize("version", ["2.7", "3.6"])
def test_target_files_compile_with_the_old_interpreter(version, tmp_path):
    python = _interpreter(version)
    if python is None:
        pytest.skip(f"no python{version} on this machine")
    script = (
        "import py_compile, sys\n"
        "for path in sys.argv[1:]:\n"
        "    py_compile.compile(path, cfile=sys.argv[0] + 'c', doraise=True)\n"
    )
    (tmp_path / "compile.py").write_text(script)
    completed = subprocess.run(
        [python, str(tmp_path / "compile.py"), *map(str, target_files())],
        capture_output=True, text=True, check=False,
    )
    assert completed.returncode == 0, completed.stderr


ADDRESSES = ["192.0.2.7", " 10.0.0.1 ", "2001:DB8::1", "2001:db8:0:0:1:0:0:1", "::", "::1", "fe80::1:0:0:0",
             "2001:db8:0:1::", "255.255.255.255"]
NETWORKS = ["10.0.0.7/24", "10.0.0.0/8", "0.0.0.0/0", "192.0.2.1/32", "192.0.2.1", "2001:db8::7/64",
            "2001:DB8:1:2:3:4:5:6/33", "::/0", "2001:db8::1/128", "172.16.5.4/12", "10.1.2.3/31"]
BAD = ["", "10.0.0", "10.0.0.256", "2001:db8::1::2", "example.net", "10.0.0.1/33", "2001:db8::/129",
       "10.0.0.1/", "10.0.0.1/x", "1.2.3.4/-1"]


@pytest.fixture
def socket_fallback(monkeypatch):
    """sipguard_ip as it runs on Python 2.7, where there is no ipaddress module."""
    monkeypatch.setattr(sipguard_ip, "USE_IPADDRESS", False)


@pytest.mark.parametrize("text", ADDRESSES)
def test_fallback_address_matches_ipaddress(socket_fallback, text):
    addr = ipaddress.ip_address(text.strip())
    assert sipguard_ip.parse_address(text) == (addr.version, str(addr))


@pytest.mark.parametrize("text", NETWORKS)
def test_fallback_network_matches_ipaddress(socket_fallback, text):
    net = ipaddress.ip_network(text, strict=False)
    assert sipguard_ip.parse_network(text) == (net.version, str(net.network_address), net.prefixlen,
                                               net.max_prefixlen)


@pytest.mark.parametrize("text", BAD)
def test_fallback_refuses_what_ipaddress_refuses(socket_fallback, text):
    with pytest.raises(ValueError):
        ipaddress.ip_network(text, strict=False)
    with pytest.raises(ValueError):
        sipguard_ip.parse_network(text)
