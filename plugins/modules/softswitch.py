#!/usr/bin/python
# Copyright (c) sipguard contributors
# MIT License (see LICENSE in the collection's root or https://opensource.org/license/mit)
# SPDX-License-Identifier: MIT
"""Ansible module: set VOS3000-style softswitch parameters in a softswitch.conf of KEY=VALUE lines."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: softswitch
short_description: Set softswitch parameters such as SS_REPLY_UNAUTHORIZED in a softswitch.conf
description:
  - Sets one or several VOS3000-style softswitch parameters in a file of C(KEY=VALUE) lines, either the
    bundled sipresponder's C(/etc/sipresponder/softswitch.conf) or a VOS3000 host's file.
  - Only the parameters listed under O(params) are validated and written; every value is checked before the
    file is touched, so an unknown name or an out-of-range value fails with nothing changed.
  - Comments, blank lines, line order, the quoting style of a line (C(KEY="v") stays quoted) and keys the
    module does not manage are kept. New keys are appended at the end.
  - The file is written atomically through Ansible's own C(atomic_move) (a temporary file in the same
    directory, then a rename), keeping the owner, mode and SELinux context of the old file.
  - Runs on the target's Python 2.7 or 3.6+ (a CentOS 7 host needs nothing installed).
  - Returns the previous value of every key it was given, so a caller can restore them later (a value of
    V(null) removes a key, which is how "was absent" is restored).
version_added: "0.1.0"
author: sipguard maintainers (@sipguard)
options:
  path:
    description:
      - The softswitch.conf to edit.
      - The default is where VOS3000 keeps the file according to community sources (forum posts and
        installation notes, not the vendor manual); check it on your hosts and change it when it differs.
        For the bundled responder use C(/etc/sipresponder/softswitch.conf).
    type: path
    default: /home/kunshi/mbx3000/etc/softswitch.conf
  params:
    description:
      - "Parameters to set, as C(KEY: value). A value of V(null) removes the key from the file."
      - C(SS_REPLY_UNAUTHORIZED) and C(SS_ENDPOINT_REGISTER_REPLACE) take C(On)/C(Off); C(on), C(off),
        C(true), C(false), C(yes), C(no), C(1), C(0) and YAML booleans are accepted and written as C(On) or
        C(Off).
      - C(SS_AUTHENTICATION_MAX_RETRY) 0-999; C(SS_AUTHENTICATION_FAILED_SUSPEND) 60-3600 (seconds);
        C(SS_AUTHCHALLENGEMODE) 401 or 407; C(SS_ENDPOINT_EXPIRE) 60-86400 (seconds).
      - C(SS_SIP_PORT) is one port or several, comma-separated or as a list, each 1-65535, no duplicates;
        written as C(5060,6060).
      - Any other key is rejected.
    type: dict
    required: true
  create:
    description:
      - Create the file when it does not exist. Without it a missing file is an error (unless every
        given value is V(null), since then there is nothing to remove and nothing changes).
    type: bool
    default: false
  mode:
    description:
      - Permissions of a file the module creates (octal string such as C("0640")). An existing file keeps
        its own mode.
    type: raw
    default: "0640"
  owner:
    description: Owner (name or uid) of a file the module creates. An existing file keeps its owner.
    type: str
  group:
    description: Group (name or gid) of a file the module creates. An existing file keeps its group.
    type: str
  backup:
    description:
      - Keep a timestamped copy of the old file next to it before changing it (only when something changes;
        never in check mode). Its name is returned as RV(backup_file).
    type: bool
    default: false
notes:
  - Supports check mode (computes and reports, writes nothing) and diff mode (shows the file before and
    after). In check mode a missing file (without O(create)) or a path that is not a file fails with a
    message naming the path, as the real run would; RV(changes) shows what would change from the real file.
  - The softswitch only reads the file when it starts; restart it (VOS3000 C(mbx3000d), or
    C(sipresponder)) for a change to take effect.
  - When a key appears several times, every occurrence is set (or removed); the last one is reported as
    the previous value, since that is the one a KEY=VALUE reader ends up with.
attributes:
  check_mode:
    description: Reports what would change without writing the file.
    support: full
  diff_mode:
    description: Shows the file before and after the change.
    support: full
"""

