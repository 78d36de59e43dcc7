#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Checks that the exec helper built on its own runtime can run as it is:
a statically linked ELF executable (ET_EXEC: nothing relocates it) with no
program interpreter, no dynamic section and no TLS segment, since its _start
sets up none of them. A thread_local or a stray libc dependency would
otherwise link and then crash at the first start on the trampoline path.

Usage: check-helper-elf.py HELPER
"""

import struct
import sys

ET_EXEC = 2
PT_NAMES = {2: "a dynamic section (PT_DYNAMIC)", 3: "a program interpreter (PT_INTERP)",
            7: "a TLS segment (PT_TLS)"}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    path = sys.argv[1]
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        sys.exit(f"{path}: not a 64-bit little-endian ELF file")
    e_type, = struct.unpack_from("<H", data, 16)
    e_phoff, = struct.unpack_from("<Q", data, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    problems = []
    if e_type != ET_EXEC:
        problems.append(f"type {e_type}, not ET_EXEC: it would need relocating")
    for i in range(e_phnum):
        p_type, = struct.unpack_from("<I", data, e_phoff + i * e_phentsize)
        if p_type in PT_NAMES:
            problems.append("has " + PT_NAMES[p_type])
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"ok: {path} is a static executable without interpreter, dynamic section or TLS")


if __name__ == "__main__":
    main()
