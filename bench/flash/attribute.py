#!/usr/bin/env python3
"""Attribute camgate's writes to files and bbolt page kinds (issue 12), from the strace that
flash.sh writes with FLASH_TRACE=1 (strace -ff -ttt -y -xx -s 160, merged in time order).

  python3 bench/flash/attribute.py TRACE

Bytes are what pwrite64/write asked for (not the block device's count). A bbolt commit is the
pwrite64s to camgate.db up to an fdatasync, with the meta page write and fdatasync after it.
Each page is classed by its header (bbolt page.go: id u64, flags u16, count u16, overflow u32)
and, for a leaf, by its first elements (flags u32, pos u32, ksize u32, vsize u32): a leaf with
a bucket element is the root (top-level buckets, small buckets inline), one with a value of
100 kB or more holds a JPEG."""
import collections
import re
import sys

WRITE = re.compile(r'^[\d.]+\s+(pwrite64|write)\((\d+)<([^>]*)>, "((?:\\x[0-9a-f]{2})*)"(?:\.\.\.)?, (\d+)(?:, (\d+))?\) = (\d+)')
SYNC = re.compile(r'^[\d.]+\s+(fsync|fdatasync)\((\d+)<([^>]*)>')


def unhex(s):
    return bytes.fromhex(s.replace('\\x', '')) if s.startswith('\\x') else s.encode()


def short(path):
    p = re.sub(r'.*/data/', 'data/', path)
    p = re.sub(r'snapshots/[^/]*\.tmp$', 'snapshots/<camera>.jpg.*.tmp', p)
    return re.sub(r'payloads/[0-9a-f]{32}$', 'payloads/<file>', p)


def page_kind(d):
    flags = int.from_bytes(d[8:10], 'little')
    count = int.from_bytes(d[10:12], 'little')
    kind = {1: 'branch', 2: 'leaf', 4: 'meta', 0x10: 'freelist'}.get(flags, hex(flags))
    if kind != 'leaf':
        return kind
    elems = []
    for i in range(min(count, 8)):
        o = 16 + 16 * i
        if o + 16 > len(d):
            break
        elems.append([int.from_bytes(d[o + 4 * j:o + 4 * j + 4], 'little') for j in range(4)])
    if any(f & 1 for f, _, _, _ in elems):
        return 'root leaf (buckets, inline small buckets)'
    if any(vs >= 100000 for _, _, _, vs in elems):
        return 'leaf holding a JPEG'
    return 'leaf of small values'


def main(path):
    per_file, syncs = collections.Counter(), collections.Counter()
    kinds, kind_writes = collections.Counter(), collections.Counter()
    commits, cur = 0, []
    for line in open(path, errors='replace'):
        m = WRITE.match(line)
        if m:
            name = unhex(m.group(3)).decode(errors='replace')
            if '/data/' not in name:
                continue
            n = int(m.group(7))
            per_file[short(name)] += n
            if name.endswith('camgate.db'):
                cur.append((page_kind(unhex(m.group(4))), n))
            continue
        m = SYNC.match(line)
        if m:
            name = unhex(m.group(3)).decode(errors='replace')
            syncs[short(name)] += 1
            if name.endswith('camgate.db') and cur:
                if not all(k == 'meta' for k, _ in cur):
                    commits += 1
                for k, n in cur:
                    kinds[k] += n
                    kind_writes[k] += 1
                cur = []
    print('bytes asked to be written, per file:')
    for k, v in per_file.most_common():
        print(f'  {v:>13,}  {k}')
    print('fsync + fdatasync, per file:')
    for k, v in syncs.most_common():
        print(f'  {v:>13,}  {k}')
    print(f'camgate.db by page kind ({commits} commits):')
    for k, v in kinds.most_common():
        print(f'  {v:>13,}  {k} ({kind_writes[k]} writes)')


if __name__ == '__main__':
    main(sys.argv[1])
