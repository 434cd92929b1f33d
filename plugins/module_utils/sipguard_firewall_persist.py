"""Boot persistence and the rollback guard of the sipguard firewall layer.

Persistence: the rendered rules and ipset definitions go to /etc/sipguard/firewall/,
and two oneshot systemd units load them before the network comes up: one creates
the ipsets before any saved ruleset that may reference them is loaded
(netfilter-persistent, iptables-services, firewalld, nftables), the other loads the
chains after those, so a host ruleset saved while the layer was loaded (autosave)
finds its sets at boot, and a ruleset saved without the layer cannot hide it.

Rollback guard: before a guarded apply, the previous state is written as a small
shell script; a timer (systemd-run, or a detached ``sleep`` when systemd is not the
init of this network namespace) runs it after N seconds unless ``state: confirmed``
cancels it first. A guarded apply is only made persistent on confirmation, so a
reboot after a rollback also comes up with the old rules.

Debug window: an apply with ``debug_log: open`` renders extra LOG rules inside the layer's
own chains and writes /run/sipguard-firewall-NAME.debug, a script that loads the layer's
chains as rendered without them (the same rules as the boot file), under the layer's lock.
A timer (systemd-run, or a detached ``sleep``) runs it when the window ends; the debug role's
helper runs the same script to close the window earlier. Everything of the window is in /run
and the boot files never hold its rules, so a reboot ends it too.

Runs on the target's Python (2.7, 3.6+). On Python 2, open() fails with IOError, which is not an
OSError there: both are caught.
"""

from __future__ import absolute_import, division, print_function

import contextlib
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from ansible_collections.sipguard.hardening.plugins.module_utils.sipguard_firewall_apply import (
    VERSIONS,
    FirewallError,
    LayerState,
    revert_ipset_lines,
    revert_text,
)
from ansible_collections.sipguard.hardening.plugins.module_utils.sipguard_firewall_rules import (
    chain_names,
    ipset_lines,
    ipset_names,
    render_rules,
    restore_text,
    without_debug,
)

__metaclass__ = type

# Host firewall loaders that may restore a saved ruleset naming our sets.
HOST_LOADERS = ("netfilter-persistent.service", "iptables.service", "ip6tables.service",
                "firewalld.service", "nftables.service", "ufw.service")

CONF_DIR = "/etc/sipguard/firewall"
STATE_DIR = "/var/lib/sipguard/firewall"
UNIT_DIR = "/etc/systemd/system"
RUN_DIR = "/run"  # the guard's lock and "rolled back" note: gone at reboot, like the guard's timer


def _must(run, args):
    """Run a systemctl/systemd-run call; a failure becomes a FirewallError for the user."""
    rc, out, err = run(args)
    if rc != 0:
        raise FirewallError("{} failed (exit {}): {}".format(' '.join(args), rc, (err or out).strip()))


def unit_name(name):
    return "sipguard-firewall.service" if name == "sipguard" else "sipguard-firewall-{}.service".format(name)


def sets_unit_name(name):
    return unit_name(name).replace(".service", "-sets.service")


def systemd_usable():
    """True when systemd is running and is the init of *this* network namespace.

    Under ``ip netns exec`` the host's systemd would load the rules into the host's
    namespace, so the unit and timers must not be used there.
    """
    if not os.path.isdir("/run/systemd/system"):
        return False
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat("/proc/1/ns/net").st_ino
    except OSError:
        return False


# --- boot persistence ----------------------------------------------------------


