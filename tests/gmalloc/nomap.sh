#!/bin/sh
# After gmalloc's first call, no malloc-family call changes the memory map
# (mmap, munmap, mremap, mprotect, brk): a seccomp filter kills the
# program on the first such call while it runs the whole family, large
# blocks and malloc_trim, twenty times over; again with page_return_thread.
# And with page_return_thread no malloc-family call makes a madvise: the
# filter forbids it to the program's thread, whose frees of large blocks
# and of slabs' last objects kill it without that option (SIGSYS).  By
# default (auto) that holds from the program's first thread on.
. "$top_srcdir/tests/gmalloc/gmlib.sh"

rc=0
pre "$FAMILY" seccomp >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ $rc -eq 77 ] && skip "seccomp filters are not available"
[ $rc -eq 0 ] || { cat "$TEST_TMP/err"; fail "exit status $rc (159 = killed by SIGSYS: the memory map changed)"; }
grep -qx 'no map changes' "$TEST_TMP/out" || fail "no success line"

# The same with page_return_thread: its thread is made at the first call.
rc=0
GMALLOC_PAGE_RETURN_THREAD=on pre "$FAMILY" seccomp >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ $rc -eq 0 ] || { cat "$TEST_TMP/err"; fail "page_return_thread: exit status $rc"; }
grep -qx 'no map changes' "$TEST_TMP/out" || fail "page_return_thread: no success line"

rc=0
pre "$FAMILY" noadvise >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ $rc -eq 159 ] || { cat "$TEST_TMP/out" "$TEST_TMP/err"; fail "without page_return_thread the frees made no madvise (status $rc)"; }
rc=0
GMALLOC_PAGE_RETURN_THREAD=on pre "$FAMILY" noadvise >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ $rc -eq 0 ] || { cat "$TEST_TMP/out" "$TEST_TMP/err"; fail "page_return_thread: exit status $rc (159 = a call made a madvise)"; }
grep -qx 'no madvise in the calls' "$TEST_TMP/out" || fail "page_return_thread: no success line"

# The default, auto: the program made a thread, so gmalloc's thread runs.
rc=0
pre "$FAMILY" noadvise thread >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ $rc -eq 0 ] || { cat "$TEST_TMP/out" "$TEST_TMP/err"; fail "default after a thread: exit status $rc (159 = a call made a madvise)"; }
grep -qx 'no madvise in the calls' "$TEST_TMP/out" || fail "default after a thread: no success line"
rc=0
GMALLOC_PAGE_RETURN_THREAD=off pre "$FAMILY" noadvise thread >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ $rc -eq 159 ] || { cat "$TEST_TMP/out" "$TEST_TMP/err"; fail "off: the frees made no madvise (status $rc)"; }
echo "nomap ok"
