"""The part of the sipguard firewall layer that talks to the kernel.

It reads the current state of the layer's own objects (chains, INPUT jump, ipsets),
applies a rendered ruleset atomically with ``iptables-restore --noflush`` after a
``--test`` pass, removes the layer, and deletes conntrack entries. All commands go
through one ``run(args, data)`` callable (``AnsibleModule.run_command`` in the module)
so every call is in one place. Rendering lives in ``sipguard_firewall_rules``.
Runs on the target's Python (2.7, 3.6+): no f-strings or dataclasses.
"""

from __future__ import absolute_import, division, print_function

from collections import OrderedDict

from ansible_collections.sipguard.hardening.plugins.module_utils.sipguard_firewall_rules import (
    InputView,
    allow_members,
    allow_set,
    allow_set_type,
    apply_text,
    block_set,
    block_set_type,
    chain_names,
    input_edits,
    ipset_lines,
    ipset_names,
    normalise_rules,
    own_lines,
    removal_text,
    render_rules,
    restore_text,
    wanted_chains,
)

__metaclass__ = type

VERSIONS = (4, 6)


class FirewallError(Exception):
    """A failure with a message for the user; the old rules are still in place."""


class LayerState:
    """What of the layer exists right now: `rules` version -> our chain lines from iptables-save,
    `views` version -> InputView (where INPUT jumps to us), `sets` ipset name -> `ipset save` text."""

    def __init__(self, rules=None, views=None, sets=None):
        self.rules = {} if rules is None else rules
        self.views = {} if views is None else views
        self.sets = {} if sets is None else sets

    def _fields(self):
        return (self.rules, self.views, self.sets)

    def __eq__(self, other):
        return isinstance(other, LayerState) and self._fields() == other._fields()

    def __ne__(self, other):  # Python 2 does not derive it from __eq__
        return not self == other

    __hash__ = None  # mutable, like the dataclass it replaces

    def __repr__(self):
        return "LayerState(rules={!r}, views={!r}, sets={!r})".format(*self._fields())

    def exists(self):
        return (any(self.rules.values()) or any(v.heads or v.tails for v in self.views.values())
                or bool(self.sets))

    def has_version(self, v):
        view = self.views.get(v, InputView())
        return bool(self.rules.get(v) or view.heads or view.tails)

    def chains(self, v):
        return {line[1:].split()[0] for line in self.rules.get(v, []) if line.startswith(":")}

    def to_json(self):
        return {"rules": self.rules, "sets": self.sets,
                "views": {v: [list(x.heads), list(x.tails), x.first_accept, x.length]
                          for v, x in self.views.items()}}

    @classmethod
    def from_json(cls, data):
        views = {int(v): InputView(tuple(h), tuple(t), a, n) for v, (h, t, a, n) in data["views"].items()}
        return cls(rules={int(k): v for k, v in data["rules"].items()}, views=views, sets=data["sets"])

    def allow_members(self, name):
        return {line.split()[2] for line in self.sets.get(name, "").splitlines() if line.startswith("add ")}

    def set_type(self, name):
        """The set's type and options as its `ipset save` create line has them (None: no set)."""
        for line in self.sets.get(name, "").splitlines():
            if line.startswith("create "):
                return " ".join(line.split()[2:])
        return None


class Netfilter:
    """iptables/ip6tables/ipset/conntrack calls, each failure a FirewallError."""

    def __init__(self, run, bins):
        self._run_cmd = run
        self.bins = bins  # tool name -> absolute path

    def run(self, tool, args, data=None, ok=(0,)):
        rc, out, err = self._run_cmd([self.bins[tool]] + list(args), data)
        if rc not in ok:
            detail = " / ".join((err or out or "").strip().splitlines()[:4])
            if "open socket to ipset" in detail:
                # iptables reaches ipset through a raw socket: containers need CAP_NET_RAW too.
                detail += " (the set match needs CAP_NET_RAW; in a container add NET_RAW)"
            raise FirewallError("{} {} failed (exit {}): {}".format(tool, ' '.join(args), rc, detail))
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
        _rc, out, err = self.run("conntrack", ["-D", "-s", address] + family, ok=(0, 1))
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
                state.rules[v], state.views[v] = own_lines(self.save(v), name)
            except FirewallError:
                if v in required:
                    raise
                state.rules[v], state.views[v] = [], InputView()
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
                diffs.append("IPv{} rules differ".format(v))
            view = state.views[v]
            if not view.head_in_place():
                diffs.append("IPv{} INPUT jump missing, repeated or below an ACCEPT rule "
                             "(jumps at {}, first ACCEPT at {})".format(
                                 v, list(view.heads), view.first_accept or 'none'))
            if input_edits(spec, view) and view.head_in_place():
                diffs.append("IPv{} INPUT jump to the accept chain differs (at {})".format(
                    v, list(view.tails)))
            allow = allow_set(spec.name, v)
            if allow not in state.sets or state.allow_members(allow) != set(allow_members(spec, v)):
                diffs.append("ipset {} differs".format(allow))
            block = block_set(spec.name, v)
            wanted_create = _create_words("create {} {}".format(block, block_set_type(spec, v)))
            if block_create(state, block) != wanted_create:
                diffs.append("ipset {} missing or has another type or timeout".format(block))
        else:
            if state.has_version(v):
                diffs.append("IPv{0} rules exist but IPv{0} is not wanted".format(v))
            diffs += ["ipset {} exists but IPv{} is not wanted".format(s, v)
                      for s in ipset_names(spec.name, (v,)) if s in state.sets]
    return diffs


