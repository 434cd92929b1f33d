"""The part of the sipguard firewall layer that talks to the kernel.

It reads the current state of the layer's own objects (chains, INPUT jump, ipsets),
applies a rendered ruleset atomically with ``iptables-restore --noflush`` after a
``--test`` pass, removes the layer, and deletes conntrack entries. All commands go
through one ``run(args, data)`` callable (``AnsibleModule.run_command`` in the module)
so every call is in one place. Rendering lives in ``sipguard_firewall_rules``.
"""

from dataclasses import dataclass, field

from ansible.module_utils.sipguard_firewall_rules import (
    allow_members,
    allow_set,
    apply_text,
    block_set,
    chain_names,
    ipset_lines,
    ipset_names,
    normalise_rules,
    own_lines,
    removal_text,
    render_rules,
    restore_text,
)

VERSIONS = (4, 6)


class FirewallError(Exception):
    """A failure with a message for the user; the old rules are still in place."""


@dataclass
class LayerState:
    """What of the layer exists right now."""

    rules: dict = field(default_factory=dict)  # version -> our chain lines from iptables-save
    jumps: dict = field(default_factory=dict)  # version -> positions of INPUT jumps to us
    sets: dict = field(default_factory=dict)  # ipset name -> `ipset save` text

    def exists(self):
        return any(self.rules.values()) or any(self.jumps.values()) or bool(self.sets)

    def allow_members(self, name):
        return {line.split()[2] for line in self.sets.get(name, "").splitlines() if line.startswith("add ")}

    def set_timeout(self, name):
        for line in self.sets.get(name, "").splitlines():
            words = line.split()
            if words[:1] == ["create"] and "timeout" in words:
                return int(words[words.index("timeout") + 1])
        return None


class Netfilter:
    """iptables/ip6tables/ipset/conntrack calls, each failure a FirewallError."""

    def __init__(self, run, bins):
        self._run_cmd = run
        self.bins = bins  # tool name -> absolute path

    def run(self, tool, args, data=None, ok=(0,)):
        rc, out, err = self._run_cmd([self.bins[tool], *args], data)
        if rc not in ok:
            detail = " / ".join((err or out or "").strip().splitlines()[:4])
            if "open socket to ipset" in detail:
                # iptables reaches ipset through a raw socket: containers need CAP_NET_RAW too.
                detail += " (the set match needs CAP_NET_RAW; in a container add NET_RAW)"
            raise FirewallError(f"{tool} {' '.join(args)} failed (exit {rc}): {detail}")
        return rc, out, err

    def _tool(self, version, kind):
        return ("iptables" if version == 4 else "ip6tables") + kind

    def save(self, version):
        return self.run(self._tool(version, "-save"), ["-t", "filter"])[1]

    def restore(self, version, text, test=False):
        args = ["--noflush"] + (["--test"] if test else [])
        self.run(self._tool(version, "-restore"), args, data=text)

    def set_names(self):
        return set(self.run("ipset", ["list", "-n"])[1].split())

    def ipset_restore(self, lines):
        if lines:
            self.run("ipset", ["-exist", "restore"], data="".join(line + "\n" for line in lines))

    def ipset_destroy(self, name):
        self.run("ipset", ["destroy", name])

    def conntrack_delete(self, address):
        """Delete the conntrack entries from this source; returns how many went."""
        family = ["-f", "ipv6"] if ":" in address else []
        # conntrack exits 1 when nothing matched; that is not an error here.
        _, out, err = self.run("conntrack", ["-D", "-s", address, *family], ok=(0, 1))
        for line in (out + err).splitlines():
            if "flow entries have been deleted" in line:
                return _first_int(line)
        return 0

    def read_state(self, name, required=VERSIONS):
        """Our objects as they are now. A version not in ``required`` may be unreadable
        (a host without IPv6 support): it then counts as having none of our objects."""
        state = LayerState()
        for v in VERSIONS:
            try:
                state.rules[v], state.jumps[v] = own_lines(self.save(v), name)
            except FirewallError:
                if v in required:
                    raise
                state.rules[v], state.jumps[v] = [], []
        existing = self.set_names()
        for set_name in ipset_names(name):
            if set_name in existing:
                state.sets[set_name] = self.run("ipset", ["save", set_name])[1]
        return state


def _first_int(text):
    for word in text.split():
        if word.isdigit():
            return int(word)
    return 0


# --- comparing -------------------------------------------------------------------


