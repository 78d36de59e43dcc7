#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fails when a shared library's exports and its headers disagree.

For each library, the defined dynamic symbols (readelf --dyn-syms) are
compared with what its headers declare, as public-names.py extracted it:

  * every symbol the library exports is declared by one of its headers (a
    function, member function or variable; or the vtable or typeinfo of a
    class the headers define), so nothing internal leaks out;
  * every function and variable that the headers declare and do not define
    inline is exported, so no caller fails to link;
  * every exported symbol carries the library's version node, as a default
    version (name@@NODE).

A constructor or destructor counts as exported when any of its variants
(complete, base, deleting) is.

usage: check-exported-symbols.py --names PUBLIC_NAMES_JSON [--readelf READELF]
           --library LIBRARY VERSION_NODE HEADER... [--library ...]
"""

import argparse
import json
import os
import re
import subprocess
import sys

# The variants of a constructor (C1 complete, C2 base, C3 allocating) and
# of a destructor (D0 deleting, D1 complete, D2 base), which differ only in
# that digit before the parameter list.
STRUCTOR = re.compile(r"(?<=[0-9A-Za-z_])([CD])[0-3](?=E)")


def structor_key(symbol):
    return STRUCTOR.sub(r"\1*", symbol) if symbol.startswith("_ZN") else symbol


def exported_symbols(readelf, library):
    """The library's defined dynamic symbols: {name: version}."""
    out = subprocess.run(
        [readelf, "--wide", "--dyn-syms", library],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    symbols = {}
    for line in out.splitlines():
        fields = line.split()
        # Num: Value Size Type Bind Vis Ndx Name
        if len(fields) < 8 or not fields[0].rstrip(":").isdigit():
            continue
        if fields[6] == "UND" or fields[4] == "LOCAL":
            continue
        name = fields[7]
        if "@@" in name:
            name, version = name.split("@@", 1)
            version = "@@" + version
        elif "@" in name:
            name, version = name.split("@", 1)
            version = "@" + version
        else:
            version = ""
        symbols[name] = version
    return symbols


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--names", required=True)
    ap.add_argument("--readelf", default="readelf")
    ap.add_argument("--library", nargs="+", action="append", required=True,
                    metavar="LIBRARY VERSION_NODE HEADER")
    args = ap.parse_args()

    with open(args.names, encoding="utf-8") as f:
        headers = json.load(f)["headers"]

    problems = []
    checked = 0
    for library, node, *header_paths in args.library:
        lib = os.path.basename(library)
        declared, classes = set(), set()
        for path in header_paths:
            name = os.path.basename(path)
            if name not in headers:
                sys.exit(f"check-exported-symbols: {name} is not in {args.names}")
            declared.update(headers[name]["symbols"])
            classes.update(headers[name]["classes"])
        allowed = {structor_key(s) for s in declared}
        allowed.update(prefix + c for c in classes for prefix in ("_ZTV", "_ZTI", "_ZTS"))

        exported = exported_symbols(args.readelf, library)
        # The linker defines each version node as an absolute symbol.
        exported.pop(node, None)
        checked += len(exported)
        exported_keys = {structor_key(s) for s in exported}
        for symbol, version in sorted(exported.items()):
            if structor_key(symbol) not in allowed:
                problems.append(f"{lib}: {symbol} is exported but no header declares it")
            if version != "@@" + node:
                shown = version or "no version"
                problems.append(f"{lib}: {symbol} has {shown}, not @@{node}")
        for symbol in sorted(declared):
            if structor_key(symbol) not in exported_keys:
                problems.append(f"{lib}: {symbol} is declared but not exported")

    if problems:
        print(f"{len(problems)} problems with the exported symbols:")
        for p in problems:
            print(f"  {p}")
        return 1
    print(f"all {checked} exported symbols of {len(args.library)} libraries match their headers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