IPSET_NOISE = {"hashsize", "maxelem", "bucketsize", "initval"}  # kernel defaults, not our choice


def _create_words(line):
    """A `create` line without the kernel's defaults, as a tuple of words."""
    words = line.split()
    return tuple(w for i, w in enumerate(words) if w not in IPSET_NOISE and words[i - 1] not in IPSET_NOISE)


def block_create(state, block):
    """The block set's create line without the kernel's defaults (None: no set)."""
    kind = state.set_type(block)
    return _create_words("create {} {}".format(block, kind)) if kind else None


def _sets_summary(lines):
    """ipset restore/save lines -> per set: its create line without noise, then sorted members."""
    creates, members = OrderedDict(), {}
    for line in lines:
        words = line.split()
        if words[:1] == ["create"]:
            creates[words[1]] = " ".join(_create_words(line))
        elif words[:1] == ["add"]:
            members.setdefault(words[1], []).append(line)
    out = []
    for set_name, create in creates.items():
        out += ["# ipset {}".format(set_name), create] + sorted(members.get(set_name, []))
    return out


def describe(state, name, versions=VERSIONS):
    """Normalised text of the layer's current objects, for diff mode."""
    parts = []
    for v in versions:
        if state.has_version(v):
            view = state.views[v]
            parts.append("# IPv{} (INPUT jumps at {}, accept jumps at {})".format(
                v, list(view.heads), list(view.tails)))
            parts += normalise_rules("\n".join(state.rules[v]))
    save_lines = [line for s in ipset_names(name, versions) if s in state.sets
                  for line in state.sets[s].splitlines()]
    parts += _sets_summary(save_lines)
    return "\n".join(parts) + ("\n" if parts else "")


def describe_desired(spec):
    parts = []
    for v in spec.ip_versions:
        tail = ", accept jump at the end" if spec.accept_sip else ""
        parts.append("# IPv{} (INPUT jump near the top{})".format(v, tail))
        parts += normalise_rules(render_rules(spec, v))
    parts += _sets_summary([line for v in spec.ip_versions for line in ipset_lines(spec, v, for_boot=True)])
    return "\n".join(parts) + "\n"


# --- applying --------------------------------------------------------------------


def swap_lines(target, scratch_type, members):
    """ipset restore lines that fill a scratch set and swap it with ``target`` in one step,
    so the set is never seen half-filled."""
    scratch = "{}-new".format(target)
    return (["create {} {}".format(scratch, scratch_type), "flush {}".format(scratch)]
            + ["add {} {}".format(scratch, member) for member in members]
            + ["swap {} {}".format(scratch, target), "destroy {}".format(scratch)])


def _block_members(state, block):
    """The block set's members as `ipset save` lists them (address and remaining timeout)."""
    return [" ".join(line.split()[2:]) for line in state.sets.get(block, "").splitlines()
            if line.startswith("add ")]


def remove_version(nf, name, v, state):
    """Remove the chains and jumps of one IP version, then its sets."""
    if state.has_version(v):
        nf.restore(v, removal_text(name, state.views[v], state.chains(v)))
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
            nf.restore(v, apply_text(spec, v, state.views[v], state.chains(v)), test=True)
        except FirewallError as exc:
            raise FirewallError("the kernel refused the IPv{} rules, nothing was changed: {}".format(v, exc))


