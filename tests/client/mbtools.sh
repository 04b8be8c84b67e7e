#!/bin/sh
# mbutil and mbstatus against a real mbserver: exit statuses, output, the
# JSON snapshot (parsed), the table, --watch, a bidi holder giving back.
. "$top_srcdir/tests/lib.sh"
command -v python3 >/dev/null || skip "needs python3 to parse JSON"
mk_tmpdir
MBUTIL="$top_builddir/libmbclient/mbutil"
MBSTATUS="$top_builddir/libmbclient/mbstatus"

expect_rc() { # expect_rc RC CMD...
	want=$1; shift
	"$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err"; rc=$?
	[ "$rc" = "$want" ] || { cat "$TEST_TMP/out" "$TEST_TMP/err"; fail "'$*' exited $rc, expected $want"; }
}
wait_for() { # wait_for FILE PATTERN WHAT
	i=0
	until grep -q -- "$2" "$1" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt 200 ] && { cat "$1"; fail "$3"; }; sleep 0.05
	done
}
out_has() { grep -q -- "$1" "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "output lacks '$1'"; }; }

# json FIELD-EXPRESSION: evaluate a Python expression over the snapshot `s`.
json() {
	"$MBSTATUS" --json >"$TEST_TMP/status.json" || fail "mbstatus --json failed"
	python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$TEST_TMP/status.json" "$1"
}

# No broker yet.
MEMBROKER_SOCKET="$TEST_TMP/none.sock"; export MEMBROKER_SOCKET
expect_rc 1 "$MBSTATUS"
expect_rc 1 "$MBUTIL" query

# Usage errors and --help / --version.
expect_rc 0 "$MBUTIL" --help; out_has "hold AMOUNT"
expect_rc 0 "$MBUTIL" --version; out_has "membroker-suite"
expect_rc 0 "$MBSTATUS" --help; out_has "--json"
expect_rc 0 "$MBSTATUS" --version; out_has "membroker-suite"
expect_rc 2 "$MBUTIL"
expect_rc 2 "$MBUTIL" frobnicate
expect_rc 2 "$MBSTATUS" --bogus
expect_rc 2 "$MBSTATUS" extra-argument

start_broker 400p
# The socket file exists before the broker listens: wait until it answers.
i=0
until "$MBUTIL" -q query 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 200 ] && fail "broker does not answer"; sleep 0.05
done

expect_rc 2 "$MBUTIL" request lots
expect_rc 2 "$MBUTIL" request
expect_rc 0 "$MBUTIL" query
out_has "total: *400 pages"
out_has "pool: *400 pages"

# Full grant, units, percent, a sequence on one connection.
expect_rc 0 "$MBUTIL" request 100p
out_has "granted 100 of 100 pages"
expect_rc 0 "$MBUTIL" request 25%
out_has "granted 100 of 100 pages"
pagesize=$(getconf PAGESIZE)
expect_rc 0 "$MBUTIL" request "$((pagesize * 3 / 1024))K"
out_has "granted 3 of 3 pages"
expect_rc 0 "$MBUTIL" request 40 return 15 query
out_has "held: *25 pages"
# A fresh connection holds nothing: returning is an over-return.
expect_rc 1 "$MBUTIL" return 1p
grep -q "returning more than held" "$TEST_TMP/err" || fail "no over-return message"

# A holder keeps its pages until signalled; status shows it.
"$MBUTIL" hold 300p >"$TEST_TMP/hold.out" 2>&1 &
HOLD=$!
at_exit "kill $HOLD 2>/dev/null"
wait_for "$TEST_TMP/hold.out" "^holding" "holder did not start"
[ "$(json 's["pool"]')" = 100 ] || fail "pool should be 100 with 300 held"
[ "$(json 's["total"]')" = 400 ] || fail "total should be 400"
[ "$(json "[r['balance'] for r in s['rows'] if r['pid'] == $HOLD][0]")" = 300 ] || fail "holder row"
[ "$(json "[r['kind'] for r in s['rows'] if r['pid'] == $HOLD][0]")" = sink ] || fail "holder kind"
[ "$(json "[r['command'] for r in s['rows'] if r['pid'] == $HOLD][0]")" = mbutil ] || fail "holder command"
[ "$(json "[r['request'] for r in s['rows'] if r['pid'] == $HOLD][0]")" = None ] || fail "holder request"
[ "$(json "len(s['rows']) == s['clients']")" = True ] || fail "row count"