def boot_files(spec, bins):
    """path -> content of every file persistence needs (pure). A debug window's LOG rules are
    never persisted: a reboot during a window comes up without them."""
    spec = without_debug(spec)
    base = "{}/{}".format(CONF_DIR, spec.name)
    ipsets = "".join(line + "\n" for v in spec.ip_versions for line in ipset_lines(spec, v, for_boot=True))
    files = {"{}.ipset".format(base): ipsets}
    entry, _sip, accept = chain_names(spec.name)
    starts = []
    for v in spec.ip_versions:
        tool = bins["iptables" if v == 4 else "ip6tables"]
        files["{}.rules{}".format(base, v)] = "*filter\n" + render_rules(spec, v) + "COMMIT\n"
        starts.append("ExecStart={} "
                      "--noflush {}.rules{}".format(
                          bins['iptables-restore' if v == 4 else 'ip6tables-restore'], base, v))
        # Jumps go in by check-then-insert, so a restart, or a saved host ruleset that already
        # holds them, never adds a second one.
        starts.append("ExecStart=/bin/sh -c '{tool} -C INPUT -j {jump} 2>/dev/null"
                      " || {tool} -I INPUT 1 -j {jump}'".format(tool=tool, jump=entry))
        if spec.accept_sip:
            starts.append("ExecStart=/bin/sh -c '{tool} -C INPUT -j {jump} 2>/dev/null"
                          " || {tool} -A INPUT -j {jump}'".format(tool=tool, jump=accept))
    loaders = " ".join(HOST_LOADERS)
    header = "# Written by the sipguard_firewall Ansible module; changes are overwritten."
    files["{}/{}".format(UNIT_DIR, sets_unit_name(spec.name))] = "\n".join([
        header,
        "[Unit]",
        "Description=sipguard firewall layer {}: ipsets, before any saved ruleset naming them".format(
            spec.name),
        "DefaultDependencies=no",
        "After=local-fs.target systemd-modules-load.service",
        "Before=network-pre.target shutdown.target {}".format(loaders),
        "Wants=network-pre.target",
        "Conflicts=shutdown.target",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        "ExecStart={} -exist -file {}.ipset restore".format(bins['ipset'], base),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])
    files["{}/{}".format(UNIT_DIR, unit_name(spec.name))] = "\n".join([
        header,
        "[Unit]",
        "Description=sipguard firewall layer {}: iptables chains".format(spec.name),
        "DefaultDependencies=no",
        "Requires={}".format(sets_unit_name(spec.name)),
        # After the host's loaders: a ruleset restored without --noflush would drop our chains.
        "After=local-fs.target {} {}".format(sets_unit_name(spec.name), loaders),
        "Before=network-pre.target shutdown.target",
        "Wants=network-pre.target",
        "Conflicts=shutdown.target",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
    ] + starts + [
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])
    return files


def files_differ(files):
    for path, content in files.items():
        try:
            with open(path) as handle:
                if handle.read() != content:
                    return True
        except (IOError, OSError):
            return True
    return False


def make_dirs(path, mode=0o777):
    """os.makedirs that accepts an existing directory (exist_ok is Python 3 only)."""
    try:
        os.makedirs(path, mode)
    except OSError as exc:
        if exc.errno != errno.EEXIST or not os.path.isdir(path):
            raise


def write_atomic(path, content, mode=0o644):
    directory = os.path.dirname(path)
    make_dirs(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".sipguard-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        os.chmod(tmp, mode)
        os.rename(tmp, path)  # replaces atomically on POSIX (os.replace is Python 3 only)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def install_boot_files(files, run, name):
    for path, content in files.items():
        write_atomic(path, content)
    _must(run, ["systemctl", "daemon-reload"])
    _must(run, ["systemctl", "enable", sets_unit_name(name), unit_name(name)])


def boot_files_exist(name):
    paths = ["{}/{}.ipset".format(CONF_DIR, name), "{}/{}".format(UNIT_DIR, unit_name(name)),
             "{}/{}".format(UNIT_DIR, sets_unit_name(name))]
    paths += ["{}/{}.rules{}".format(CONF_DIR, name, v) for v in VERSIONS]
    return [p for p in paths if os.path.exists(p)]


def remove_boot_files(name, run):
    """Disable the unit and delete every persisted file. Returns True if anything went.
    Only called when systemd_usable(): from another network namespace these files
    belong to the host's own layer."""
    paths = boot_files_exist(name)
    if not paths:
        return False
    units = [unit_name(name), sets_unit_name(name)]
    run(["systemctl", "stop"] + units)  # only clears their "active (exited)" state
    # An earlier sipguard wrote no sets unit: disable only what exists.
    _must(run, ["systemctl", "disable"] + [u for u in units if os.path.exists("{}/{}".format(UNIT_DIR, u))])
    for path in paths:
        os.unlink(path)
    _must(run, ["systemctl", "daemon-reload"])
    remove_empty_dirs(CONF_DIR)
    return True


def remove_empty_dirs(directory):
    """Remove ``directory`` and then its parent, each only if empty (we may have created them)."""
    for path in (directory, os.path.dirname(directory)):
        if os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)


