#!/usr/bin/env bash
# Builds camgate's packages into dist/: .deb for amd64, arm64, armhf and .ipk for OpenWrt's
# mipsel_24kc, arm_cortex-a7_neon-vfpv4 and aarch64_cortex-a53, with SHA256SUMS, and enforces
# the size limits of the smallest gateways. Run from anywhere; `make package` runs it.
#
# Environment (all optional):
#   CAMGATE_TARGETS   space-separated subset of the targets below (default: all six)
#   CAMGATE_VERSION   package version (default: derived from git, ordered for dpkg and opkg)
#   VERSION COMMIT DATE   stamped into the binary, as the Makefile does
#   DIST              output directory (default: dist)
#   BIN               where the static binaries go (default: bin, as `make cross`)
#   CAMGATE_MAIN_DIR  the main package to build (default: cmd/camgate); lets the packaging be
#                     tested with a stand-in while cmd/camgate does not build
set -euo pipefail

cd "$(dirname "$0")/.."

readonly NFPM_MODULE=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.0
readonly MIPS_BINARY_LIMIT=$((12 * 1024 * 1024))
readonly IPK_LIMIT=$((5 * 1024 * 1024))

# format:package-arch:binary-suffix. OpenWrt names are spelled out because opkg installs only
# packages whose Architecture its feeds list; nfpm would otherwise write "mipsel" or "arm64".
readonly ALL_TARGETS="
deb:amd64:amd64
deb:arm64:arm64
deb:armhf:armv7
ipk:mipsel_24kc:mipsle
ipk:arm_cortex-a7_neon-vfpv4:armv7
ipk:aarch64_cortex-a53:arm64
"

DIST=${DIST:-dist}
BIN=${BIN:-bin}
GO=${GO:-go}
MAIN_DIR=${CAMGATE_MAIN_DIR:-cmd/camgate}

die() {
	echo "package: $*" >&2
	exit 1
}

mib() {
	awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'
}

# package_version prints a version that dpkg and opkg order the way the history goes:
# v1.2.3 -> 1.2.3, 4 commits past it -> 1.2.3+4.gSHA, no tag yet -> 0.0.0+gitDATE.SHA.
package_version() {
	local sha tag ver n
	sha=$(git rev-parse --short=12 HEAD 2>/dev/null) || {
		echo 0.0.0
		return
	}
	if tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null); then
		ver=${tag#v}
		ver=${ver//-/\~} # v1.0.0-rc1 -> 1.0.0~rc1, which sorts before 1.0.0
		n=$(git rev-list --count "$tag"..HEAD)
		[ "$n" = 0 ] || ver="$ver+$n.g$sha"
	else
		ver="0.0.0+git$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S).$sha"
	fi
	if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
		ver="$ver.dirty"
	fi
	echo "$ver"
}

build_binary() {
	local suffix=$1 out="$BIN/camgate-linux-$1"
	local -a env=(CGO_ENABLED=0 GOOS=linux)
	# nethttpomithttp2: nothing on the gateway speaks HTTP/2. The mipsel build also leaves out
	# `camgate demo` (nodemo): its simulated cameras would not fit the 12 MiB flash budget.
	local tags=nethttpomithttp2
	local -a gcflags=()
	case $suffix in
	amd64) env+=(GOARCH=amd64) ;;
	arm64) env+=(GOARCH=arm64) ;;
	armv7) env+=(GOARCH=arm GOARM=7) ;;
	mipsle)
		env+=(GOARCH=mipsle GOMIPS=softfloat) # MT7621 has no FPU: hardfloat dies with SIGILL
		tags+=,nodemo
		# Inline only the relay's per-packet path: the rest is cheaper as calls than as flash.
		mapfile -t gcflags < <(grep -v '^#' packaging/router.gcflags)
		;;
	*) die "unknown binary $suffix" ;;
	esac
	env "${env[@]}" "$GO" -C "$MAIN_DIR" build -trimpath -tags "$tags" "${gcflags[@]}" \
		-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT -X main.date=$DATE" \
		-o "$(pwd)/$out" . || die "building $out failed"
}

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=${COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
DATE=${DATE:-$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)}
CAMGATE_VERSION=${CAMGATE_VERSION:-$(package_version)}
# Same bytes for the same commit: file times in the packages come from the commit.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