# Partial grant and denied reserve report exit status 3.
expect_rc 3 "$MBUTIL" request 150p
out_has "granted 100 of 150 pages"
expect_rc 3 "$MBUTIL" reserve 150p
out_has "denied"

# The table: header and the holder's row, columns aligned.
expect_rc 0 "$MBSTATUS"
out_has "pool 100 of 400 pages"
out_has "ID  *PID  *COMMAND  *KIND  *BALANCE"
grep -Eq "^ *[0-9]+  +$HOLD  +mbutil  +sink  +300 " "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "no table row for the holder"; }
awk 'NR > 3 && length($0) > 0 { print index($0, "mbutil") + index($0, "mbstatus") }' "$TEST_TMP/out" | sort -u |
	wc -l | grep -qx 1 || { cat "$TEST_TMP/out"; fail "COMMAND column not aligned"; }

kill -TERM "$HOLD"; wait "$HOLD"; rc=$?
[ "$rc" = 0 ] || fail "holder exited $rc on SIGTERM"
[ "$(json 's["pool"]')" = 400 ] || fail "pages not back after the holder left"

# A bidi holder gives back when asked; a timed hold ends by itself.
"$MBUTIL" --kind bidi hold 100% 20s >"$TEST_TMP/bidi.out" 2>&1 &
BIDI=$!
at_exit "kill $BIDI 2>/dev/null"
wait_for "$TEST_TMP/bidi.out" "^holding" "bidi holder did not start"
expect_rc 0 "$MBUTIL" reserve 50p
out_has "granted 50 of 50"
grep -q "share: asked 50 pages (reserve), giving 50" "$TEST_TMP/bidi.out" || { cat "$TEST_TMP/bidi.out"; fail "bidi did not give back"; }
kill -INT "$BIDI"; wait "$BIDI" || fail "bidi holder failed"
expect_rc 0 "$MBUTIL" hold 10p 200ms
out_has "holding 10 pages"

# A source lends and is repaid.
"$MBUTIL" --source 50p hold 0 20s >"$TEST_TMP/src.out" 2>&1 &
SRC=$!
at_exit "kill $SRC 2>/dev/null"
wait_for "$TEST_TMP/src.out" "^holding" "source did not start"
[ "$(json 's["total"]')" = 450 ] || fail "a source adds to the total"
expect_rc 0 "$MBUTIL" request 420p
grep -q "giving 20" "$TEST_TMP/src.out" || { cat "$TEST_TMP/src.out"; fail "source did not lend"; }
wait_for "$TEST_TMP/src.out" "repay: 20 pages" "source not repaid"
kill "$SRC"; wait "$SRC"

# --watch repeats until signalled.
"$MBSTATUS" --json --watch 100ms >"$TEST_TMP/watch.out" 2>&1 &
W=$!
i=0
while [ "$(grep -c '^{"pool"' "$TEST_TMP/watch.out")" -lt 3 ]; do
	i=$((i + 1)); [ $i -gt 400 ] && fail "--watch printed fewer than 3 snapshots in 20 s"
	kill -0 "$W" 2>/dev/null || fail "mbstatus --watch exited by itself"
	sleep 0.05
done
kill -TERM "$W"; wait "$W" || fail "mbstatus --watch did not exit cleanly"
expect_rc 2 "$MBSTATUS" --watch=0
exit 0
