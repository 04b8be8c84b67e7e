#!/bin/sh
# In a setuid program (AT_SECURE) gmalloc and anr_malloc ignore the
# configuration the caller's environment offers: GMALLOC_*, GMALLOC_CONF
# and ANRMALLOC_*.  A copy of gm_secure is made setuid root and run as
# nobody; the same copy run as root (not secure) obeys the variables.
. "$top_srcdir/tests/gmalloc/gmlib.sh"
need_root
command -v setpriv >/dev/null 2>&1 || skip "setpriv is not installed"
NOBODY=$(id -u nobody 2>/dev/null) || skip "no user nobody"

# nobody must reach the program and its libraries.
chmod 755 "$TEST_TMP"
cp "$top_builddir/tests/gmalloc/gm_secure" "$TEST_TMP/gm_secure" || fail "copy"
chown 0:0 "$TEST_TMP/gm_secure" && chmod 4755 "$TEST_TMP/gm_secure" || fail "chmod"
setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups test -x "$TEST_TMP/gm_secure" ||
	skip "nobody cannot run programs in $TEST_TMP"
printf 'limit = 9M\n' >"$TEST_TMP/gm.conf"
chmod 644 "$TEST_TMP/gm.conf"

run() {
	env GMALLOC_CONF="$TEST_TMP/gm.conf" GMALLOC_LIMIT=7M ANRMALLOC_STACK_DEPTH=5 "$@"
}

run "$TEST_TMP/gm_secure" >"$TEST_TMP/plain" 2>"$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "plain run failed"; }
read -r _ secure _ budget _ depth <"$TEST_TMP/plain"
[ "$secure" = 0 ] || fail "root's run is secure: $(cat "$TEST_TMP/plain")"
[ "$budget" = $((7 << 20)) ] || fail "GMALLOC_LIMIT not obeyed in a plain run: $(cat "$TEST_TMP/plain")"
[ "$depth" = 5 ] || fail "ANRMALLOC_STACK_DEPTH not obeyed in a plain run: $(cat "$TEST_TMP/plain")"

run setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups "$TEST_TMP/gm_secure" \
	>"$TEST_TMP/suid" 2>"$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "setuid run failed"; }
read -r _ secure _ budget _ depth <"$TEST_TMP/suid"
[ "$secure" = 1 ] || fail "setuid run is not secure: $(cat "$TEST_TMP/suid")"
[ "$budget" != $((7 << 20)) ] || fail "setuid program obeyed GMALLOC_LIMIT"
[ "$budget" != $((9 << 20)) ] || fail "setuid program read the file named by GMALLOC_CONF"
[ "$depth" = 0 ] || fail "setuid program obeyed ANRMALLOC_STACK_DEPTH: $(cat "$TEST_TMP/suid")"
echo "setuid ok: plain: $(cat "$TEST_TMP/plain"); setuid: $(cat "$TEST_TMP/suid")"