def differences(spec, state):
    """Human-readable list of what differs between the kernel and the spec (empty = in sync)."""
    diffs = []
    for v in VERSIONS:
        if v in spec.ip_versions:
            if normalise_rules("\n".join(state.rules[v])) != normalise_rules(render_rules(spec, v)):
                diffs.append(f"IPv{v} rules differ")
            if state.jumps[v] != [1]:
                diffs.append(f"IPv{v} INPUT jump is not exactly once at position 1 ({state.jumps[v]})")
            allow = allow_set(spec.name, v)
            if allow not in state.sets or state.allow_members(allow) != set(allow_members(spec, v)):
                diffs.append(f"ipset {allow} differs")
            block = block_set(spec.name, v)
            if state.set_timeout(block) != spec.block_set_timeout:
                diffs.append(f"ipset {block} missing or has another timeout")
        else:
            if state.rules[v] or state.jumps[v]:
                diffs.append(f"IPv{v} rules exist but IPv{v} is not wanted")
            diffs += [f"ipset {s} exists but IPv{v} is not wanted"
                      for s in ipset_names(spec.name, (v,)) if s in state.sets]
    return diffs


IPSET_NOISE = {"hashsize", "maxelem", "bucketsize", "initval"}  # kernel defaults, not our choice


def _sets_summary(lines):
    """ipset restore/save lines -> per set: its create line without noise, then sorted members."""
    creates, members = {}, {}
    for line in lines:
        words = line.split()
        if words[:1] == ["create"]:
            kept = [w for i, w in enumerate(words)
                    if w not in IPSET_NOISE and words[i - 1] not in IPSET_NOISE]
            creates[words[1]] = " ".join(kept)
        elif words[:1] == ["add"]:
            members.setdefault(words[1], []).append(line)
    out = []
    for set_name, create in creates.items():
        out += [f"# ipset {set_name}", create, *sorted(members.get(set_name, []))]
    return out


def describe(state, name, versions=VERSIONS):
    """Normalised text of the layer's current objects, for diff mode."""
    parts = []
    for v in versions:
        if state.rules[v] or state.jumps[v]:
            parts.append(f"# IPv{v} (INPUT jumps at {state.jumps[v]})")
            parts += normalise_rules("\n".join(state.rules[v]))
    save_lines = [line for s in ipset_names(name, versions) if s in state.sets
                  for line in state.sets[s].splitlines()]
    parts += _sets_summary(save_lines)
    return "\n".join(parts) + ("\n" if parts else "")


def describe_desired(spec):
    parts = []
    for v in spec.ip_versions:
        parts.append(f"# IPv{v} (INPUT jumps at [1])")
        parts += normalise_rules(render_rules(spec, v))
    parts += _sets_summary([line for v in spec.ip_versions for line in ipset_lines(spec, v, for_boot=True)])
    return "\n".join(parts) + "\n"


# --- applying --------------------------------------------------------------------


def swap_lines(target, scratch_type, members):
    """ipset restore lines that fill a scratch set and swap it with ``target`` in one step,
    so the set is never seen half-filled."""
    scratch = f"{target}-new"
    return [f"create {scratch} {scratch_type}", f"flush {scratch}",
            *[f"add {scratch} {member}" for member in members],
            f"swap {scratch} {target}", f"destroy {scratch}"]


def _family(v):
    return "inet" if v == 4 else "inet6"


def _swap_in_allow_set(nf, spec, v):
    allow = allow_set(spec.name, v)
    nf.ipset_restore(swap_lines(allow, f"hash:net family {_family(v)}", allow_members(spec, v)))


def _retime_block_set(nf, spec, v, state):
    """Give the block set a new default timeout while keeping its dynamic members
    (each with its remaining time, as `ipset save` lists them)."""
    block = block_set(spec.name, v)
    saved = state.sets[block].splitlines()
    members = [" ".join(line.split()[2:]) for line in saved if line.startswith("add ")]
    scratch_type = f"hash:ip family {_family(v)} timeout {spec.block_set_timeout}"
    nf.ipset_restore(swap_lines(block, scratch_type, members))


def remove_version(nf, name, v, state):
    """Remove the chains and jump of one IP version, then its sets."""
    if state.rules[v] or state.jumps[v]:
        existing = {line[1:].split()[0] for line in state.rules[v] if line.startswith(":")}
        nf.restore(v, removal_text(name, state.jumps[v], existing))
    for set_name in ipset_names(name, (v,)):
        if set_name in state.sets:
            nf.ipset_destroy(set_name)


