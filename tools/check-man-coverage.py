#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fails when a public name of an installed header has no man page.

The headers are parsed by clang (-ast-dump=json), not by pattern matching,
so every declaration counts as the compiler sees it. The rules:

  * a function or type at namespace scope (C, or C++ in namespace
    ipcbarrier, except ipcbarrier::detail) is named on an .Nm line of some
    page (C++ names qualified, "ipcbarrier::fd_set_cloexec"); a type may
    instead appear on a .Vt line;
  * a public member function of a documented class appears as .Fn or .Fo
    in the page whose .Nm names that class;
  * a variable or constant at namespace scope, an unscoped enumerator and a
    macro appear as .Dv somewhere.

usage: check-man-coverage.py --clang CLANG --include DIR [--cflags=FLAG]...
                             --man-dir DIR HEADER...

Each --cflags passes one more argument to clang for every header, such as
the -I of a library that a header includes (GLib's for barrier-glib.h).
"""

import argparse
import json
import os
import re
import subprocess
import sys

NAMESPACE = "ipcbarrier"
PRIVATE_NAMESPACES = {"detail"}


class Collector:
    def __init__(self, header_paths):
        self.headers = {os.path.realpath(h) for h in header_paths}
        self.current_file = None
        self.functions = set()  # qualified names
        self.types = set()
        self.constants = set()
        self.members = {}  # qualified class -> set of member names

    def _note_loc(self, loc):
        if not isinstance(loc, dict):
            return
        for key in ("spellingLoc", "expansionLoc"):
            if key in loc:
                self._note_loc(loc[key])
        if "file" in loc:
            self.current_file = os.path.realpath(loc["file"])

    def _ours(self):
        return self.current_file in self.headers

    def visit(self, node, scope, record=None, access=None):
        # clang prints a file name only when it changes, in document order:
        # loc first, then range. The node's own file is the one after loc.
        # So every node is walked, even those that are not collected.
        self._note_loc(node.get("loc"))
        ours = self._ours()
        rng = node.get("range", {})
        self._note_loc(rng.get("begin"))
        self._note_loc(rng.get("end"))

        kind = node.get("kind")
        name = node.get("name", "")
        qualified = "::".join(scope + [name])
        wanted = (
            ours
            and not node.get("isImplicit", False)
            and bool(name)
            and not name.startswith("_")
            and not PRIVATE_NAMESPACES.intersection(scope)
        )

        if record is not None:
            if kind == "CXXMethodDecl" and access == "public" and wanted:
                if not name.startswith("operator"):
                    self.members.setdefault(record, set()).add(name)
        elif kind == "FunctionDecl" and wanted:
            self.functions.add(qualified)
        elif kind in ("TypedefDecl", "TypeAliasDecl") and wanted:
            self.types.add(qualified)
        elif kind == "EnumDecl" and ours:
            if wanted:
                self.types.add(qualified)
            if not node.get("scopedEnumTag") and not PRIVATE_NAMESPACES.intersection(scope):
                self._enum(node)
                return
        elif kind == "VarDecl" and wanted:
            self.constants.add(name)

        inner = node.get("inner", [])
        if kind in ("FunctionDecl", "CXXMethodDecl") and record is None:
            # Locals of an inline body are not public names: walk the body
            # only to keep the file tracking right.
            for child in inner:
                self.visit(child, scope + [name], "", None)
            return
        if kind in ("CXXRecordDecl", "RecordDecl") and node.get("completeDefinition"):
            if wanted and record is None:
                self.types.add(qualified)
            acc = "public" if node.get("tagUsed") in ("struct", "union") else "private"
            for child in inner:
                if child.get("kind") == "AccessSpecDecl":
                    acc = child.get("access", acc)
                self.visit(child, scope + [name], qualified if wanted else "", acc)
            return
        if kind == "NamespaceDecl":
            scope = scope + [name]
        for child in inner:
            self.visit(child, scope, record, access)

    def _enum(self, node):
        for child in node.get("inner", []):
            self.visit(child, [], "")  # keeps the file tracking right
            if child.get("kind") == "EnumConstantDecl":
                self.constants.add(child["name"])


def dump_ast(clang, include, cflags, header):
    lang = ["-x", "c", "-std=gnu11"] if header.endswith(".h") else ["-x", "c++", "-std=c++20"]
    out = subprocess.run(
        [clang, *lang, "-fsyntax-only", "-Wno-pragma-once-outside-header", "-Xclang", "-ast-dump=json", "-I", include, *cflags, header],
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    return json.loads(out)


def macros(header):
    names = set()
    with open(header, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*#\s*define\s+([A-Za-z_][A-Za-z0-9_]*)", line)
            if m and not m.group(1).startswith("_"):
                names.add(m.group(1))
    return names


class ManPages:
    def __init__(self, man_dir):
        self.nm = {}  # page -> set of names
        self.fn = {}  # page -> set of function names (last component)
        self.vt = set()
        self.dv = set()
        for page in sorted(os.listdir(man_dir)):
            if not re.search(r"\.[1-8]$", page):
                continue
            nm, fn = set(), set()
            with open(os.path.join(man_dir, page), encoding="utf-8") as f:
                for line in f:
                    words = line.split()
                    if not words:
                        continue
                    macro, args = words[0], [w for w in words[1:] if w not in (",", ";")]
                    if macro == ".Nm" and args:
                        nm.add(args[0])
                    elif macro in (".Fn", ".Fo") and args:
                        fn.add(args[0].split("::")[-1])
                    elif macro == ".Vt" and args:
                        self.vt.add(args[0])
                    elif macro == ".Dv":
                        self.dv.update(args)
                    # .Dv may also stand inside other lines (".It Dv X")
                    for i, w in enumerate(words[:-1]):
                        if w == "Dv":
                            self.dv.add(words[i + 1])
            self.nm[page] = nm
            self.fn[page] = fn

    def page_naming(self, qualified):
        short = qualified.split("::")[-1]
        for page, names in self.nm.items():
            if qualified in names or short in names:
                return page
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clang", required=True)
    ap.add_argument("--include", required=True)
    ap.add_argument("--cflags", action="append", default=[])
    ap.add_argument("--man-dir", required=True)
    ap.add_argument("headers", nargs="+")
    args = ap.parse_args()

    col = Collector(args.headers)
    macro_names = set()
    for header in args.headers:
        col.current_file = None
        col.visit(dump_ast(args.clang, args.include, args.cflags, header), [])
        macro_names |= macros(header)

    man = ManPages(args.man_dir)
    missing = []
    for f in sorted(col.functions):
        if not man.page_naming(f):
            missing.append(f"function {f}: on no .Nm line")
    for t in sorted(col.types):
        short = t.split("::")[-1]
        if not man.page_naming(t) and t not in man.vt and short not in man.vt:
            missing.append(f"type {t}: on no .Nm or .Vt line")
    for cls, members in sorted(col.members.items()):
        page = man.page_naming(cls)
        if not page:
            continue  # reported as an undocumented type
        for m in sorted(members - man.fn[page]):
            missing.append(f"member {cls}::{m}: no .Fn/.Fo in {page}")
    for c in sorted(col.constants | macro_names):
        if c not in man.dv:
            missing.append(f"constant {c}: on no .Dv")

    checked = (
        len(col.functions) + len(col.types) + sum(len(m) for m in col.members.values())
        + len(col.constants | macro_names)
    )
    if missing:
        print(f"{len(missing)} of {checked} public names have no documentation:")
        for m in missing:
            print(f"  {m}")
        return 1
    print(f"all {checked} public names of {len(args.headers)} headers are documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
