#!/usr/bin/env bash
# The linker of `cargo router` (.cargo/config.toml): links twice, so that the functions of
# symbol-order.txt (next to this script) come first in the binary's text.
#
# The list has the symbol names of the build it was made from. Some change from build to build
# with no change to the function: LLVM numbers its local copies (`.1733`, `.llvm.4242`) in the
# order it makes them, and the legacy mangling's hash (`17h<16 hex digits>E`) follows the crate's
# metadata. The names of this build are only known once it is linked, so the first link keeps the
# symbols (the build's `--strip-all` left out) and this script maps each listed name onto this
# build's: the same name; else the same name with other copy numbers; else, when exactly one
# function of the binary has its path (the name without hash and number: a generic function's
# instances share one), that function. The second link, the real one, lays them out in the list's
# order (lld's --symbol-ordering-file). A listed function the binary lacks (renamed or gone) is
# left out and never fails the build; a function the list lacks (a new one) goes after the
# listed ones: `scripts/symbol-order.sh --check` finds those.
#
# Arguments: those of the C compiler driver that rustc would call (`cc`), passed on unchanged.
# `link.sh --resolve BINARY [LIST]` prints the listed functions under BINARY's names (the binary
# must keep its symbols); scripts/symbol-order.sh --check uses it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# The functions of list $2 under the names binary $1 defines, in the list's order.
resolve() {
  nm --defined-only "$1" | awk '$2 ~ /^[tTwWi]$/ {print $3}' | awk -v list="$2" '
    function bare(s) { sub(/\.llvm\.[0-9]+$/, "", s); sub(/\.[0-9]+$/, "", s); return s }
    function path(s) { s = bare(s); sub(/17h[0-9a-f]+E$/, "E", s); return s }
    function put(s) { if (!(s in done)) { done[s] = 1; print s } }
    BEGIN { while ((getline l < list) > 0) if (l !~ /^#/ && l != "") listed[++n] = l }
    { have[$0] = 1; b = bare($0); copies[b] = copies[b] " " $0; p = path($0); paths[p]++; only[p] = $0 }
    END {
      for (i = 1; i <= n; i++) {
        l = listed[i]
        if (l in have) { put(l); continue }
        b = bare(l)
        if (b in copies) { k = split(copies[b], c, " "); for (j = 1; j <= k; j++) put(c[j]); continue }
        p = path(l)
        if (paths[p] == 1) put(only[p])
      }
    }
  '
}

if [ "${1:-}" = --resolve ]; then
  resolve "$2" "${3:-$here/symbol-order.txt}"
  exit
fi

list=$here/symbol-order.txt
cc=${CC:-cc}
out=
first=()
prev=
for a in "$@"; do
  [ "$prev" = -o ] && out=$a
  prev=$a
  case $a in
    -Wl,--strip-all | -Wl,--strip-debug | -s) ;;
    *) first+=("$a") ;;
  esac
done
[ -n "$out" ] && [ -f "$list" ] || exec "$cc" "$@"

"$cc" "${first[@]}"
order=$out.symbol-order
trap 'rm -f "$order"' EXIT
resolve "$out" "$list" > "$order"
"$cc" "$@" "-Wl,--symbol-ordering-file=$order,--no-warn-symbol-ordering"