EXAMPLES = r"""
- name: Keep the softswitch silent towards unknown sources (internet-facing server)
  sipguard.hardening.softswitch:
    params:
      SS_REPLY_UNAUTHORIZED: "Off"
      SS_AUTHENTICATION_MAX_RETRY: 6
      SS_AUTHENTICATION_FAILED_SUSPEND: 600
  register: softswitch

- name: Set the bundled responder's parameters, creating its file
  sipguard.hardening.softswitch:
    path: /etc/sipresponder/softswitch.conf
    create: true
    owner: root
    group: sipresponder
    mode: "0640"
    params:
      SS_REPLY_UNAUTHORIZED: "On"
      SS_SIP_PORT: [5060, 6060]

- name: Restore what was there before (null removes a key that was absent)
  sipguard.hardening.softswitch:
    params: "{{ softswitch.previous }}"
"""

RETURN = r"""
previous:
  description: Each key given in O(params) with its value before the run, or V(null) when it was absent.
  returned: always
  type: dict
  sample: {"SS_REPLY_UNAUTHORIZED": "On", "SS_AUTHENTICATION_FAILED_SUSPEND": null}
params:
  description: The canonical values now set (V(null) for a removed key).
  returned: always
  type: dict
  sample: {"SS_REPLY_UNAUTHORIZED": "Off", "SS_AUTHENTICATION_FAILED_SUSPEND": "600"}
changes:
  description: Each key whose value changes (or would change, in check mode), with its value before and after
    (V(null) when absent).
  returned: always
  type: dict
  sample: {"SS_REPLY_UNAUTHORIZED": {"before": "On", "after": "Off"}}
path:
  description: The file that was edited.
  returned: always
  type: str
  sample: /home/kunshi/mbx3000/etc/softswitch.conf
backup_file:
  description: Name of the backup copy.
  returned: when O(backup=true) and the file changed
  type: str
  sample: /home/kunshi/mbx3000/etc/softswitch.conf.12345.2026-01-01@00:00:00~
"""

import grp
import os
import pwd
import re
import sys
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sipguard.hardening.plugins.module_utils.sipguard_softswitch_params import (
    LINE,
    PARAMS,
    BadValue,
    canonical_value,
)

# The parameters this module knows: one table with the bundled responder, which reads what this module
# writes (module_utils/sipguard_softswitch_params.py; ranges from the VOS3000 manual, 2.1.9.07, 4.3.5.2).
KNOWN_PARAMS = PARAMS


def canonical_params(params):
    """Validate every parameter; return {KEY: text or None}, or raise BadValue naming the first bad one."""
    wanted = {}
    for key, value in params.items():
        if key not in KNOWN_PARAMS:
            raise BadValue(
                "unknown parameter {!r} (this module manages: {})".format(
                    key, ', '.join(sorted(KNOWN_PARAMS)))
            )
        if value is None:
            wanted[key] = None
            continue
        try:
            wanted[key] = canonical_value(key, value)
        except BadValue as exc:
            raise BadValue("{}={!r}: {}".format(key, value, exc))
    return wanted


def current_values(lines):
    """{KEY: value} as a KEY=VALUE reader sees the file (the last occurrence wins)."""
    values = {}
    for line in lines:
        match = LINE.match(line)
        if match:
            values[match.group("key")] = match.group("quoted" if match.group("quote") else "plain")
    return values


def apply_params(lines, wanted):
    """Return the new list of lines with `wanted` set (None removes); other lines are kept untouched."""
    result = []
    for line in lines:
        match = LINE.match(line)
        if not match or match.group("key") not in wanted:
            result.append(line)
            continue
        value = wanted[match.group("key")]
        if value is None:
            continue
        quote = match.group("quote") or ""
        result.append(match.group("head") + quote + value + quote + match.group("tail") + match.group("eol"))
    present = current_values(lines)
    missing = [key for key, value in wanted.items() if value is not None and key not in present]
    if missing:
        eol = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
        if result and not result[-1].endswith("\n"):
            result[-1] += eol
        result.extend("{}={}{}".format(key, wanted[key], eol) for key in missing)
    return result


def _parse_mode(module, mode):
    if isinstance(mode, int):
        return mode
    text = str(mode).strip()
    if not re.match(r"0?[0-7]{3,4}\Z", text):
        module.fail_json(msg="mode {!r} is not an octal mode such as '0640'".format(mode))
    return int(text, 8)


def _lookup_id(module, kind, value):
    if value is None:
        return -1  # os.chown: leave unchanged
    if str(value).isdigit():
        return int(value)
    try:
        return pwd.getpwnam(value).pw_uid if kind == "owner" else grp.getgrnam(value).gr_gid
    except KeyError:
        module.fail_json(msg="{} {!r} does not exist on this host".format(kind, value))