# --- rollback guard ------------------------------------------------------------


def guard_dir(name):
    return "{}/{}".format(STATE_DIR, name)


def rollback_unit(name):
    return "sipguard-firewall-rollback-{}".format(name)


def guard_pending(name):
    return os.path.exists("{}/rollback.sh".format(guard_dir(name)))


def lock_path(name):
    return "{}/sipguard-firewall-{}.lock".format(RUN_DIR, name)


def rolled_back_path(name):
    """Written by the rollback script: a later confirm must fail, not report 'nothing to do'."""
    return "{}/sipguard-firewall-{}.rolled-back".format(RUN_DIR, name)


@contextlib.contextmanager
def guard_lock(name):
    """One module run or rollback at a time per layer: a confirm can never land half-way
    through a rollback (the script takes the same lock with flock(1))."""
    fd = os.open(lock_path(name), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def rolled_back(name):
    """The time the last unconfirmed apply was rolled back, or None."""
    try:
        with open(rolled_back_path(name)) as handle:
            return handle.read().strip() or "earlier"
    except (IOError, OSError):
        return None


def forget_rollback(name):
    try:
        os.unlink(rolled_back_path(name))
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def load_previous(name):
    with open("{}/previous.json".format(guard_dir(name))) as handle:
        return LayerState.from_json(json.load(handle))


def run_later(run, systemd, unit, seconds, command, pid_path):
    """Run the shell `command` after `seconds`, outliving the module: a systemd timer `unit`, or,
    without a usable systemd, a detached sleeper in its own session whose pid goes to `pid_path`
    (setsid in the child; subprocess.DEVNULL and start_new_session are Python 3 only)."""
    if systemd:
        _must(run, ["systemd-run", "--unit", unit, "--on-active={}s".format(int(seconds)),
                    "--timer-property=AccuracySec=1s", "/bin/sh", "-c", command])
        return
    with open(os.devnull, "r+b") as devnull:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell input from the user
            ["/bin/sh", "-c", "sleep {}; {}".format(int(seconds), command)],
            stdin=devnull, stdout=devnull, stderr=devnull,
            preexec_fn=os.setsid, close_fds=True,  # noqa: PLW1509 - no threads in a module
        )
    write_atomic(pid_path, str(proc.pid), 0o600)


def rollback_script(name, previous, spec, bins):
    """Shell script that restores ``previous`` after ``spec`` was applied (pure)."""
    directory = guard_dir(name)
    lines = [
        "#!/bin/sh",
        "# Written by sipguard_firewall: puts the firewall layer '{}' back as it was before".format(name),
        "# a guarded apply that nobody confirmed (state: confirmed) in time.",
        # Under the module's lock: a confirm either comes before (and this exits) or after.
        "exec 9>{}".format(lock_path(name)),
        "flock 9",
        "[ -e {}/rollback.sh ] || exit 0".format(directory),
    ]
    for v in VERSIONS:
        ipset_in = revert_ipset_lines(name, previous, v, spec)
        if ipset_in:
            lines += ["{} -exist restore <<'SIPGUARD_EOF'".format(
                bins['ipset'])] + ipset_in + ["SIPGUARD_EOF"]
        if previous.has_version(v) or v in spec.ip_versions:
            tool = bins["iptables-restore" if v == 4 else "ip6tables-restore"]
            text = revert_text(name, v, previous, spec)
            lines += ["{} --noflush <<'SIPGUARD_EOF'".format(tool), text.rstrip("\n"), "SIPGUARD_EOF"]
    for set_name in ipset_names(name):
        if set_name not in previous.sets:
            lines.append("{} destroy {} 2>/dev/null".format(bins['ipset'], set_name))
    lines.append("date -u '+%Y-%m-%d %H:%M:%S UTC' >{}".format(rolled_back_path(name)))
    lines.append("rm -rf {}".format(directory))
    lines.append("rmdir {} {} 2>/dev/null".format(STATE_DIR, os.path.dirname(STATE_DIR)))
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def arm_guard(name, previous, spec, bins, seconds, pending_boot, run):
    """Write the rollback script (and the boot files waiting for confirmation), then
    schedule the script. A guard already pending keeps its older, confirmed state."""
    directory = guard_dir(name)
    if guard_pending(name):
        previous = load_previous(name)
        _cancel_timer(name, run)
    forget_rollback(name)
    make_dirs(directory, 0o700)
    write_atomic("{}/previous.json".format(directory), json.dumps(previous.to_json()), 0o600)
    pending = "{}/pending".format(directory)
    shutil.rmtree(pending, ignore_errors=True)
    if pending_boot:
        os.makedirs(pending)
        write_atomic("{}/files.json".format(pending), json.dumps(pending_boot), 0o600)
    script = "{}/rollback.sh".format(directory)
    write_atomic(script, rollback_script(name, previous, spec, bins), 0o700)
    run_later(run, systemd_usable(), rollback_unit(name), seconds, "exec /bin/sh {}".format(script),
              "{}/pid".format(directory))


