# scripts/deps.sh - sourced by test.sh, demo.sh and tour.sh: install what the build
# and the tests need on Debian 12, then bootstrap, configure and build.
set -eu

DEB_BUILD="autoconf automake libtool pkg-config make gcc check libfuse3-dev fuse3 valgrind"
DEB_TEST="python3 sqlite3 git stress-ng procps busybox systemd strace"
DEB_DEVICE="python3 gnuplot-nox"
# libFuzzer harnesses (fuzz/): clang and its runtime (libclang_rt.fuzzer).
DEB_FUZZ="clang libclang-rt-14-dev"
DEB_BENCH="hyperfine fio libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 time"

missing_packages() {
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || printf '%s ' "$p"
	done
}

install_packages() {
	miss=$(missing_packages "$@")
	[ -z "$miss" ] && return 0
	if [ "$(id -u)" = 0 ]; then
		echo "Installing: $miss"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		# shellcheck disable=SC2086
		apt-get install -y -qq --no-install-recommends $miss >/dev/null
	else
		echo "Missing packages: $miss"
		echo "Run as root:  apt-get update && apt-get install -y $miss"
		exit 1
	fi
}

# build DIR [configure args...]: configure and build into DIR (out of tree).
build_tree() {
	dir=$1; shift
	mkdir -p "$dir"
	if [ ! -f "$dir/Makefile" ]; then
		(cd "$dir" && "$TOP/configure" --quiet "$@")
	fi
	make -C "$dir" -j"$(nproc)" --no-print-directory >/dev/null
}

bootstrap() {
	if [ ! -x "$TOP/configure" ] || [ "$TOP/configure.ac" -nt "$TOP/configure" ]; then
		(cd "$TOP" && autoreconf -fi >/dev/null 2>&1) || (cd "$TOP" && autoreconf -fi)
	fi
}
