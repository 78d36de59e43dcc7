#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes the public names of the installed headers as JSON.

The headers are parsed by clang (-ast-dump=json), not by pattern matching,
so every declaration counts as the compiler sees it. The C headers (.h) are
parsed together as C, the C++ headers (.hh) together as C++20. The system
headers they include are first compiled into a precompiled header, whose
declarations clang then leaves out of the dump: what is dumped is little
more than our own declarations, and it is read in a fraction of a second.

For each header, the output lists (see check-man-coverage.py for the rules
that use them):

  functions  functions at namespace scope (C, or C++ in namespace
             ipcbarrier, except ipcbarrier::detail), qualified
  types      types at namespace scope, qualified
  members    public member functions by qualified class name
  constants  variables and constants at namespace scope, unscoped
             enumerators
  macros     object-like macros
  function_macros  function-like macros
  symbols    the mangled names that the header's library must export: every
             function, member function and variable it declares that is
             neither inline, constexpr, a template nor internal (also those
             in ipcbarrier::detail, since inline code may call them)
  classes    the mangled names (N...E) of the classes it defines, whose
             vtable and typeinfo the library may export

usage: public-names.py --clang CLANG --include DIR... [--cflags=FLAG]...
                       --output FILE HEADER...

Each --cflags passes one more argument to clang, such as the -I of a library
that a header includes (GLib's for barrier-glib.h).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

NAMESPACE = "ipcbarrier"
PRIVATE_NAMESPACES = {"detail"}

LANGUAGES = {
    # suffix: (clang -x for sources, for precompiled headers, standard)
    ".h": ("c", "c-header", "-std=gnu11"),
    ".hh": ("c++", "c++-header", "-std=c++20"),
}


class Header:
    def __init__(self):
        self.functions = set()
        self.types = set()
        self.constants = set()
        self.members = {}  # qualified class -> set of member names
        self.symbols = set()
        self.classes = set()

    def as_json(self, macros, function_macros):
        return {
            "functions": sorted(self.functions),
            "types": sorted(self.types),
            "members": {cls: sorted(m) for cls, m in sorted(self.members.items())},
            "constants": sorted(self.constants),
            "macros": sorted(macros),
            "function_macros": sorted(function_macros),
            "symbols": sorted(self.symbols),
            "classes": sorted(self.classes),
        }


def mangled_class(scope):
    return "N" + "".join(f"{len(part)}{part}" for part in scope) + "E"


def has_body(node):
    return any(c.get("kind") == "CompoundStmt" for c in node.get("inner", []))


def needs_export(node, member):
    """Whether a function or variable declaration names a symbol that its
    library must define (and so export)."""
    if node.get("isImplicit") or node.get("inline") or node.get("constexpr"):
        return False
    if node.get("storageClass") == "static" and not member:
        return False  # internal linkage; for a member, static means no object
    if node.get("explicitlyDefaulted") or node.get("explicitlyDeleted") or node.get("pure"):
        return False
    if has_body(node):
        return False  # defined in the header, so inline
    return "mangledName" in node


class Collector:
    def __init__(self, header_paths):
        self.headers = {os.path.realpath(h): Header() for h in header_paths}
        self.current_file = None

    def _note_loc(self, loc):
        if not isinstance(loc, dict):
            return
        for key in ("spellingLoc", "expansionLoc"):
            if key in loc:
                self._note_loc(loc[key])
        if "file" in loc:
            self.current_file = os.path.realpath(loc["file"])

    def visit(self, node, scope, record=None, access=None, templated=False):
        # clang prints a file name only when it changes, in document order:
        # loc first, then range. The node's own file is the one after loc.
        # So every node is walked, even those that are not collected.
        self._note_loc(node.get("loc"))
        header = self.headers.get(self.current_file)
        rng = node.get("range", {})
        self._note_loc(rng.get("begin"))
        self._note_loc(rng.get("end"))

        kind = node.get("kind")
        name = node.get("name", "")
        qualified = "::".join(scope + [name])
        anonymous = "" in scope  # an anonymous namespace or record
        wanted = (
            header is not None
            and not node.get("isImplicit", False)
            and bool(name)
            and not name.startswith("_")
            and not PRIVATE_NAMESPACES.intersection(scope)
            and not anonymous
        )
        exported = header is not None and not templated and not anonymous

        if kind in ("FunctionDecl", "CXXMethodDecl", "CXXConstructorDecl", "CXXDestructorDecl",
                    "VarDecl") and exported and needs_export(node, record is not None):
            header.symbols.add(node["mangledName"])

        if record is not None:
            if kind == "CXXMethodDecl" and access == "public" and wanted:
                if not name.startswith("operator"):
                    header.members.setdefault(record, set()).add(name)
        elif kind == "FunctionDecl" and wanted:
            header.functions.add(qualified)
        elif kind in ("TypedefDecl", "TypeAliasDecl") and wanted:
            header.types.add(qualified)
        elif kind == "EnumDecl" and header is not None:
            if wanted:
                header.types.add(qualified)
            if not node.get("scopedEnumTag") and not PRIVATE_NAMESPACES.intersection(scope):
                self._enum(node, header)
                return
        elif kind == "VarDecl" and wanted:
            header.constants.add(name)

        inner = node.get("inner", [])
        if kind in ("FunctionDecl", "CXXMethodDecl", "CXXConstructorDecl", "CXXDestructorDecl"):
            # Locals of an inline body are not public names: walk the body
            # only to keep the file tracking right.
            for child in inner:
                self.visit(child, scope + [name], "", None, True)
            return
        if kind in ("CXXRecordDecl", "RecordDecl") and node.get("completeDefinition"):
            if wanted and record is None:
                header.types.add(qualified)
            if exported and kind == "CXXRecordDecl" and name:
                header.classes.add(mangled_class(scope + [name]))
            acc = "public" if node.get("tagUsed") in ("struct", "union") else "private"
            for child in inner:
                if child.get("kind") == "AccessSpecDecl":
                    acc = child.get("access", acc)
                self.visit(child, scope + [name], qualified if wanted else "", acc, templated)
            return
        if kind in ("FunctionTemplateDecl", "ClassTemplateDecl", "VarTemplateDecl",
                    "ClassTemplatePartialSpecializationDecl"):
            templated = True
        if kind == "NamespaceDecl":
            scope = scope + [name]
        for child in inner:
            self.visit(child, scope, record, access, templated)

    def _enum(self, node, header):
        for child in node.get("inner", []):
            self.visit(child, [], "", None, True)  # keeps the file tracking right
            if child.get("kind") == "EnumConstantDecl":
                header.constants.add(child["name"])


def system_includes(headers, all_headers):
    """The system headers that headers include, directly or through the
    other headers of all_headers, in the order they are first included."""
    by_name = {os.path.basename(h): h for h in all_headers}
    names, seen = [], set()

    def scan(header):
        if header in seen:
            return
        seen.add(header)
        with open(header, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"\s*#\s*include\s*<([^>]+)>", line)
                if not m:
                    continue
                if m.group(1).startswith(NAMESPACE + "/"):
                    ours = by_name.get(m.group(1)[len(NAMESPACE) + 1:])
                    if ours:
                        scan(ours)
                elif m.group(1) not in names:
                    names.append(m.group(1))

    for header in headers:
        scan(header)
    return names


def dump_ast(clang, flags, suffix, headers, system_headers, workdir):
    """The AST of one translation unit that includes every header, with the
    system headers taken from a precompiled header."""
    lang, header_lang, std = LANGUAGES[suffix]
    base = os.path.join(workdir, "names" + suffix.replace(".", "-"))
    prelude = base + "-prelude" + suffix
    with open(prelude, "w", encoding="utf-8") as f:
        f.writelines(f"#include <{h}>\n" for h in system_headers)
    pch = prelude + ".pch"
    use_pch = ["-include-pch", pch]
    if subprocess.run([clang, "-x", header_lang, std, *flags, prelude, "-o", pch]).returncode:
        # Correct, only slower: the system headers are then dumped too.
        print("public-names: the system headers do not precompile on their own;"
              " parsing without", file=sys.stderr)
        use_pch = []
    unit = base + "-unit" + suffix
    with open(unit, "w", encoding="utf-8") as f:
        f.writelines(f'#include "{os.path.realpath(h)}"\n' for h in headers)
    out = subprocess.run(
        [clang, "-x", lang, std, *flags, *use_pch, "-fsyntax-only",
         "-Xclang", "-ast-dump=json", unit],
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    return json.loads(out)


def macros(header):
    """The macros a header leaves defined: one it #undefs again is its own
    helper, not a public name."""
    plain, function_like = set(), set()
    with open(header, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*#\s*define\s+([A-Za-z_][A-Za-z0-9_]*)(\()?", line)
            if m and not m.group(1).startswith("_"):
                (function_like if m.group(2) else plain).add(m.group(1))
            m = re.match(r"\s*#\s*undef\s+([A-Za-z_][A-Za-z0-9_]*)", line)
            if m:
                plain.discard(m.group(1))
                function_like.discard(m.group(1))
    return plain, function_like


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clang", required=True)
    ap.add_argument("--include", action="append", required=True)
    ap.add_argument("--cflags", action="append", default=[])
    ap.add_argument("--output", required=True)
    ap.add_argument("headers", nargs="+")
    args = ap.parse_args()

    unknown = [h for h in args.headers if not h.endswith(tuple(LANGUAGES))]
    if unknown:
        sys.exit(f"public-names: neither .h nor .hh: {' '.join(unknown)}")

    flags = [f"-I{d}" for d in args.include] + args.cflags
    result = {}
    with tempfile.TemporaryDirectory() as workdir:
        for suffix in LANGUAGES:
            headers = [h for h in args.headers if h.endswith(suffix)]
            if not headers:
                continue
            system_headers = system_includes(headers, args.headers)
            col = Collector(headers)
            col.visit(dump_ast(args.clang, flags, suffix, headers, system_headers, workdir), [])
            for path in headers:
                name = os.path.basename(path)
                if name in result:
                    sys.exit(f"public-names: two headers named {name}")
                result[name] = col.headers[os.path.realpath(path)].as_json(*macros(path))
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump({"headers": result}, f, indent=1, sort_keys=True)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
