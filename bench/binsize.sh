#!/usr/bin/env bash
# Where the mipsel binary's bytes go (bench/README.md, "Binary size"): builds cmd/camgate as
# `make cross` builds the router binary (softfloat, nethttpomithttp2 nodemo, the inlining of
# packaging/router.gcflags), prints the stripped size, then the symbol bytes of each module
# (our packages one by one) from `go tool nm -size` of the same build without -s -w.
# Symbol bytes leave out the function tables (pclntab) and section alignment, so their sum is
# less than the file; the file size is what counts against the 12 MiB budget.
#   bash bench/binsize.sh            # from the repository root
#   BINSIZE_NM=old.nm bash bench/binsize.sh   # keeps this build's symbol list in old.nm
#   bash bench/binsize.sh old.nm              # KiB then, now and the change, per module
set -euo pipefail

cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mapfile -t gcflags < <(grep -v '^#' packaging/router.gcflags)
build() {
	CGO_ENABLED=0 GOOS=linux GOARCH=mipsle GOMIPS=softfloat \
		go build -trimpath -tags "nethttpomithttp2 nodemo" "${gcflags[@]}" "$@" ./cmd/camgate
}
build -ldflags "-s -w" -o "$work/stripped"
build -o "$work/full"
size=$(stat -c %s "$work/stripped")
echo "mipsel stripped: $size bytes, $((size / 1024)) KiB of 12288 KiB"

go version -m "$work/stripped" | awk '$1 == "dep" { print $2 }' >"$work/modules"
go tool nm -size "$work/full" >"$work/nm"
if [ -n "${BINSIZE_NM:-}" ]; then
	cp "$work/nm" "$BINSIZE_NM"
fi

# group NM: KiB of initialised symbols (bss takes no flash) per module or camgate package.
group() {
	awk -v mods="$work/modules" '
		BEGIN { while ((getline m < mods) > 0) modlist[m] = 1 }
		$3 == "B" || $3 == "b" || $4 ~ /^crypto\/internal\/fips140\/drbg\.memory/ { next }
		{
			n = $4
			sub(/^(go:(itab|type|string|cuinfo|info)\.|type:\.?(eq\.|hash\.)?)/, "", n)
			sub(/^[*\[\]0-9]+/, "", n)
			gsub(/%2e/, ".", n) # how the linker spells a dot in a path element
			g = "std (runtime, net, crypto, ...)"
			best = ""
			for (m in modlist)
				if ((index(n, m "/") == 1 || index(n, m ".") == 1) && length(m) > length(best))
					best = m
			if (best != "") g = best
			else if (index(n, "github.com/camgate/camgate/") == 1) {
				p = substr(n, length("github.com/camgate/camgate/") + 1)
				sub(/[.(].*/, "", p)
				g = "camgate/" p
			} else if (n ~ /^github\.com\/[^\/]+\/[^\/]+/) {
				# a module this build no longer links (in an earlier listing)
				split(n, el, "/")
				sub(/[.(].*/, "", el[3])
				g = el[1] "/" el[2] "/" el[3]
				if (el[4] ~ /^v[0-9]+([.(]|$)/) {
					sub(/[.(].*/, "", el[4])
					g = g "/" el[4]
				}
			}
			kib[g] += $2 / 1024
		}
		END { for (g in kib) printf "%s\t%.1f\n", g, kib[g] }' "$1" | sort
}
group "$work/nm" >"$work/now"
if [ -n "${1:-}" ]; then
	group "$1" >"$work/then"
	join -t $'\t' -a 1 -a 2 -e 0 -o 0,1.2,2.2 "$work/then" "$work/now" |
		sort -t $'\t' -k2 -nr | awk -F '\t' '{ printf "%-45s %8s %8s %+8.1f\n", $1, $2, $3, $3 - $2 }'
else
	sort -t $'\t' -k2 -nr "$work/now" | awk -F '\t' '{ printf "%-45s %8s\n", $1, $2 }'
fi
