"""No module imports its caller, directly or around: the files of each Rust crate, with an arrow
from a file to every file whose items it names (`use crate::…`, `super::…`, inline
`crate::a::b` paths; an item re-exported with `pub use` counts as its defining file), form no
circle. A parent's `mod` and `pub use` lines are its table of contents, not arrows; a file's
`#[cfg(test)]` module is left out (it may name anything of its file's)."""

import re
from pathlib import Path

from conftest import ROOT

CRATE_DIRS = ("shared", "functions", "bench")
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> [[a, b], [a, c, d], [a, c, e]] (aliases and globs dropped)."""
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+" + IDENT, "", tree))
    if "{" not in tree:
        return [[p for p in tree.split("::") if p and p != "*"]]
    head, rest = tree.split("{", 1)
    inner = rest[: rest.rfind("}")]
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    prefix = [p for p in head.split("::") if p]
    paths = []
    for part in filter(None, parts):
        for sub in expand_use(part):
            paths.append(prefix + [s for s in sub if s != "self"])
    return paths


class Crate:
    def __init__(self, src):
        self.files = {}  # module path (tuple) -> file
        self.reexports = {}  # (module path, name) -> module path + [name]
        for root in ("lib.rs", "main.rs"):
            if (src / root).exists():
                self.walk(src / root, ())
                break

    def walk(self, file, path):
        self.files[path] = file
        text = production(file.read_text())
        base = file.parent if file.name in ("lib.rs", "main.rs", "mod.rs") else file.with_suffix("")
        for name in re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", text, re.M):
            for child in (base / f"{name}.rs", base / name / "mod.rs"):
                if child.exists():
                    self.walk(child, path + (name,))
        for tree in re.findall(r"^\s*pub(?:\([^)]*\))?\s+use\s+([^;]+);", text, re.M):
            for p in expand_use(tree):
                if p:
                    self.reexports[(path, p[-1])] = self.absolute(path, p)

    def absolute(self, here, names):
        """A path as written in module `here`, made absolute (a list of names)."""
        names = list(names)
        if names[:1] == ["crate"]:
            return names[1:]
        base = list(here)
        if names[:1] == ["self"]:
            names = names[1:]
        while names[:1] == ["super"]:
            base, names = base[:-1], names[1:]
        if names and tuple(base + names[:1]) in self.files:
            return base + names
        return None  # another crate, std, or a local name

    def file_of(self, names, seen=()):
        """The file that defines what an absolute path names."""
        for cut in range(len(names), -1, -1):
            module = tuple(names[:cut])
            if module in self.files:
                rest = names[cut:]
                target = self.reexports.get((module, rest[0])) if rest else None
                if target is not None and tuple(target) not in seen:
                    return self.file_of(target, seen + (tuple(target),))
                return self.files[module]
        return None

    def arrows(self):
        out = {}
        for path, file in self.files.items():
            text = production(file.read_text())
            used = []
            for tree in re.findall(r"^\s*use\s+([^;]+);", text, re.M):
                used += expand_use(tree)
            used += [p.split("::") for p in re.findall(r"\b((?:crate|super)(?:::" + IDENT + ")+)", text)]
            targets = set()
            for names in used:
                absolute = self.absolute(path, names)
                target = self.file_of(absolute) if absolute is not None else None
                if target is not None and target != file:
                    targets.add(target)
            out[file] = targets
        return out


def production(text):
    """A file's text without its test module (by convention at the bottom) and comments."""
    text = re.split(r"^#\[cfg\(test\)\]\s*\n\s*mod\s+\w+\s*\{", text, maxsplit=1, flags=re.M)[0]
    return re.sub(r"//[^\n]*", "", text)


def circles(arrows):
    """The strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in arrows.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(arrows):
        if v not in index:
            visit(v)
    return found


def crates(root):
    for manifest in sorted(root.glob("*/**/Cargo.toml")):
        if manifest.parts[len(root.parts)] in CRATE_DIRS and (manifest.parent / "src").is_dir():
            yield manifest.parent / "src"


def test_no_crate_has_an_import_circle():
    sources = list(crates(ROOT))
    assert len(sources) >= 7, sources
    found = []
    for src in sources:
        crate = Crate(src)
        assert len(crate.files) > 1, src
        found += [[str(f.relative_to(ROOT)) for f in c] for c in circles(crate.arrows())]
    assert not found, f"import circles: {found}"


def test_a_circle_is_found(tmp_path):
    """The check can fail: two files that name each other's items, one of them through a
    re-export and one inside braces under an alias, are reported; a parent's `pub use` is not
    an arrow."""
    src = tmp_path / "src"
    (src / "jobs").mkdir(parents=True)
    (src / "lib.rs").write_text("pub mod keys;\npub mod jobs;\npub use keys::Key;\n")
    (src / "keys.rs").write_text("use crate::jobs::{run::Run as Job, other};\npub struct Key;\n")
    (src / "jobs" / "mod.rs").write_text("pub mod run;\npub mod other;\npub use run::Run;\n")
    (src / "jobs" / "run.rs").write_text("pub struct Run(crate::Key);\n")
    (src / "jobs" / "other.rs").write_text("use super::Run;\n#[cfg(test)]\nmod tests {\n use crate::keys::Key;\n}\n")
    crate = Crate(src)
    found = circles(crate.arrows())
    assert [sorted(f.name for f in c) for c in found] == [["keys.rs", "run.rs"]], found