def apply(nf, spec, state):
    """Bring the kernel to the spec. Any refusal leaves every object as it was.

    Order: create missing sets (new allow sets already filled), test every version,
    fill changed allow sets, load the rules, and only then retype block sets and
    remove a version that is no longer wanted - so a refusal before the last two
    steps has nothing of the old layer to put back but rules and allow members.
    """
    created = _create_missing_sets(nf, spec, state)
    swapped, applied = [], []
    try:
        _test_all(nf, spec, state)
        for v in spec.ip_versions:  # the allow sets first: no rule needing them goes live empty
            allow = allow_set(spec.name, v)
            if allow not in created and state.allow_members(allow) != set(allow_members(spec, v)):
                nf.ipset_restore(swap_lines(allow, allow_set_type(v), allow_members(spec, v)))
                swapped.append(v)
        for v in spec.ip_versions:
            nf.restore(v, apply_text(spec, v, state.views[v], state.chains(v)))
            applied.append(v)
    except FirewallError:
        _undo(nf, spec, state, applied, swapped, created)
        raise
    _retype_block_sets(nf, spec, state, created)
    for v in VERSIONS:
        if v not in spec.ip_versions:
            remove_version(nf, spec.name, v, state)


def _create_missing_sets(nf, spec, state):
    created = []
    for v in spec.ip_versions:
        lines = ipset_lines(spec, v, for_boot=True)
        new = {line.split()[1] for line in lines if line.startswith("create ")} - set(state.sets)
        nf.ipset_restore([line for line in lines if line.split()[1] in new])
        created += sorted(new)
    return created


def _undo(nf, spec, state, applied, swapped, created):
    """After a refusal half-way: the versions already loaded, the allow sets already
    filled and the sets just created go back to how ``state`` found them."""
    for v in applied:
        nf.restore(v, revert_text(spec.name, v, state, spec))
    for v in swapped:
        allow = allow_set(spec.name, v)
        nf.ipset_restore(swap_lines(allow, allow_set_type(v), sorted(state.allow_members(allow))))
    for set_name in created:
        nf.ipset_destroy(set_name)


def _retype_block_sets(nf, spec, state, created):
    for v in spec.ip_versions:
        block = block_set(spec.name, v)
        wanted = block_set_type(spec, v)
        wanted_create = _create_words("create {} {}".format(block, wanted))
        if block not in created and block_create(state, block) != wanted_create:
            # A new timeout or prefix: keep the dynamic members, each with its remaining time.
            nf.ipset_restore(swap_lines(block, wanted, _block_members(state, block)))


def revert_text(name, v, previous, applied):
    """Restore text that takes our chains of version v from what ``applied`` (a spec)
    left back to ``previous``. Used after a failed apply and by the rollback guard."""
    entry, _sip, accept = chain_names(name)
    now = set(wanted_chains(applied)) if v in applied.ip_versions else set()
    before = previous.chains(v)
    view = previous.views.get(v, InputView())
    body = [":{} - [0:0]".format(chain) for chain in sorted(now | before)]
    body += [line for line in previous.rules.get(v, []) if line.startswith("-A ")]
    # Jumps the apply moved or added go back; jumps it left alone stay where they are.
    applied_here = v in applied.ip_versions
    if not (applied_here and view.head_in_place()):
        body += ["-D INPUT -j {}".format(entry)] * (1 if applied_here else 0)
        if view.heads:
            body.append("-I INPUT 1 -j {}".format(entry))
    tails_now = 1 if applied_here and applied.accept_sip else 0
    if not (tails_now and view.tail_in_place()):
        body += ["-D INPUT -j {}".format(accept)] * tails_now
        body += ["-A INPUT -j {}".format(accept)] * (1 if view.tails else 0)
    body += ["-X {}".format(chain) for chain in sorted(now - before)]
    return restore_text(body)


def revert_ipset_lines(name, previous, v, applied):
    """ipset restore lines that put the previous sets back (run before the rules): the
    allow set's members through a swap; the block set with its previous type, timeout
    and members when the apply retyped or removed it."""
    lines = []
    allow, block = allow_set(name, v), block_set(name, v)
    block_type = previous.set_type(block)
    if block_type:
        kept = v in applied.ip_versions and block_create(previous, block) == _create_words(
            "create {} {}".format(block, block_set_type(applied, v)))
        if not kept:
            if v not in applied.ip_versions:  # the apply removed it; a retyped one is swapped below
                lines.append("create {} {}".format(block, block_type))
            lines += swap_lines(block, block_type, _block_members(previous, block))
    if allow in previous.sets:
        lines.append("create {} {}".format(allow, allow_set_type(v)))
        lines += swap_lines(allow, allow_set_type(v), sorted(previous.allow_members(allow)))
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
        rc, out, _err = nf.run("ipset", ["list", block], ok=(0, 1))
        in_members = False
        found = set()
        for line in out.splitlines() if rc == 0 else []:
            if line.startswith("Members:"):
                in_members = True
            elif in_members and line.strip():
                found.add(line.split()[0])
        members[block] = found
    return members
