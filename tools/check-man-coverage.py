#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fails when a public name of an installed header has no man page.

The names come from public-names.py, which the build runs on the installed
headers (clang parses them there, so every declaration counts as the
compiler sees it). The rules:

  * a function or type at namespace scope (C, or C++ in namespace
    ipcbarrier, except ipcbarrier::detail) is named on an .Nm line of some
    page (C++ names qualified, "ipcbarrier::fd_set_cloexec"); a type may
    instead appear on a .Vt line;
  * a public member function of a documented class appears as .Fn or .Fo
    in the page whose .Nm names that class;
  * a variable or constant at namespace scope, an unscoped enumerator and an
    object-like macro appear as .Dv somewhere;
  * a function-like macro is named on an .Nm line, as a function is.

usage: check-man-coverage.py --names PUBLIC_NAMES_JSON --man-dir DIR
"""

import argparse
import json
import os
import re
import sys


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
        # The qualified name first: "ipcbarrier::Barrier" is documented in
        # another page than the C type "Barrier".
        for page, names in self.nm.items():
            if qualified in names:
                return page
        short = qualified.split("::")[-1]
        for page, names in self.nm.items():
            if short in names:
                return page
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--names", required=True)
    ap.add_argument("--man-dir", required=True)
    args = ap.parse_args()

    with open(args.names, encoding="utf-8") as f:
        headers = json.load(f)["headers"]
    functions, types, constants, macros, function_macros = set(), set(), set(), set(), set()
    members = {}  # qualified class -> set of member names
    for names in headers.values():
        functions.update(names["functions"])
        types.update(names["types"])
        constants.update(names["constants"])
        macros.update(names["macros"])
        function_macros.update(names["function_macros"])
        for cls, m in names["members"].items():
            members.setdefault(cls, set()).update(m)

    man = ManPages(args.man_dir)
    missing = []
    for f in sorted(functions | function_macros):
        if not man.page_naming(f):
            kind = "macro" if f in function_macros else "function"
            missing.append(f"{kind} {f}: on no .Nm line")
    for t in sorted(types):
        short = t.split("::")[-1]
        if not man.page_naming(t) and t not in man.vt and short not in man.vt:
            missing.append(f"type {t}: on no .Nm or .Vt line")
    for cls, names in sorted(members.items()):
        page = man.page_naming(cls)
        if not page:
            continue  # reported as an undocumented type
        for m in sorted(names - man.fn[page]):
            missing.append(f"member {cls}::{m}: no .Fn/.Fo in {page}")
    for c in sorted(constants | macros):
        if c not in man.dv:
            missing.append(f"constant {c}: on no .Dv")

    checked = (
        len(functions | function_macros) + len(types) + sum(len(m) for m in members.values())
        + len(constants | macros)
    )
    if missing:
        print(f"{len(missing)} of {checked} public names have no documentation:")
        for m in missing:
            print(f"  {m}")
        return 1
    print(f"all {checked} public names of {len(headers)} headers are documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
