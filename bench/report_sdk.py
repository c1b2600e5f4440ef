"""BENCHMARKS.md's section on the client SDKs (docs/clients.md): the Python SDK's capture() CPU
against posthog-python's, with the peak RSS of a client holding a full default queue
(bench/sdk_python.py), and the Rust SDK's end-to-end throughput against wrk on the same server
(bench/sdk_throughput.py)."""

from reportlib import error_note, failed, num, span, table


def python_md(s, goals):
    goal = "Python SDK: CPU per `capture()` ≤ 1.0× posthog-python's"
    if failed(s):
        goals.append((goal, "n/a", "n/a", None, None))
        return error_note("The Python SDK benchmark", s)
    ours, theirs = s["capture_cpu_us"]["ours"], s["capture_cpu_us"]["posthog"]
    goals.append((goal, f"{ours['median']:.1f} µs", f"posthog {s['versions']['posthog']}: "
                  f"{theirs['median']:.1f} µs", s["ratio"], s["ratio"] <= s["goal_ratio"]))
    full = s["full_default_queue"]
    p_ours, p_theirs = s["process_cpu_us"]["ours"], s["process_cpu_us"]["posthog"]
    rows = [["eis-client", span(ours, 1), span(p_ours, 1)],
            [f"posthog {s['versions']['posthog']}", span(theirs, 1), span(p_theirs, 1)]]
    return f"""`bench/sdk_python.py`: {num(s['events_per_round'])} calls of `capture()` per round,
{s['rounds']} rounds alternating which client goes first, the same event (the shape of
`events/plan_generated.json`) for both, each client pointed at a closed port on 127.0.0.1 (no
request leaves the machine), Python {s['versions']['python']}. "Caller's thread" is the CPU of
the thread calling `capture()` (`time.thread_time`): what capture costs the application. "Whole
process" adds the clients' sender threads (posthog encodes JSON there; eis-client in
`capture()`, to bound its queue in bytes).

{table(["client", "caller's thread µs per capture", "whole process µs per capture"], rows)}

Ratio, caller's thread: **{s['ratio']:.2f}×**; whole process: {s['process_ratio']:.2f}×.

**Memory.** A client with the default settings, filled until `capture()` refused
(`{full['bound']}` bound): {num(full['events_held'])} events of {num(full['event_bytes'])} B held,
peak RSS **{full['rss_peak_mib']:.1f} MiB** ({full['rss_before_mib']:.1f} MiB before capturing).
"""