def _cancel_timer(name, run):
    directory = guard_dir(name)
    pid_file = "{}/pid".format(directory)
    if os.path.exists(pid_file):
        with open(pid_file) as handle:
            pid = int(handle.read().strip() or 0)
        if pid and _is_our_sleeper(pid, directory):
            os.killpg(pid, signal.SIGTERM)
            for _attempt in range(50):  # bounded wait so the script cannot start half-way
                if not os.path.exists("/proc/{}".format(pid)):
                    break
                time.sleep(0.02)
        os.unlink(pid_file)
    elif systemd_usable():
        unit = rollback_unit(name)
        # Either may already be gone (the timer fired, or never started): not an error.
        run(["systemctl", "stop", "{}.timer".format(unit), "{}.service".format(unit)])
        run(["systemctl", "reset-failed", "{}.timer".format(unit), "{}.service".format(unit)])


def _is_our_sleeper(pid, directory):
    try:
        with open("/proc/{}/cmdline".format(pid), "rb") as handle:
            return directory.encode() in handle.read()
    except (IOError, OSError):
        return False


def confirm_guard(name, run):
    """Cancel a pending rollback and install the boot files it held back.
    Returns True when a guard was pending."""
    if not guard_pending(name):
        return False
    _cancel_timer(name, run)
    files_json = "{}/pending/files.json".format(guard_dir(name))
    if os.path.exists(files_json):
        with open(files_json) as handle:
            install_boot_files(json.load(handle), run, name)
    shutil.rmtree(guard_dir(name))
    remove_empty_dirs(STATE_DIR)
    return True


def drop_guard(name, run):
    """Cancel a pending rollback without installing anything (state: absent)."""
    if not guard_pending(name):
        return False
    _cancel_timer(name, run)
    shutil.rmtree(guard_dir(name))
    remove_empty_dirs(STATE_DIR)
    return True


# --- debug window ----------------------------------------------------------------


def debug_script(name):
    """The script that closes the window (names hold no dots: no layer can collide)."""
    return "{}/sipguard-firewall-{}.debug".format(RUN_DIR, name)


def debug_state_path(name):
    return "{}/sipguard-firewall-{}.debug.json".format(RUN_DIR, name)


def debug_pid_path(name):
    return "{}/sipguard-firewall-{}.debug.pid".format(RUN_DIR, name)


def debug_unit(name):
    return "sipguard-firewall-debug-{}".format(name)


def debug_window(name):
    """The open window's {"prefix", "rate", "until" (epoch seconds), "ends" (text)}, or None."""
    try:
        with open(debug_state_path(name)) as handle:
            window = json.load(handle)
    except (IOError, OSError, ValueError):
        return None
    return window if isinstance(window, dict) and "until" in window else None


def debug_files_exist(name):
    return [p for p in (debug_script(name), debug_state_path(name), debug_pid_path(name))
            if os.path.exists(p)]


