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
cleanup_all() { eval "$CLEANUPS"; [ -n "${TEST_TMP:-}" ] && rm -rf "$TEST_TMP"; }

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
