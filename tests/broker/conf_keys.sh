#!/bin/sh
# Every key of mbserver's config table is documented in membroker.conf(5),
# listed by --help and present in the example configuration.
. "$top_srcdir/tests/lib.sh"
MBSERVER="$top_builddir/mbserver/mbserver"
mk_tmpdir
"$MBSERVER" --config /dev/null --check-config >"$TEST_TMP/keys" || fail "--check-config on an empty file"
"$MBSERVER" --help >"$TEST_TMP/help" || fail "--help"
keys=$(sed -n 's/^\([a-z_]*\) = .*/\1/p' "$TEST_TMP/keys")
[ -n "$keys" ] || fail "no keys listed"
n=0
for k in $keys; do
	n=$((n + 1))
	grep -q "^\.B $k\$" "$top_srcdir/man/membroker.conf.5" || fail "key $k missing from membroker.conf.5"
	grep -q "^  $k " "$TEST_TMP/help" || fail "key $k missing from --help"
	grep -q "^#*$k = " "$top_srcdir/conf/membroker.conf" || fail "key $k missing from conf/membroker.conf"
done
# The example configuration is valid as shipped.
"$MBSERVER" --config "$top_srcdir/conf/membroker.conf" --check-config >/dev/null || fail "conf/membroker.conf does not parse"
# A bad line is reported with file:line and the exit status says so.
printf 'total = 1M\nbogus = 2\n' >"$TEST_TMP/bad.conf"
if "$MBSERVER" --config "$TEST_TMP/bad.conf" --check-config >/dev/null 2>"$TEST_TMP/err"; then
	fail "--check-config accepted a bad file"
fi
grep -q "bad.conf:2: unknown key 'bogus'" "$TEST_TMP/err" || fail "no file:line in: $(cat "$TEST_TMP/err")"
"$MBSERVER" --version | grep -q "$(sed -n 's/^AC_INIT(\[\([^]]*\)\].*/\1/p' "$top_srcdir/configure.ac")" || fail "--version"
echo "ok: $n keys documented"
