"""Counters, readable locally as JSON (control socket) or Prometheus text (loopback HTTP)."""

from __future__ import annotations

COUNTERS = {
    "received": "requests received (all transports)",
    "dropped_unknown": "requests from unknown sources dropped silently (SS_REPLY_UNAUTHORIZED=Off)",
    "dropped_scanner": "requests dropped for a scanner User-Agent",
    "dropped_suspended": "requests dropped from suspended sources",
    "dropped_rate": "requests dropped by the per-source rate limit",
    "dropped_malformed": "requests too broken to answer",
    "dropped_oversize": "messages over max_message_bytes",
    "replied_challenge": "401/407 challenges sent",
    "replied_forbidden": "403 sent to unknown sources",
    "replied_error": "4xx/5xx sent for malformed or unsupported requests",
    "replied_ok": "2xx sent",
    "replied_other": "other responses sent",
    "auth_success": "successful digest authentications",
    "auth_failure": "failed digest authentications",
    "auth_throttled": "digest answers not checked: too many recent failures for that account name",
    "suspensions": "sources suspended after SS_AUTHENTICATION_MAX_RETRY failures",
    "block_hook_calls": "ipset add commands run",
    "block_hook_errors": "ipset add commands that failed or were skipped (queue full)",
    "tcp_connections_refused": "TCP connections refused at tcp_max_connections",
    "tcp_connections_refused_source": "TCP connections refused at tcp_max_per_source or tcp_max_per_gateway",
    "tcp_connections_evicted": "silent TCP connections closed at tcp_max_connections for a known source",
    "tcp_connections_timed_out": "TCP connections closed at tcp_first_message_seconds or tcp_idle_seconds",
    "reloads": "successful configuration reloads",
    "internal_errors": "requests that hit a bug and were dropped (see the log)",
    "reload_failures": "refused configuration reloads",
}


class Stats:
    def __init__(self):
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.gauges: dict[str, float] = {}

    def snapshot(self) -> dict[str, float]:
        return {**self.counts, **self.gauges}

    def prometheus(self, values: dict[str, float] | None = None) -> str:
        """Prometheus text for `values` (default: this object's counters and gauges)."""
        values = self.snapshot() if values is None else values
        lines = []
        for name, help_text in COUNTERS.items():
            metric = f"sipresponder_{name}_total"
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
            lines.append(f"{metric} {values.get(name, 0)}")
        for name in sorted(self.gauges):
            value = values.get(name, 0)
            lines += [f"# TYPE sipresponder_{name} gauge", f"sipresponder_{name} {value}"]
        return "\n".join(lines) + "\n"
