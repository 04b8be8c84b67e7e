#!/bin/sh
# Chaos: a real mbserver and clients of every kind (mbutil sinks, bidi
# holders and a source, anr_malloc cache holders, python3 under gmalloc),
# a third of them SIGKILLed at random, the broker killed and restarted in
# the middle.  Afterwards the broker's ledger matches what the clients say
# they hold, and once every client is gone every page is back.  Bounded
# (under a minute); CHAOS_SEED picks the victims and the moments.
. "$top_srcdir/tests/lib.sh"
command -v python3 >/dev/null 2>&1 || skip "needs python3"
for f in mbserver/mbserver libmbclient/mbstatus libmbclient/mbutil \
	 anrmalloc/examples/cache_holder gmalloc/.libs/libgmalloc.so; do
	[ -e "$top_builddir/$f" ] || skip "$f is not built"
done
mk_tmpdir
export TEST_TMP
timeout 90 python3 "$top_srcdir/tests/chaos/chaos.py"
