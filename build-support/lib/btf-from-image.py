#!/usr/bin/env python3
"""Copies a kernel's BTF (the .BTF section, as /sys/kernel/btf/vmlinux serves it) out of an
uncompressed kernel image (arm64 `Image`, which Debian ships as its vmlinuz), so that bpftool can
turn it into vmlinux.h without booting the kernel.

The section is stored in the image as it is loaded: a struct btf_header (magic 0xeB9F, version 1,
hdr_len 24, type_off 0, str_off = type_len) followed by the types and the strings. Exactly one
such header, with a string section that starts with the empty string, must be found.

Usage: btf-from-image.py IMAGE OUT
"""
import struct
import sys


def main() -> int:
    image, out = sys.argv[1], sys.argv[2]
    data = open(image, "rb").read()
    found = []
    at = data.find(b"\x9f\xeb\x01\x00")
    while at != -1:
        if at + 24 <= len(data):
            hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<5I", data, at + 4)
            end = at + hdr_len + str_off + str_len
            if (hdr_len == 24 and type_off == 0 and str_off == type_len
                    and type_len > 1 << 20 and 0 < str_len < 1 << 26 and end <= len(data)
                    and data[at + hdr_len + str_off] == 0):
                found.append((at, end))
        at = data.find(b"\x9f\xeb\x01\x00", at + 1)
    if len(found) != 1:
        print(f"btf-from-image: {image}: {len(found)} BTF headers found, expected 1 "
              "(an image built without CONFIG_DEBUG_INFO_BTF, or a compressed one?)",
              file=sys.stderr)
        return 1
    start, end = found[0]
    with open(out, "wb") as f:
        f.write(data[start:end])
    print(f"btf-from-image: {end - start} bytes of BTF at offset {start:#x} of {image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
