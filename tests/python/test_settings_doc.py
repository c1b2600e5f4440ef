"""Every `EIS_*` setting the functions read is documented once per table that lists it, with the
default the code has, and every documented one is read somewhere. Offline: it reads the Rust
sources and the Markdown, builds nothing.

The rule, kept small so that it can be trusted:

- **Code.** The functions read their settings only through `eis_runtime::config`'s readers,
  each called with the variable's name as a string literal: `required("EIS_X")`,
  `optional("EIS_X")` (optionally `?.unwrap_or(DEFAULT)`), `or_default("EIS_X", DEFAULT)`,
  `millis("EIS_X", DEFAULT)` and `within("EIS_X", DEFAULT, LO, HI)`. Those calls are found in
  every `*.rs` of functions/ and shared/ (the deployed code; bench/ and tests/ set variables,
  they do not define settings). DEFAULT is read when it is one of: an integer expression of
  literals, `*`, `+`, `-`, `<<` and UPPER_CASE constants defined by `const NAME: T = ...;` in
  those sources; a string (`"x".to_string()`, `"x".into()`, `String::new()`); `d.field`
  where `let d = Type::default();` in the same file, read from `impl Default for Type`; or a
  local variable that holds another setting (`let retention_days = within("EIS_RETENTION_DAYS",
  ...)`), which is documented by that setting's name. Any other DEFAULT fails the test with
  the expression: extend the rule, or write the default in one of these forms. A variable
  read both as `required` and otherwise is optional with a condition (e.g. the application's
  secret, required only beside the migrator's): its default is the other readings'.
- **Docs.** A setting is documented by a row of a Markdown table in docs/*.md whose header
  has a `default` column and in which one cell starts with the name in backticks (what follows
  it in that cell, such as the accepted values, is ignored). The default cell is read as:
  `required`; empty, `empty` or a dash (unset: `optional` reads an empty value as unset, so the
  two are one); another setting's name; a number, in digits that may be grouped by spaces,
  with an optional `KiB`/`MiB`/`GiB`, or with `s` / `ms` when the name ends in `_SECS` /
  `_MS`; a parenthesis after the value is a gloss and is ignored; anything else is compared
  as text (backticks removed).
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUST_DIRS = ("functions", "shared")
READERS = ("required", "optional", "or_default", "millis", "within")
REQUIRED, UNSET = "required", ""
UNITS = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


class Setting(str):
    """A default that is another setting's value."""

    def __repr__(self):
        return f"the value of {str(self)}"


def rust_files():
    return sorted(p for d in RUST_DIRS for p in (ROOT / d).rglob("*.rs"))


def line_of(text, index):
    return text.count("\n", 0, index) + 1


def call_arguments(text, start):
    """The top-level arguments of the call whose '(' is at `start`, and the index after ')'."""
    args, depth, current, i = [], 0, [], start + 1
    while True:
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                args.append("".join(current).strip())
                return [a for a in args if a], i + 1
            depth -= 1
        elif c == "," and depth == 0:
            args.append("".join(current).strip())
            current = []
            i += 1
            continue
        elif c == '"':
            end = text.index('"', i + 1)
            current.append(text[i:end + 1])
            i = end + 1
            continue
        current.append(c)
        i += 1


def constants(sources):
    found = {}
    for text in sources.values():
        for m in re.finditer(r"\bconst ([A-Z][A-Z0-9_]*): [\w<>]+ = ([^;]+);", text):
            found[m.group(1)] = m.group(2).strip()
    return found


def default_impl_field(sources, type_name, field):
    for text in sources.values():
        m = re.search(r"impl Default for " + type_name + r" \{(.*?)\n\}", text, re.S)
        if m:
            f = re.search(r"\b" + field + r":\s*([^,\n]+),", m.group(1))
            if f:
                return f.group(1).strip()
    return None


def evaluate(expr, text, sources, consts):
    """The value of a default expression under the rule above; raises ValueError otherwise."""
    expr = " ".join(expr.split())
    if expr == "String::new()":
        return ""
    m = re.fullmatch(r'"([^"]*)"\.(?:to_string|into)\(\)|String::from\("([^"]*)"\)', expr)
    if m:
        return m.group(1) if m.group(1) is not None else m.group(2)
    m = re.fullmatch(r"(\w+)\.(\w+)", expr)
    if m:
        owner = re.search(r"let " + m.group(1) + r" = (?:[\w:]+::)?(\w+)::default\(\);", text)
        field = owner and default_impl_field(sources, owner.group(1), m.group(2))
        if field is None:
            raise ValueError(expr)
        return evaluate(field, text, sources, consts)
    m = re.fullmatch(r"[a-z_][a-z0-9_]*", expr)
    if m:
        reader = re.search(r"let " + expr + r" = (?:" + "|".join(READERS) + r")\(\s*\"(EIS_[A-Z0-9_]+)\"", text)
        if reader is None:
            raise ValueError(expr)
        return Setting(reader.group(1))

    def constant(c):
        name = c.group(0)
        if name not in consts:
            raise ValueError(expr)
        return f"({evaluate(consts[name], text, sources, consts)})"

    arithmetic = re.sub(r"\b[A-Z][A-Z0-9_]*\b", constant, expr)
    if not re.fullmatch(r"[\d_ ()*+\-<]+", arithmetic) or "<" in arithmetic.replace("<<", ""):
        raise ValueError(expr)
    return eval(arithmetic.replace("_", ""), {"__builtins__": {}})  # digits and operators only