def file_attributes(module, path):
    """(mode, uid, gid) for the new file: the old file's, or those asked for when creating it."""
    if os.path.exists(path):
        stat = os.stat(path)
        return stat.st_mode & 0o7777, stat.st_uid, stat.st_gid
    return (
        _parse_mode(module, module.params["mode"]),
        _lookup_id(module, "owner", module.params["owner"]),
        _lookup_id(module, "group", module.params["group"]),
    )


# The file is handled as text on Python 3 (bytes that are not UTF-8 survive as surrogates) and as
# the native byte string on Python 2, where "surrogateescape" does not exist; either way every byte
# that is not part of a value we set is written back unchanged.
PY2 = sys.version_info[0] == 2


def read_file(path):
    with open(path, "rb") as handle:
        data = handle.read()
    return data if PY2 else data.decode("utf-8", "surrogateescape")


def _file_bytes(text):
    if PY2:
        return text.encode("utf-8") if not isinstance(text, bytes) else text
    return text.encode("utf-8", "surrogateescape")


def write_atomically(module, path, text, attributes, exists):
    """Write a temporary file in the same directory, then AnsibleModule.atomic_move it over the old
    file: the rename is atomic, and the old file's owner, mode and SELinux context are kept."""
    mode, uid, gid = attributes
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".softswitch.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(_file_bytes(text))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
    except (IOError, OSError) as exc:  # Python 2's file writes raise IOError
        os.unlink(tmp)
        module.fail_json(msg="could not write {}: {}".format(path, exc))
    # atomic_move fails the module itself (and removes the temporary file) when it cannot.
    module.atomic_move(tmp, path)
    if not exists:
        # A new file gets the umask's mode and the default SELinux context from atomic_move; the
        # mode and owner asked for are set right after.
        try:
            os.chown(path, uid, gid)
            os.chmod(path, mode)
        except OSError as exc:
            module.fail_json(msg="could not set the owner or mode of {}: {}".format(path, exc))


ARGUMENT_SPEC = {
    "path": {"type": "path", "default": "/home/kunshi/mbx3000/etc/softswitch.conf"},
    "params": {"type": "dict", "required": True},
    "create": {"type": "bool", "default": False},
    "mode": {"type": "raw", "default": "0640"},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "backup": {"type": "bool", "default": False},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    path = module.params["path"]
    try:
        wanted = canonical_params(module.params["params"])
    except BadValue as exc:
        module.fail_json(msg="{}; {} was not changed".format(exc, path))

    # The same checks in check mode as in a real run: a wrong path is a failure, not a skip.
    if os.path.isdir(path):
        module.fail_json(msg="{} is a directory, not a softswitch.conf; nothing was changed".format(path))
    exists = os.path.exists(path)
    if exists:
        try:
            before = read_file(path)
        except (IOError, OSError) as exc:
            module.fail_json(msg="could not read {}: {}".format(path, exc))
    elif module.params["create"] or all(v is None for v in wanted.values()):
        before = ""
    else:
        module.fail_json(msg="{} does not exist; check the softswitch's path on this host (set path), or set "
                             "create: true to create it; nothing was changed".format(path))

    lines = before.splitlines(True)
    present = current_values(lines)
    previous = {key: present.get(key) for key in wanted}
    after = "".join(apply_params(lines, wanted))
    # Nothing to write when every key to remove is absent from a missing file.
    changed = after != before and (exists or bool(after))
    changes = {key: {"before": previous[key], "after": value}
               for key, value in wanted.items() if changed and previous[key] != value}

    result = {"changed": changed, "path": path, "previous": previous, "params": wanted, "changes": changes}
    if module._diff:
        result["diff"] = {
            "before": before,
            "after": after if changed else before,
            "before_header": path if exists else "{} (absent)".format(path),
            "after_header": path,
        }
    if changed:
        # Checked in check mode too, so a bad mode or owner shows up before the real run.
        attributes = file_attributes(module, path)
        if not exists and not os.path.isdir(os.path.dirname(path) or "."):
            module.fail_json(msg="cannot create {}: its directory does not exist".format(path))
    if changed and not module.check_mode:
        if module.params["backup"] and exists:
            result["backup_file"] = module.backup_local(path)
        write_atomically(module, path, after, attributes, exists)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
