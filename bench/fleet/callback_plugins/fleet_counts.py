"""Count, per host, the tasks of a run and how many of them ran a module on the host; time each task.

Enabled only by bench/fleet_site.py (ANSIBLE_CALLBACKS_ENABLED=fleet_counts), which names the output file in
SIPGUARD_FLEET_COUNTS. A notification callback, so the run's normal output is unchanged.
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase

# Actions that run on the controller only: they cost controller CPU but no round trip to the host.
LOCAL_ACTIONS = frozenset(
    name
    for short in (
        "set_fact", "assert", "debug", "fail", "meta", "include_role", "include_tasks", "import_role",
        "import_tasks", "include_vars", "add_host", "group_by", "set_stats", "pause",
    )
    for name in (short, f"ansible.builtin.{short}", f"ansible.legacy.{short}")
)  # fmt: skip


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleet_counts"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.hosts = {}
        self.tasks = {}  # task name -> seconds from its start to the next task's (linear strategy)
        self._current = None

    def _close_task(self, now):
        if self._current:
            name, start = self._current
            self.tasks[name] = self.tasks.get(name, 0.0) + now - start

    def v2_playbook_on_task_start(self, task, is_conditional):
        now = time.monotonic()
        self._close_task(now)
        self._current = (task.get_name(), now)

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _count(self, result, status):
        host = self.hosts.setdefault(
            result._host.get_name(), {"tasks": 0, "skipped": 0, "remote": 0, "changed": 0, "failed": 0}
        )
        host["tasks"] += 1
        if status == "skipped":
            host["skipped"] += 1
            return
        if status in ("failed", "unreachable"):
            host["failed"] += 1
        elif result._result.get("changed"):
            host["changed"] += 1
        task = result._task
        if task.action not in LOCAL_ACTIONS and task.delegate_to in (None, "", result._host.get_name()):
            host["remote"] += 1

    def v2_runner_on_ok(self, result):
        self._count(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._count(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._count(result, "unreachable")

    # A loop reports each item and then the task once: the task is what is counted.
    def v2_playbook_on_stats(self, stats):
        self._close_task(time.monotonic())
        path = os.environ.get("SIPGUARD_FLEET_COUNTS")
        if path:
            with open(path, "w", encoding="utf-8") as out:
                json.dump({"hosts": self.hosts, "tasks": self.tasks}, out)