targets=${CAMGATE_TARGETS:-$ALL_TARGETS}
selected=()
for want in $targets; do
	found=
	for t in $ALL_TARGETS; do
		IFS=: read -r format arch suffix <<<"$t"
		if [ "$want" = "$t" ] || [ "$want" = "$format:$arch" ]; then
			selected+=("$t")
			found=1
		fi
	done
	[ -n "$found" ] || die "unknown target $want (known: ${ALL_TARGETS//$'\n'/ })"
done

# nfpm is a build tool, not a dependency of the daemon: installed from its own module at a
# pinned version into bin/tools, so the daemon's go.mod never sees it and reruns are instant.
NFPM=$(pwd)/$BIN/tools/nfpm-${NFPM_MODULE##*@}/nfpm
if ! [ -x "$NFPM" ]; then
	GOBIN=$(dirname "$NFPM") GOFLAGS='' "$GO" install "$NFPM_MODULE" || die "installing nfpm failed"
fi

mkdir -p "$DIST" "$BIN"
built_binaries=" "
status=0
echo "camgate package version $CAMGATE_VERSION (binary version $VERSION, commit $COMMIT)"
for t in "${selected[@]}"; do
	IFS=: read -r format arch suffix <<<"$t"
	binary="$BIN/camgate-linux-$suffix"
	if [[ $built_binaries != *" $suffix "* ]]; then
		build_binary "$suffix"
		built_binaries+="$suffix "
	fi
	out="$DIST/camgate_${CAMGATE_VERSION}_${arch}.$format"
	rm -f "$DIST"/camgate_*_"$arch.$format" # an older build's would linger in SHA256SUMS
	CAMGATE_ARCH=$arch CAMGATE_BINARY=$binary CAMGATE_VERSION=$CAMGATE_VERSION \
		"$NFPM" package --config packaging/nfpm.yaml --packager "$format" --target "$out" >/dev/null ||
		die "nfpm $format $arch failed"
done

# Checksums over every package in dist/, so a partial rebuild still leaves a complete list.
(
	cd "$DIST"
	shopt -s nullglob
	packages=(camgate_*.deb camgate_*.ipk)
	sha256sum -- "${packages[@]}" >SHA256SUMS
)

echo
printf '%-80s %10s\n' file size
for suffix in $built_binaries; do
	f="$BIN/camgate-linux-$suffix"
	printf '%-80s %10s\n' "$f" "$(mib "$(stat -c %s "$f")")"
done
for t in "${selected[@]}"; do
	IFS=: read -r format arch suffix <<<"$t"
	f="$DIST/camgate_${CAMGATE_VERSION}_${arch}.$format"
	printf '%-80s %10s\n' "$f" "$(mib "$(stat -c %s "$f")")"
done

# The limits of a MIPS router with 16 MB of flash; fail loudly rather than ship what won't fit.
for t in "${selected[@]}"; do
	IFS=: read -r format arch suffix <<<"$t"
	[ "$suffix" = mipsle ] || continue
	size=$(stat -c %s "$BIN/camgate-linux-mipsle")
	if [ "$size" -gt "$MIPS_BINARY_LIMIT" ]; then
		echo "package: FAIL: mipsel binary is $(mib "$size"), the limit is $(mib "$MIPS_BINARY_LIMIT")" >&2
		status=1
	fi
	f="$DIST/camgate_${CAMGATE_VERSION}_${arch}.$format"
	size=$(stat -c %s "$f")
	if [ "$size" -gt "$IPK_LIMIT" ]; then
		echo "package: FAIL: $f is $(mib "$size"), the limit is $(mib "$IPK_LIMIT")" >&2
		status=1
	fi
done
[ "$status" = 0 ] && echo "sizes within limits (mipsel binary <= $(mib "$MIPS_BINARY_LIMIT"), .ipk <= $(mib "$IPK_LIMIT"))"
exit "$status"