def code_settings():
    """{name: [(value, "file:line", expression)]} of every reader call; unreadable defaults
    as (None, place, expression)."""
    sources = {p: p.read_text() for p in rust_files()}
    consts = constants(sources)
    found = {}
    call = re.compile(r"\b(" + "|".join(READERS) + r')(?:::<[^>]*>)?(\()\s*"(EIS_[A-Z0-9_]+)"')
    for path, text in sources.items():
        for m in call.finditer(text):
            reader, name = m.group(1), m.group(3)
            args, after = call_arguments(text, m.start(2))
            place = f"{path.relative_to(ROOT)}:{line_of(text, m.start())}"
            if reader == "required":
                expr = REQUIRED
            elif reader == "optional":
                fallback = re.match(r"\?\s*\.unwrap_or\(", text[after:])
                expr = call_arguments(text, after + fallback.end() - 1)[0][0] if fallback else UNSET
            else:
                expr = args[1]
            try:
                value = expr if expr in (REQUIRED, UNSET) else evaluate(expr, text, sources, consts)
            except ValueError:
                value = None
            found.setdefault(name, []).append((value, place, expr))
    return found


def cells(line):
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def doc_default(name, text):
    text = re.sub(r"\s*\(.*\)$", "", text.replace("`", "").strip())
    if text.lower() == REQUIRED:
        return REQUIRED
    if text.lower() in ("", "empty", "—", "-", "–"):
        return UNSET
    if re.fullmatch(r"EIS_[A-Z0-9_]+", text):
        return Setting(text)
    unit = r"(?: (KiB|MiB|GiB)" + (r"| s" if name.endswith("_SECS") else "") + (r"| ms" if name.endswith("_MS") else "") + ")?"
    m = re.fullmatch(r"(\d{1,3}(?: \d{3})+|\d+)" + unit, text)
    if m:
        return int(m.group(1).replace(" ", "")) * UNITS.get(m.group(2), 1)
    return text


def doc_settings():
    """{name: [(value, "file:line", cell text)]} of every settings-table row in docs/*.md."""
    found = {}
    for path in sorted((ROOT / "docs").glob("*.md")):
        lines = path.read_text().splitlines()
        default_col = None
        for i, line in enumerate(lines):
            if not line.startswith("|"):
                default_col = None
                continue
            row = cells(line)
            if i + 1 < len(lines) and re.fullmatch(r"\|?[\s:|-]+", lines[i + 1]) and not re.fullmatch(r"\|?[\s:|-]+", line):
                lowered = [c.lower() for c in row]
                default_col = lowered.index("default") if "default" in lowered else None
                continue
            if default_col is None or default_col >= len(row):
                continue
            for cell in row:
                m = re.match(r"`(EIS_[A-Z0-9_]+)`(?:$|[\s(])", cell)
                if m:
                    name = m.group(1)
                    found.setdefault(name, []).append(
                        (doc_default(name, row[default_col]), f"{path.relative_to(ROOT)}:{i + 1}", row[default_col]))
                    break
    return found


def show(value):
    return "required" if value == REQUIRED else "unset/empty" if value == UNSET else repr(value)


def defaults(sites):
    """The readings that give the setting's default: the non-`required` ones when any."""
    optional = [site for site in sites if site[0] != REQUIRED]
    return optional or sites


def test_the_rule_reads_every_default_in_the_code():
    unreadable = [f"{name}: the default `{expr}` at {place} is not one the rule reads (see the top of {Path(__file__).name})"
                  for name, sites in code_settings().items() for value, place, expr in sites if value is None]
    assert not unreadable, "\n".join(unreadable)


def test_a_setting_read_in_several_places_has_one_default():
    split = [f"{name}: " + "; ".join(f"{show(v)} at {place}" for v, place, _ in sites)
             for name, sites in code_settings().items() if len({repr(v) for v, _, _ in defaults(sites)}) > 1]
    assert not split, "settings read with different defaults:\n" + "\n".join(split)


def test_every_setting_the_code_reads_is_documented():
    documented = doc_settings()
    missing = [f"{name}: read at {place} (default {show(value)}), in no settings table of docs/*.md"
               for name, sites in sorted(code_settings().items()) if name not in documented
               for value, place, _ in defaults(sites)[:1]]
    assert not missing, "\n".join(missing)


def test_every_documented_setting_is_read_by_the_code():
    code = code_settings()
    unknown = [f"{name}: documented at {place}, read nowhere in {', '.join(RUST_DIRS)}"
               for name, rows in sorted(doc_settings().items()) if name not in code for _, place, _ in rows]
    assert not unknown, "\n".join(unknown)


def test_every_documented_default_is_the_code_default():
    code = code_settings()
    wrong = []
    for name, rows in sorted(doc_settings().items()):
        if name not in code:
            continue
        value, place, expr = defaults(code[name])[0]
        for doc_value, doc_place, cell in rows:
            if value is not None and doc_value != value:
                wrong.append(f"{name}: {doc_place} documents the default {cell!r} ({show(doc_value)}), "
                             f"the code has {show(value)} (`{expr}` at {place})")
    assert not wrong, "\n".join(wrong)
