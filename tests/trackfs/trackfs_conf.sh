#!/bin/sh
# Every config key is documented in the man page and listed by --help;
# --version prints the package; bad options are refused clearly.
. "$top_srcdir/tests/lib.sh"
TRACK_FS="$top_builddir/track_fs/track_fs"
[ -x "$TRACK_FS" ] || skip "track_fs not built (libfuse3 missing)"
MAN="$top_srcdir/man/track_fs.8"
[ -f "$MAN" ] || fail "no man page"
"$TRACK_FS" --help >help.$$ || fail "--help"
keys=$(awk '/^Settings/ { on = 1; next } on && /^  [a-z_]+ / { print $1 }' help.$$)
rm -f help.$$
[ -n "$keys" ] || fail "no keys in --help"
n=0
for k in $keys; do
	grep -q "^\.B $k\$" "$MAN" || fail "key $k missing from the man page"
	n=$((n + 1))
done
[ $n -ge 10 ] || fail "only $n keys"
"$TRACK_FS" --version | grep -q "[0-9]\.[0-9]" || fail "--version"
"$TRACK_FS" -o step=bogus /nonexistent 2>err.$$ && fail "bad value accepted"
grep -q "step" err.$$ || { rm -f err.$$; fail "bad value not named"; }
"$TRACK_FS" --no-such-key=1 /nonexistent 2>err.$$ && fail "unknown key accepted"
grep -q "unknown key" err.$$ || { cat err.$$; rm -f err.$$; fail "unknown key not reported"; }
TRACK_FS_STEP=nonsense "$TRACK_FS" /nonexistent 2>err.$$ && fail "bad environment value accepted"
grep -q "TRACK_FS_STEP" err.$$ || { cat err.$$; rm -f err.$$; fail "bad environment variable not named"; }
rm -f err.$$
echo "PASS ($n keys)"
