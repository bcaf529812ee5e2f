#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The ABI check: compares the ABI of a built libcfutures.so with the
# baseline kept in abi/libcfutures.abi (abidw from Debian's abigail-tools;
# scripts/install-pkg-deps.sh installs it).
#   scripts/abi.sh check [BUILD]   fails on an incompatible change that
#                                  keeps the soname
#   scripts/abi.sh update [BUILD]  writes the baseline from BUILD's library
# BUILD is a RelWithDebInfo build directory (default build/gcc); when it has
# no libcfutures.so, the library alone is built there first.
#
# What passes: added functions and variables (the baseline is regenerated
# with `update` when they are merged), and new fields of cf_options and
# cf_stats carved from their reserved_ tails (the same size, every older
# field at the same offset with the same type, the new ones where reserved_
# began). What fails: anything else abidiff reports (a removed or changed
# function, a changed type) while the soname stays the same. A changed
# soname passes, with a reminder to run `update`.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
baseline=abi/libcfutures.abi
mode=${1:-check}
build=${2:-build/gcc}
case "$mode" in
check | update) ;;
*)
    echo "usage: scripts/abi.sh check|update [BUILD]" >&2
    exit 2
    ;;
esac

if [ ! -e "$build/libcfutures.so" ]; then
    echo "abi.sh: building libcfutures.so in $build"
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" --target cfutures_shared --parallel "${JOBS:-$(nproc)}" >/dev/null
fi
lib=$(readlink -f "$build/libcfutures.so")

# abidw of the library, its public types only, without paths of this
# machine.
dump() {
    abidw --headers-dir include --drop-private-types --no-corpus-path \
        --no-comp-dir-path --short-locs --out-file "$1" "$lib"
}

soname_of() { sed -n "1s/.*soname='\([^']*\)'.*/\1/p" "$1"; }

if [ "$mode" = update ]; then
    dump "$baseline"
    echo "abi.sh: wrote $baseline ($(soname_of "$baseline"))"
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dump "$tmp/new.abi"
old_soname=$(soname_of "$baseline")
new_soname=$(soname_of "$tmp/new.abi")
if [ "$old_soname" != "$new_soname" ]; then
    echo "abi.sh: the soname changed ($old_soname -> $new_soname): the ABI" \
        "may change; run scripts/abi.sh update to make this the baseline"
    exit 0
fi

# cf_options and cf_stats are checked below, field by field; abidiff
# checks everything else. Added symbols are not changes.
cat >"$tmp/supp" <<'EOF'
[suppress_type]
  type_kind = struct
  name_regexp = ^cf_(options|stats)$
EOF
rc=0
abidiff --no-added-syms --suppressions "$tmp/supp" "$baseline" "$tmp/new.abi" \
    >"$tmp/report" || rc=$?
if [ "$rc" -ne 0 ]; then
    cat "$tmp/report"
    echo "abi.sh: libcfutures.so changed its ABI (abidiff exit $rc) but" \
        "kept the soname $new_soname: change the version (soname policy in" \
        "the README), or undo the change" >&2
    exit 1
fi

python3 - "$baseline" "$tmp/new.abi" <<'EOF'
# The growable structs: the same size; every field of the baseline but
# reserved_ at the same offset with the same type; new fields only from
# where reserved_ began.
import sys
import xml.etree.ElementTree as ET


def load(path):
    root = ET.parse(path).getroot()
    by_id = {e.get("id"): e for e in root.iter() if e.get("id")}

    def name(tid, depth=0):
        e = by_id.get(tid)
        if e is None or depth > 8:
            return "?"
        t = e.tag
        if t in ("pointer-type-def", "reference-type-def"):
            return name(e.get("type-id"), depth + 1) + "*"
        if t == "qualified-type-def":
            q = " ".join(k for k in ("const", "volatile") if e.get(k) == "yes")
            return q + " " + name(e.get("type-id"), depth + 1)
        if t == "array-type-def":
            return "%s[%s]" % (name(e.get("element-type-id"), depth + 1),
                               e.get("size-in-bits"))
        if t == "function-type":
            parts = [name(p.get("type-id"), depth + 1)
                     for p in e if p.get("type-id")]
            return "fn(%s)" % ",".join(parts)
        return t + ":" + (e.get("name") or "")

    structs = {}
    for c in root.iter("class-decl"):
        n = c.get("name")
        if n in ("cf_options", "cf_stats") and c.get("size-in-bits"):
            fields = {}
            for dm in c.findall("data-member"):
                v = dm.find("var-decl")
                fields[v.get("name")] = (int(dm.get("layout-offset-in-bits")),
                                         name(v.get("type-id")))
            structs[n] = (int(c.get("size-in-bits")), fields)
    return structs


old, new = load(sys.argv[1]), load(sys.argv[2])
bad = []
for s, (size, fields) in old.items():
    if s not in new:
        bad.append("%s: gone" % s)
        continue
    nsize, nfields = new[s]
    if nsize != size:
        bad.append("%s: size %d -> %d bits" % (s, size, nsize))
    tail = fields["reserved_"][0]
    for f, (off, typ) in fields.items():
        if f != "reserved_" and nfields.get(f) != (off, typ):
            bad.append("%s.%s: %s at %d -> %s" % (s, f, typ, off, nfields.get(f)))
    for f, (off, typ) in nfields.items():
        if f not in fields and off < tail:
            bad.append("%s.%s: new, but before the reserved tail" % (s, f))
    if "reserved_" not in nfields:
        bad.append("%s: the reserved tail is gone" % s)
for b in bad:
    print("abi.sh: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
echo "abi.sh: $new_soname is compatible with $baseline"