def remove_all(nf, name, state):
    for v in VERSIONS:
        remove_version(nf, name, v, state)


def validate(nf, spec, state):
    """``iptables-restore --test`` of what would be applied. Needs our sets to exist
    (the set match asks the kernel); returns False when it could not run for that reason."""
    missing = [s for v in spec.ip_versions for s in ipset_names(spec.name, (v,)) if s not in state.sets]
    if missing:
        return False
    _test_all(nf, spec, state)
    return True


def _test_all(nf, spec, state):
    for v in spec.ip_versions:
        try:
            nf.restore(v, apply_text(spec, v, state.jumps[v]), test=True)
        except FirewallError as exc:
            raise FirewallError(f"the kernel refused the IPv{v} rules, nothing was changed: {exc}") from None


def apply(nf, spec, state):
    """Bring the kernel to the spec. On any refusal the previous rules stay or come back."""
    for v in VERSIONS:
        if v not in spec.ip_versions:
            remove_version(nf, spec.name, v, state)

    created = []
    for v in spec.ip_versions:
        for line in ipset_lines(spec, v):
            set_name = line.split()[1]
            if set_name not in state.sets:
                nf.ipset_restore([line])
                created.append(set_name)

    applied = []
    try:
        _test_all(nf, spec, state)
        for v in spec.ip_versions:
            nf.restore(v, apply_text(spec, v, state.jumps[v]))
            applied.append(v)
    except FirewallError:
        for v in applied:  # a later version failed: put the earlier one back as it was
            nf.restore(v, revert_text(spec.name, v, state, [1]))
        for set_name in created:
            nf.ipset_destroy(set_name)
        raise

    for v in spec.ip_versions:
        allow = allow_set(spec.name, v)
        if allow in created or state.allow_members(allow) != set(allow_members(spec, v)):
            _swap_in_allow_set(nf, spec, v)
        block = block_set(spec.name, v)
        if block not in created and state.set_timeout(block) != spec.block_set_timeout:
            _retime_block_set(nf, spec, v, state)


def revert_text(name, v, previous, current_jumps=(1,)):
    """Restore text that takes our chains of version v from what was just applied
    (INPUT jumps at ``current_jumps``) back to ``previous``. Used after a failed apply
    and by the rollback guard."""
    entry = chain_names(name)[0]
    if not previous.rules[v]:
        return removal_text(name, list(current_jumps), set(chain_names(name)))
    body = [f":{chain} - [0:0]" for chain in chain_names(name)]
    body += [line for line in previous.rules[v] if line.startswith("-A ")]
    body += [f"-D INPUT -j {entry}"] * len(current_jumps)
    if previous.jumps[v]:
        body.append(f"-I INPUT 1 -j {entry}")
    return restore_text(body)


def revert_ipset_lines(name, previous, v, recreate_block):
    """ipset restore lines that put the previous sets back (run before the rules):
    the allow set's members through a swap, the block set only if the apply removed it."""
    lines = []
    allow, block = allow_set(name, v), block_set(name, v)
    if block in previous.sets and recreate_block:
        lines += [line for line in previous.sets[block].splitlines() if line.startswith("create ")]
    if allow in previous.sets:
        scratch_type = f"hash:net family {_family(v)}"
        lines.append(f"create {allow} {scratch_type}")  # the apply may have removed it
        lines += swap_lines(allow, scratch_type, sorted(previous.allow_members(allow)))
    return lines


def block_addresses(nf, spec, state_sets_members):
    """Add block_addresses to the block sets; delete conntrack entries of the new ones.

    Returns (added addresses, conntrack entries deleted)."""
    added, deleted = [], 0
    for v in spec.ip_versions:
        block = block_set(spec.name, v)
        for address in spec.block_addresses[v]:
            if address in state_sets_members.get(block, set()):
                continue
            nf.run("ipset", ["add", block, address, "-exist"])
            added.append(address)
            deleted += nf.conntrack_delete(address)
    return added, deleted


def block_members(nf, spec):
    """Current members of our block sets (the module compares block_addresses with them)."""
    members = {}
    for v in spec.ip_versions:
        block = block_set(spec.name, v)
        rc, out, _ = nf.run("ipset", ["list", block], ok=(0, 1))
        in_members = False
        found = set()
        for line in out.splitlines() if rc == 0 else []:
            if line.startswith("Members:"):
                in_members = True
            elif in_members and line.strip():
                found.add(line.split()[0])
        members[block] = found
    return members
