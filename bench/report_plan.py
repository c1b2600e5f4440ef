"""BENCHMARKS.md's section on the tracking plan's cost (issue 28), from bench/plan.py's figures
(the criterion bench shared/contract/benches/plan.rs): validation CPU per event with a plan of
50 types against no plan, on the same events in one run; an event failing its schema in
quarantine mode; and the plan's load (parse of its JSON) and compile time."""

from reportlib import error_note, failed, num, span, table

GOAL = "Validation CPU per event with a 50-type plan ≤ 1.5× without (the same events, one run)"
FAILING = "An event failing its schema in quarantine mode, CPU per event (reported)"
LOAD = "Plan load for 50 types: JSON parse + compile (reported)"
LIMIT = 1.5


def plan_md(p, goals):
    if failed(p):
        for goal in (GOAL, FAILING, LOAD):
            goals.append((goal, "n/a", "", None, None))
        return error_note("The tracking plan benchmark", p)
    carried = f" (carried over from the run of {p['carried_from']})" if p.get("carried_from") else ""
    s, b = p["setup"], p["benches"]
    med = lambda name: b[name]["ns_per_iter"]["median"]  # noqa: E731
    no, withp = med("plan_50_types/no_plan"), med("plan_50_types/with_plan")
    fno, fq = med("plan_50_failing/no_plan"), med("plan_50_failing/quarantined")
    parse, compile_ = med("plan_50_load/parse"), med("plan_50_load/compile")
    r, (rlo, rhi) = p["ratio"]["median"], p["ratio"]["ci95"]
    fr = p["failing_ratio"]["median"]
    # The verdict is the medians' ratio; when the two medians' 95% intervals allow a ratio on
    # either side of the limit, the noise is said beside it (the verdict stays the medians').
    straddles = rlo <= LIMIT < rhi
    goals.append((GOAL, f"{num(withp)} ns/event with the plan"
                  + (f"; the 95% intervals allow {rlo:.2f}–{rhi:.2f}×, on both sides of the limit"
                     if straddles else ""),
                  f"no plan: {num(no)} ns/event", r, r <= LIMIT))
    goals.append((FAILING, f"{num(fq)} ns/event", f"no plan, the same events: {num(fno)} ns/event",
                  fr, None))
    goals.append((LOAD, f"{(parse + compile_) / 1e6:.1f} ms (parse {parse / 1e6:.2f} ms, "
                  f"compile {compile_ / 1e6:.1f} ms)", "", None, None))

    def row(label, name, ref=None):
        x = b[name]
        lo, hi = x["criterion_median_ci95_ns"]
        rate = 1e9 / x["ns_per_iter"]["median"]
        return [label, span(x["ns_per_iter"]), f"{num(lo)}–{num(hi)}", num(rate),
                f"{x['ns_per_iter']['median'] / med(ref):.2f}×" if ref else ""]

    rows = [
        row("no plan: `validate_event` (+ an empty plan's check)", "plan_50_types/no_plan"),
        row("**with the plan**: `validate_event` + `Plan::check`, every event matching",
            "plan_50_types/with_plan", "plan_50_types/no_plan"),
        row("failing events, no plan", "plan_50_failing/no_plan"),
        row("failing events, with the plan: quarantined (violations collected)",
            "plan_50_failing/quarantined", "plan_50_failing/no_plan"),
    ]
    load_rows = [
        ["`serde_json::from_str::<PlanDocument>` of the plan's JSON", span(b["plan_50_load/parse"]["ns_per_iter"], 2, 1e-6)],
        ["`Plan::compile` (every schema)", span(b["plan_50_load/compile"]["ns_per_iter"], 2, 1e-6)],
        ["load in all: parse + compile (medians)", f"{(parse + compile_) / 1e6:.2f}"],
    ]
    samples = b["plan_50_types/with_plan"]["samples"]
    return f"""Criterion, one thread (`shared/contract/benches/plan.rs`){carried}: a plan of
**{s['types']} event types** generated in code (fixed seed): {s['versions']} versions (some types keep
a deprecated 1-0-0 beside the active 1-1-0), {s['schemas']} schemas: every payload an object of
{s['properties_min']}–{s['properties_max']} properties of mixed kinds (strings with `maxLength`, `enum` or
`pattern`, integers with `minimum`/`maximum`, numbers, booleans, a nested object, an array of
objects, a string array with `uniqueItems`, a nullable string), `required`, mostly
`additionalProperties: false`; {s['with_context_schema']} versions with a `context` schema and
{s['with_metrics_schema']} with a `metrics` schema; {num(s['document_bytes'])} B of JSON. The events:
{num(s['events'])} pre-generated ({num(s['event_bytes_mean'])} B each on average), a skewed mix over the
types (weights 1/rank, every type present), each matching its type's newest version, one in
ten naming it in `schema`; each measurement cycles through them in the same order. Per event:
`validate_event` then the plan's check, as at ingest. The failing events ({num(s['failing_events'])})
are of the {s['quarantine_types']} quarantine-mode types, each with one fault (a required property
missing, one of the wrong type, or one the schema does not name).

ns per event: median [min–max] of {samples} criterion samples per row, and criterion's 95%
interval of the median; the ratio is this run's medians, with-plan / no-plan (the 95%
intervals allow {rlo:.2f}–{rhi:.2f}×). The machine is shared with other builds: a row's min–max
shows the noise; the two rows of a ratio ran one after the other in the same process.

{table(["what", "ns per event", "criterion median, 95% CI", "events/s per core", "ratio to no plan"], rows)}

{table(["loading the plan", "ms"], load_rows)}
"""