def debug_close_script(spec, bins, ends, systemd):
    """Shell script that ends the debug window of ``spec``'s layer (pure): it loads the layer's
    chains as rendered without the debug LOG rules, with iptables-restore --noflush, under the
    module's lock. Only the layer's own chains are named (redeclared, so flushed, and refilled):
    the INPUT jumps, other tools' chains (fail2ban's bans) and the host's own rules stay as they
    are. A version whose entry chain is gone (the layer was removed by hand) is left alone."""
    name = spec.name
    plain = without_debug(spec)
    script = debug_script(name)
    lines = [
        "#!/bin/sh",
        "# Written by sipguard_firewall: closes the debug window of the firewall layer '{}'".format(name),
        "# (due {}): loads its chains without the window's LOG rules.".format(ends),
        "exec 9>{}".format(lock_path(name)),
        "flock 9",
        "[ -e {} ] || exit 0".format(script),
        "failed=",
    ]
    entry = chain_names(name)[0]
    for v in spec.ip_versions:
        tool = bins["iptables" if v == 4 else "ip6tables"]
        restore = bins["iptables-restore" if v == 4 else "ip6tables-restore"]
        text = restore_text(render_rules(plain, v).splitlines())
        lines += [
            "if {} -w -S {} >/dev/null 2>&1; then".format(tool, entry),
            "{} --noflush <<'SIPGUARD_EOF' || failed=\"$failed IPv{}\"".format(restore, v),
            text.rstrip("\n"),
            "SIPGUARD_EOF",
            "fi",
        ]
    lines += [
        'if [ -n "$failed" ]; then',
        '    msg="sipguard firewall layer {}: the debug window LOG rules could not be removed for$failed;'
        ' run {} again"'.format(name, script),
        '    echo "$msg" >&2',
        '    logger -t sipguard-firewall -p daemon.err -- "$msg" 2>/dev/null',
        "    exit 1",
        "fi",
        "rm -f {} {}".format(script, debug_state_path(name)),
    ]
    if systemd:
        # Run early by hand (the debug role's helper): the timer has nothing left to do.
        lines.append("systemctl stop {}.timer >/dev/null 2>&1".format(debug_unit(name)))
    else:
        pid = debug_pid_path(name)
        lines += [
            "if [ -e {} ]; then".format(pid),
            "    sleeper=$(cat {pid}); rm -f {pid}".format(pid=pid),
            # When the sleeper itself runs this script (exec), it is $$: nothing to stop.
            '    [ "$sleeper" = "$$" ] || kill -TERM -- "-$sleeper" 2>/dev/null',
            "fi",
        ]
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def open_debug(spec, bins, seconds, run):
    """Write the close script and the window's settings, and (re)start its timer. Returns the
    window. Called before the apply, so a failure after it still ends in the plain layer."""
    cancel_debug_timer(spec.name, run)
    until = int(time.time()) + int(seconds)
    ends = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(until))
    systemd = systemd_usable()
    window = {"prefix": spec.debug_log.prefix, "rate": spec.debug_log.rate, "until": until, "ends": ends}
    write_atomic(debug_state_path(spec.name), json.dumps(window), 0o600)
    script = debug_script(spec.name)
    write_atomic(script, debug_close_script(spec, bins, ends, systemd), 0o700)
    run_later(run, systemd, debug_unit(spec.name), seconds, "[ ! -e {0} ] || exec /bin/sh {0}".format(script),
              debug_pid_path(spec.name))
    return window


def keep_debug(spec, bins, window):
    """A re-apply during an open window: the close script loads the layer as applied now."""
    write_atomic(debug_script(spec.name),
                 debug_close_script(spec, bins, window.get("ends", ""), systemd_usable()), 0o700)


def cancel_debug_timer(name, run):
    pid_file = debug_pid_path(name)
    if os.path.exists(pid_file):
        with open(pid_file) as handle:
            pid = int(handle.read().strip() or 0)
        if pid and _is_our_sleeper(pid, debug_script(name)):
            os.killpg(pid, signal.SIGTERM)
        os.unlink(pid_file)
    elif systemd_usable():
        unit = debug_unit(name)
        run(["systemctl", "stop", "{}.timer".format(unit)])
        run(["systemctl", "reset-failed", "{}.timer".format(unit), "{}.service".format(unit)])


def drop_debug(name, run):
    """End the window's bookkeeping (timer, script, settings); the caller applies the rules.
    Returns True when there was something."""
    found = debug_files_exist(name)
    if found:
        cancel_debug_timer(name, run)
    for path in (debug_script(name), debug_state_path(name)):
        if os.path.exists(path):
            os.unlink(path)
    return bool(found)
