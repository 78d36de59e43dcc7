#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fails when a program's --help, its man page and its bash completion do
not name the same long options; for each of the programs given.

  --help: the option lines, those that start with spaces and "--";
  man page: the ".It Fl \\-NAME" items of its OPTIONS section;
  completion: what the completion function offers after "--" (bash runs
      it; the check is left out when bash is not there).

usage: check-run-options.py [--bash PATH] PROGRAM:PAGE:COMPLETION...
"""

import argparse
import re
import subprocess
import sys


def from_help(program):
    out = subprocess.run([program, "--help"], check=True, capture_output=True, text=True).stdout
    return {m.group(1) for m in re.finditer(r"^\s+(--[a-z][a-z-]*)", out, re.MULTILINE)}


def from_man(page):
    options, in_options = set(), False
    with open(page, encoding="utf-8") as f:
        for line in f:
            if line.startswith(".Sh "):
                in_options = line.strip() == ".Sh OPTIONS"
            m = re.match(r"\.It Fl \\-([a-z][a-z-]*)", line)
            if in_options and m:
                options.add("--" + m.group(1))
    return options


def from_completion(bash, script, program):
    with open(script, encoding="utf-8") as f:
        m = re.search(r"^complete -F (\S+) (\S+)$", f.read(), re.MULTILINE)
    if not m or m.group(2) != program:
        sys.exit(f"{script}: no 'complete -F FUNCTION {program}' line")
    run = (f'source "$0" && COMP_WORDS=({program} --) && COMP_CWORD=1 && {m.group(1)} && '
           'printf "%s\\n" "${COMPREPLY[@]}"')
    out = subprocess.run([bash, "-c", run, script], check=True, capture_output=True,
                         text=True).stdout
    return {word.rstrip("=") for word in out.split()}


def check(program, man, completion, bash):
    name = program.rsplit("/", 1)[-1]
    sources = {"--help": from_help(program), "the man page": from_man(man)}
    if bash:
        sources["the bash completion"] = from_completion(bash, completion, name)
    all_options = set().union(*sources.values())
    failed = False
    for source, options in sources.items():
        for missing in sorted(all_options - options):
            print(f"{name}: {source} does not name {missing}", file=sys.stderr)
            failed = True
    if not sources["--help"]:
        print(f"{name}: no options found in --help", file=sys.stderr)
        failed = True
    if not failed:
        print(f"ok: {name}: {len(all_options)} options, the same in " + ", ".join(sources))
    return not failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bash")
    ap.add_argument("programs", nargs="+", metavar="PROGRAM:PAGE:COMPLETION")
    args = ap.parse_args()
    ok = True
    for triple in args.programs:
        program, man, completion = triple.split(":")
        ok = check(program, man, completion, args.bash) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
