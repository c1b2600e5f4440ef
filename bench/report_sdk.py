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


def rust_md(s, goals):
    goal = "Rust SDK: end-to-end events/s, batches of 500, ≥ 0.9× wrk on the same server"
    if failed(s):
        goals.append((goal, "n/a", "n/a", None, None))
        return error_note("The Rust SDK benchmark", s)
    parts = []
    for backend, b in s["backends"].items():
        configs, ratios = b["configs"], b["ratio"]
        best = max(ratios, key=ratios.get)
        reference = next(name for name in configs if name.endswith("_sent_at"))
        goals.append((f"{goal} (SQS side: {backend})",
                      f"{best}: {num(configs[best]['events_per_s']['median'])} events/s",
                      f"{reference}: {num(configs[reference]['events_per_s']['median'])} events/s",
                      ratios[best], ratios[best] >= s["goal_ratio"]))
        rows = [[name, span(c["events_per_s"]), span(c["client_cpu_ms_per_event"], 4),
                 span(c["ingest_cpu_ms_per_event"], 4),
                 f"{ratios[name]:.2f}×" if name in ratios else "",
                 span(c["capture_us_p99"], 1) if "capture_us_p99" in c else ""]
                for name, c in configs.items()]
        parts.append(f"**SQS side: {backend}**\n\n" + table(
            ["client", "events/s", "client CPU ms/event", "ingest CPU ms/event",
             "ratio to wrk (with EIS-Sent-At)", "capture() p99 µs"], rows))
    return f"""`bench/sdk_throughput.py`: the release `ingest` in local mode on a database of the bench's
own; per round, wrk posting the batch-500 body on 8 connections (with and without the
`EIS-Sent-At` header the SDK always sends) against `eis-bench sdk-throughput`, the Rust SDK
capturing the same events into batches of 500 ({s['runs']} round(s) of {s['duration_s']} s, rounds
interleaved). The SDK configurations: `sdk_f8` 8 requests in flight (wrk's 8 connections),
`sdk_f8_gzip` the same with its default gzip, `sdk_f4` its default of 4 in flight.

""" + "\n\n".join(parts) + "\n"
