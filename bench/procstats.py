"""Kernel and process counters read from /proc: UDP drops, resident memory.

Pure parsers take the file text so they can be tested without the kernel; the
read_* helpers wrap them for the live files.
"""

import os
from pathlib import Path


def parse_snmp_udp(text: str) -> dict[str, int]:
    """The Udp: counters of /proc/net/snmp as a dict (InDatagrams, InErrors, RcvbufErrors, ...)."""
    rows = [line.split() for line in text.splitlines() if line.startswith("Udp:")]
    if len(rows) < 2:
        raise ValueError("no Udp: header/value pair in /proc/net/snmp text")
    header, values = rows[0][1:], rows[1][1:]
    return {name: int(value) for name, value in zip(header, values, strict=True)}


def parse_udp_socket_drops(text: str, port: int) -> int:
    """Sum of the `drops` column over all sockets bound to local `port` in /proc/net/udp(6).

    Several sockets share a port under SO_REUSEPORT (one per worker), so the sum is
    what the kernel dropped for the service as a whole.
    """
    total = 0
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 13:
            continue
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port:
            total += int(fields[12])
    return total


def parse_vmrss_kib(status_text: str) -> int:
    """VmRSS in KiB from the text of /proc/PID/status (0 for a zombie without it)."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def parse_pss_kib(smaps_rollup_text: str) -> int:
    """Pss in KiB from /proc/PID/smaps_rollup: shared pages split between the processes sharing them."""
    for line in smaps_rollup_text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def parse_cpu_ticks(stat_text: str) -> int:
    """utime + stime (clock ticks) from the text of /proc/PID/stat."""
    # The command name (field 2) may contain spaces and parentheses; fields after the last ')' are fixed.
    fields = stat_text.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of the whole line


def read_snmp_udp() -> dict[str, int]:
    return parse_snmp_udp(Path("/proc/net/snmp").read_text())


def read_udp_drops(port: int) -> int:
    total = 0
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        path = Path(name)
        if path.exists():
            total += parse_udp_socket_drops(path.read_text(), port)
    return total


def udp_port_bound(port: int) -> bool:
    """True once any socket is bound to local UDP `port` (IPv4 table)."""
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 1 and int(fields[1].rsplit(":", 1)[1], 16) == port:
            return True
    return False


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (workers forked by the server)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # the process exited while we looked
        # The command name in field 2 may contain spaces; the fields after ')' are fixed.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _per_pid(pids: list[int], name: str, parse) -> list[int]:
    values = []
    for pid in pids:
        try:
            values.append(parse(Path(f"/proc/{pid}/{name}").read_text()))
        except OSError:
            values.append(0)  # the process has gone
    return values


def rss_kib(pids: list[int]) -> list[int]:
    """VmRSS of each pid in KiB; shared pages count once per process."""
    return _per_pid(pids, "status", parse_vmrss_kib)


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) used so far by the processes in `pids`."""
    ticks = _per_pid(pids, "stat", parse_cpu_ticks)
    return sum(ticks) / os.sysconf("SC_CLK_TCK")


def pss_kib(pids: list[int]) -> list[int]:
    """Proportional set size of each pid in KiB; their sum is the tree's real footprint."""
    return _per_pid(pids, "smaps_rollup", parse_pss_kib)
