#!/bin/sh
# The man pages cover the API and the tools: every function of mbclient.h
# in libmbclient(3), every long option of --help in mbutil(1)/mbstatus(1),
# every mbutil command in mbutil(1), every error code in libmbclient(3).
. "$top_srcdir/tests/lib.sh"
man="$top_srcdir/man"
missing=0
check() { # check PAGE WORD
	# Man sources escape '-' as '\-'.
	pat=$(printf '%s' "$2" | sed 's/-/\\\\-/g')
	if ! grep -q -- "$pat" "$1" && ! grep -q -- "$2" "$1"; then
		echo "$(basename "$1") does not mention $2"; missing=1
	fi
}
for f in $(sed -n 's/^[a-z_0-9 ]*[ *]\(mb_[a-z_]*\)(.*/\1/p' "$top_srcdir/libmbclient/mbclient.h"); do
	check "$man/libmbclient.3" "$f"
done
for e in $(sed -n 's/^[[:space:]]*\(MB_E[A-Z]*\) = -[0-9]*,.*/\1/p' "$top_srcdir/libmbclient/mbclient.h"); do
	check "$man/libmbclient.3" "$e"
done
for e in $(sed -n 's/^[[:space:]]*\(MB_EVENT_[A-Z_]*\) = .*/\1/p' "$top_srcdir/libmbclient/mbclient.h"); do
	check "$man/libmbclient.3" "$e"
done
for tool in mbutil mbstatus; do
	opts=$("$top_builddir/libmbclient/$tool" --help | grep -o -- '--[a-z][a-z-]*' | sort -u)
	[ -n "$opts" ] || fail "$tool --help lists no options"
	for o in $opts; do
		check "$man/$tool.1" "$o"
	done
done
for c in request reserve return hold query; do
	"$top_builddir/libmbclient/mbutil" --help | grep -q "^  $c" || fail "mbutil --help lacks $c"
	check "$man/mbutil.1" "$c"
done
[ $missing = 0 ] || fail "man pages incomplete"
