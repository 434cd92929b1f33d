#!/usr/bin/python
# Copyright (c) sipguard contributors
# MIT License (see LICENSE in the collection's root or https://opensource.org/license/mit)
# SPDX-License-Identifier: MIT
"""Ansible module: compare files on the host with their expected content digest, owner, group and mode."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: file_compare
short_description: Compare files on the host with the content, owner, group and mode they should have
description:
  - Reads each file of O(files) on the host and says whether it already has the expected SHA-256 of its
    content, owner, group and mode. Changes nothing; never reports a change; runs in check mode too.
  - A file that matches is returned with the checksum it matched, so a later task can skip only while its
    expected content is still that checksum (a second rendering with other variables in the same run is
    not skipped).
  - One module run instead of a C(stat) and a C(file) per file, which is what M(ansible.builtin.copy) and
    M(ansible.builtin.template) cost when the file is already right. A role asks once, and runs the copy or
    template task only for a file that differs, so a changed file is still found and put back by the usual
    task (with its C(validate), its diff and its handler).
  - A file that is missing, is not a regular file, or cannot be read does not match; the reason says why.
version_added: "0.4.0"
author: sipguard maintainers (@sipguard)
options:
  files:
    description: The files to compare.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path of the file on the host.
        type: path
        required: true
      checksum:
        description: The SHA-256 of the content the file should have, in hex (the C(hash('sha256')) filter of
          the rendered text, or the C(checksum) of M(ansible.builtin.stat) on the controller's copy).
        type: str
        required: true
      owner:
        description: The user name that should own the file; not compared when omitted.
        type: str
      group:
        description: The group name the file should have; not compared when omitted.
        type: str
      mode:
        description: The permission bits the file should have, as an octal string such as V('0640'); not
          compared when omitted.
        type: str
attributes:
  check_mode:
    description: Reads and compares exactly as in a real run; it never writes anything anyway.
    support: full
  diff_mode:
    description: Nothing to show; the copy or template task that puts a file back shows its diff.
    support: none
notes:
  - Runs on Python 2.7 and 3.6+ (a CentOS 7 host's system Python).
  - Symbolic links are followed, as M(ansible.builtin.copy) follows a link at O(files[].path).
"""

EXAMPLES = r"""
- name: Compare the responder's files with what they should be
  sipguard.hardening.file_compare:
    files:
      - path: /etc/sipresponder/responder.toml
        checksum: "{{ lookup('ansible.builtin.template', 'responder.toml.j2') | hash('sha256') }}"
        owner: root
        group: sipresponder
        mode: "0640"
  register: compared

- name: Render responder.toml (only when it differs)
  ansible.builtin.template:
    src: responder.toml.j2
    dest: /etc/sipresponder/responder.toml
    owner: root
    group: sipresponder
    mode: "0640"
  when: >-
    compared.matched.get('/etc/sipresponder/responder.toml')
    != lookup('ansible.builtin.template', 'responder.toml.j2') | hash('sha256')
"""

RETURN = r"""
matched:
  description: Each file that already has the expected content, owner, group and mode, with the checksum
    it matched (as given, in lower case). A file that differs is not in it.
  returned: always
  type: dict
  sample: {"/etc/sipresponder/responder.toml": "4b2f0c3e1a9d8f7e6b5a4c3d2e1f0a9b8c7d6e5f"}
differences:
  description: For each file that differs, why (the first difference found).
  returned: always
  type: dict
  sample: {"/etc/sipresponder/endpoints.toml": "content differs"}
"""

import grp
import hashlib
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = dict(
    files=dict(type="list", elements="dict", required=True, options=dict(
        path=dict(type="path", required=True),
        checksum=dict(type="str", required=True),
        owner=dict(type="str"),
        group=dict(type="str"),
        mode=dict(type="str"),
    )),
)

CHUNK = 65536


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        block = handle.read(CHUNK)
        while block:
            digest.update(block)
            block = handle.read(CHUNK)
    return digest.hexdigest()


def _name(lookup, number):
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def _attribute_difference(wanted, info):
    """Why the file's mode, owner or group is not the wanted one, or None."""
    found = {
        "mode": "{:04o}".format(stat.S_IMODE(info.st_mode)),
        "owner": _name(pwd.getpwuid, info.st_uid),
        "group": _name(grp.getgrgid, info.st_gid),
    }
    for key in ("mode", "owner", "group"):
        want = wanted.get(key)
        if want is None:
            continue
        same = int(want, 8) == int(found[key], 8) if key == "mode" else want == found[key]
        if not same:
            return "{} {}, not {}".format(key, found[key], want)
    return None


def difference(wanted):
    """Why the file differs from ``wanted``, or None when it matches."""
    path = wanted["path"]
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        why = _attribute_difference(wanted, info)
        if why is None and sha256_of(path) != wanted["checksum"].strip().lower():
            why = "content differs"
    except (IOError, OSError) as exc:
        why = "missing" if not os.path.lexists(path) else "cannot be read: {}".format(exc.strerror)
    return why


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    for wanted in module.params["files"]:
        mode = wanted.get("mode")
        if mode is not None:
            try:
                int(mode, 8)
            except ValueError:
                module.fail_json(msg="{}: mode {!r} is not an octal string such as '0640'".format(
                    wanted["path"], mode))
    matched, differences = {}, {}
    for wanted in module.params["files"]:
        why = difference(wanted)
        if why is None:
            matched[wanted["path"]] = wanted["checksum"].strip().lower()
        else:
            differences[wanted["path"]] = why
    module.exit_json(changed=False, matched=matched, differences=differences)


if __name__ == "__main__":
    main()
