#!/bin/sh
# mbclient.h stands alone: strict C99 and C11, and C++ when a compiler is
# there; the pkg-config file names the library.
. "$top_srcdir/tests/lib.sh"
mk_tmpdir
CC=${CC:-cc}
cat >"$TEST_TMP/use.c" <<'EOC'
#include <mbclient.h>
#include <string.h>
int main(void)
{
	static mb_client c;
	struct mb_options o;
	memset(&o, 0, sizeof(o));
	o.kind = MB_CLIENT_SINK;
	return mb_is_open(&c) + (mb_strerror(MB_EINVAL) == 0) + (int)sizeof(o) * 0;
}
EOC
for std in c99 c11; do
	$CC -std=$std -Wall -Wextra -Werror -pedantic -I"$top_srcdir/libmbclient" \
		-c "$TEST_TMP/use.c" -o "$TEST_TMP/use.o" || fail "mbclient.h does not compile as $std"
done
if command -v c++ >/dev/null; then
	cp "$TEST_TMP/use.c" "$TEST_TMP/use.cc"
	c++ -std=c++11 -Wall -Wextra -Werror -I"$top_srcdir/libmbclient" \
		-c "$TEST_TMP/use.cc" -o "$TEST_TMP/use.o" || fail "mbclient.h does not compile as C++"
else
	echo "no C++ compiler: C++ check left out"
fi
pc="$top_builddir/libmbclient/libmbclient.pc"
grep -q '^Libs:.*-lmbclient' "$pc" || fail "libmbclient.pc lacks -lmbclient"
grep -q '^Cflags:.*-I' "$pc" || fail "libmbclient.pc lacks Cflags"
