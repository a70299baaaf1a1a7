"""The lab's test image: a 1 MiB raw disk whose boot sector writes one line to the first serial port and
halts the CPU. Its partition table names one (empty) partition over the rest of the disk: nova's image
safety check refuses an MBR without partitions.

Nothing from the internet (no CirrOS download) and nothing to wait for: under QEMU TCG it has printed its
line a moment after the BIOS hands over, so `openstack console log show` proves that the server really
booted from the image glance served, not only that libvirt started a domain.

    python compose/testimage.py OUT.raw [--message TEXT]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SECTOR = 512
SIZE = 1024 * 1024
LOAD_ADDRESS = 0x7C00  # where the BIOS loads the boot sector (real mode, CS:IP = 0:7C00)
MESSAGE = "goldstack test image booted"

# 16-bit real-mode code; the message follows it at offset len(CODE).
#   cli; xor ax,ax; mov ds,ax; cld; mov dx,0x3F8 (COM1 data port); mov si,MESSAGE
#   next: lodsb; test al,al; jz stop; out dx,al; jmp next
#   stop: hlt; jmp stop
_CODE_HEAD = bytes([0xFA, 0x31, 0xC0, 0x8E, 0xD8, 0xFC, 0xBA, 0xF8, 0x03, 0xBE])
_CODE_TAIL = bytes([0xAC, 0x84, 0xC0, 0x74, 0x03, 0xEE, 0xEB, 0xF8, 0xF4, 0xEB, 0xFD])
CODE_LENGTH = len(_CODE_HEAD) + 2 + len(_CODE_TAIL)
PARTITION_TABLE = 446  # four 16-byte entries, then the 0x55AA signature
LINUX_PARTITION = 0x83


def partition_entry(first_lba: int, sectors: int) -> bytes:
    """An active primary partition; CHS fields say "use the LBA fields" (the BIOS boots sector 0 anyway)."""
    chs_unused = bytes([0xFE, 0xFF, 0xFF])
    return (bytes([0x80]) + chs_unused + bytes([LINUX_PARTITION]) + chs_unused
            + first_lba.to_bytes(4, "little") + sectors.to_bytes(4, "little"))


def boot_sector(message: str = MESSAGE) -> bytes:
    text = (message + "\r\n").encode("ascii") + b"\0"
    if CODE_LENGTH + len(text) > PARTITION_TABLE:
        raise ValueError(f"message too long: at most {PARTITION_TABLE - CODE_LENGTH - 3} characters")
    address = LOAD_ADDRESS + CODE_LENGTH
    code = _CODE_HEAD + address.to_bytes(2, "little") + _CODE_TAIL + text
    table = partition_entry(1, SIZE // SECTOR - 1).ljust(4 * 16, b"\0")
    return code.ljust(PARTITION_TABLE, b"\0") + table + b"\x55\xaa"


def disk(message: str = MESSAGE) -> bytes:
    return boot_sector(message).ljust(SIZE, b"\0")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="file to write (raw disk format)")
    parser.add_argument("--message", default=MESSAGE, help="the line the image prints (ASCII)")
    args = parser.parse_args(argv)
    try:
        data = disk(args.message)
    except (ValueError, UnicodeEncodeError) as error:
        print(f"--message: {error}", file=sys.stderr)
        return 2
    args.out.write_bytes(data)
    print(f"{args.out}: {len(data)} bytes, raw; prints {args.message!r} on the first serial port")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
