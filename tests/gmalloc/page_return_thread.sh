#!/bin/sh
# When gmalloc's page-return thread exists, counted in /proc/self/task:
# with auto (the default) a program of one thread has none, and one that
# makes a thread has it from then on; on has it from the first call; off
# never.  A fork child has none until it makes a thread of its own.  It
# is named gmalloc-return and blocks every signal.
. "$top_srcdir/tests/gmalloc/gmlib.sh"

# mode, then the expected "tasks A B" and "child C D" lines
check_tasks() {
	mode=$1
	shift
	rc=0
	if [ "$mode" = default ]; then
		pre "$FAMILY" tasks >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
	else
		GMALLOC_PAGE_RETURN_THREAD=$mode pre "$FAMILY" tasks >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
	fi
	[ $rc -eq 0 ] || { cat "$TEST_TMP/err"; fail "$mode: exit status $rc"; }
	grep -qx "$1" "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "$mode: expected '$1'"; }
	grep -qx "$2" "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "$mode: expected '$2' in the fork child"; }
	[ ! -s "$TEST_TMP/err" ] || { cat "$TEST_TMP/err"; fail "$mode: printed on stderr"; }
}

check_tasks default "tasks 1 3" "child 1 3"
check_tasks auto "tasks 1 3" "child 1 3"
check_tasks on "tasks 2 3" "child 1 3"
check_tasks off "tasks 1 2" "child 1 2"

# A value that is not one of the three: one line naming it, and auto.
rc=0
GMALLOC_PAGE_RETURN_THREAD=sometimes pre "$FAMILY" tasks >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ $rc -eq 0 ] || fail "bad value: exit status $rc"
grep -q 'GMALLOC_PAGE_RETURN_THREAD' "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "bad value not named"; }
[ "$(wc -l <"$TEST_TMP/err")" -eq 1 ] || { cat "$TEST_TMP/err"; fail "bad value: expected one line"; }
grep -qx "tasks 1 3" "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "bad value: not auto"; }
# Its name tells it from the program's threads in ps -L, top -H and
# /proc/PID/task/TID/comm.
for mode in auto off; do
	rc=0
	GMALLOC_PAGE_RETURN_THREAD=$mode pre "$FAMILY" names >"$TEST_TMP/out" 2>&1 || rc=$?
	[ $rc -eq 0 ] || { cat "$TEST_TMP/out"; fail "names, $mode: exit status $rc"; }
	named=0
	grep -qx "thread gmalloc-return" "$TEST_TMP/out" && named=1
	[ $named -eq $([ $mode = auto ] && echo 1 || echo 0) ] ||
		{ cat "$TEST_TMP/out"; fail "$mode: a thread named gmalloc-return: $named"; }
done

# The thread takes no signal: one the program blocks after the thread was
# made (at the first call with on, at its first thread with auto), sent to
# the process, reaches the program's wait.  Before: killed by SIGUSR1.
for mode in on auto; do
	rc=0
	GMALLOC_PAGE_RETURN_THREAD=$mode pre "$FAMILY" signal thread >"$TEST_TMP/out" 2>&1 || rc=$?
	[ $rc -eq 0 ] || { cat "$TEST_TMP/out"; fail "$mode: a signal for the program: exit status $rc"; }
	grep -qx "signal taken by the program" "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "$mode: signal not taken"; }
done
echo "page_return_thread ok"
