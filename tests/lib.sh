# tests/lib.sh - helpers for shell tests (sourced).  Exit status 77 is a
# skip for automake's harness; a skip always prints why.
: "${top_builddir:?run through make check}"
: "${top_srcdir:?run through make check}"

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || skip "needs root"; }
need_fuse() { [ -c /dev/fuse ] || skip "needs /dev/fuse"; command -v fusermount3 >/dev/null || skip "needs fusermount3"; }

# A private temporary directory removed at exit.
mk_tmpdir() {
	TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mbtest.XXXXXX") || fail "mktemp"
	trap 'cleanup_all' EXIT
}
CLEANUPS=""
at_exit() { CLEANUPS="$1; $CLEANUPS"; }
# A failed test first shows the end of the daemons' logs it kept there.
cleanup_all() {
	rc=$?
	eval "$CLEANUPS"
	[ -n "${TEST_TMP:-}" ] || return 0
	if [ "$rc" = 1 ]; then
		for f in "$TEST_TMP"/*.log; do
			[ -f "$f" ] && { echo "--- last lines of ${f##*/}"; tail -n 40 "$f"; }
		done
	fi
	rm -rf "$TEST_TMP"
}

# Start a real mbserver on a private socket: start_broker TOTAL [options...]
# Sets MEMBROKER_SOCKET and BROKER_PID.
start_broker() {
	total=$1; shift
	MEMBROKER_SOCKET="$TEST_TMP/mb.sock"; export MEMBROKER_SOCKET
	"$top_builddir/mbserver/mbserver" --config /dev/null --socket "$MEMBROKER_SOCKET" \
		--total "$total" --log-level info "$@" >"$TEST_TMP/mbserver.log" 2>&1 &
	BROKER_PID=$!
	at_exit "kill $BROKER_PID 2>/dev/null; wait $BROKER_PID 2>/dev/null"
	wait_broker
}

# The socket file appears at bind(), before listen(): wait until a client
# really gets an answer.
wait_broker() {
	i=0
	until "$top_builddir/libmbclient/mbstatus" --socket "$MEMBROKER_SOCKET" >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -gt 400 ] && { cat "$TEST_TMP/mbserver.log"; fail "mbserver did not start"; }
		kill -0 "$BROKER_PID" 2>/dev/null || { cat "$TEST_TMP/mbserver.log"; fail "mbserver exited"; }
		sleep 0.05
	done
}

# wait_until WHAT COMMAND...: run COMMAND until it succeeds, for at most
# 10 s; then print $WAIT_LOG (if set) and fail naming WHAT.  A bound on a
# wait, not a timing: the test asserts the state, not when it came.
wait_until() {
	what=$1; shift
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 200 ]; then
			[ -n "${WAIT_LOG:-}" ] && cat $WAIT_LOG
			fail "timed out waiting for $what"
		fi
		sleep 0.05
	done
}

# fake_meminfo FILE MIB: a meminfo for mbserver's device = meminfo: a
# 1 GiB device of which MIB are used; replaced whole (renamed into place).
fake_meminfo() {
	printf 'MemTotal: 1048576 kB\nMemAvailable: %d kB\nCommitted_AS: 1000 kB\n' \
		$(( (1024 - $2) * 1024 )) >"$1.new" && mv "$1.new" "$1"
}

# mem_state_is normal|notify|deny: the broker's watermark state.
mem_state_is() {
	"$top_builddir/libmbclient/mbutil" memstate | grep -q "^state: *$1\$"
}
