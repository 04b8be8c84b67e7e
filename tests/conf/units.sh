#!/bin/sh
# The shipped systemd units: every unit they name exists (shipped or
# standard), no ordering cycle (tests/conf/units.py), and, where
# systemd-analyze is installed, `systemd-analyze verify` accepts them.
. "$top_srcdir/tests/lib.sh"
command -v python3 >/dev/null || skip "needs python3"
python3 "$top_srcdir/tests/conf/units.py" "$top_srcdir/conf" || fail "unit references or ordering"

command -v systemd-analyze >/dev/null || { echo "SKIP part: no systemd-analyze"; echo PASS; exit 0; }
mk_tmpdir
U="$TEST_TMP/units"
mkdir "$U" "$TEST_TMP/etc"
: >"$TEST_TMP/etc/membroker.conf"
# The units as installed, with the programs of this build.
abs_build=$(cd "$top_builddir" && pwd)
sub() {
	sed -e "s|@sbindir@/mbserver|$abs_build/mbserver/mbserver|g" \
	    -e "s|@bindir@/track_fs|$abs_build/track_fs/track_fs|g" \
	    -e "s|@sysconfdir@|$TEST_TMP/etc|g" "$1" >"$U/$2"
}
for f in "$top_srcdir"/conf/*.service.in "$top_srcdir"/conf/*.socket "$top_srcdir"/conf/*.mount; do
	[ -f "$f" ] || continue
	b=$(basename "$f" .in)
	sub "$f" "$b"
done
names=""
for f in "$U"/*; do
	b=$(basename "$f")
	case $b in
	*@.service) names="$names ${b%@.service}@tmp.service" ;;
	*) names="$names $b" ;;
	esac
done
# Programs the units run must exist for verify: fusermount3 is in /bin.
[ -x /bin/fusermount3 ] || sed -i "s|/bin/fusermount3|$(command -v true)|" "$U"/*
# shellcheck disable=SC2086
(cd "$U" && SYSTEMD_UNIT_PATH="$U:" timeout 60 systemd-analyze verify --man=no $names) \
	>"$TEST_TMP/verify" 2>&1
rc=$?
cat "$TEST_TMP/verify"
# Only complaints about the shipped units count (the host's own units may
# have their own).
if [ $rc -ne 0 ] || grep -iE "membroker|track_fs|scratch" "$TEST_TMP/verify" |
	grep -qiE "cycle|unknown|ignoring|not executable|failed|invalid"; then
	fail "systemd-analyze verify"
fi
echo PASS
