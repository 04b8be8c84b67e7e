#!/bin/sh
# gcc (driver, cc1, as, ld, all preloaded) compiles a program under
# gmalloc, and the program runs under gmalloc too.
. "$top_srcdir/tests/gmalloc/gmlib.sh"
need_cmd gcc

cat >"$TEST_TMP/prog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node { struct node *next; int v; };
int main(void)
{
	struct node *head = NULL;
	long sum = 0;
	for (int i = 1; i <= 100000; i++) {
		struct node *n = malloc(sizeof(*n));
		n->v = i; n->next = head; head = n;
	}
	while (head) { struct node *n = head->next; sum += head->v; free(head); head = n; }
	char *s = strdup("compiled under gmalloc");
	printf("%s %ld\n", s, sum);
	free(s);
	return 0;
}
C
pre gcc -O2 -Wall -o "$TEST_TMP/prog" "$TEST_TMP/prog.c" 2>"$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "gcc failed"; }
[ ! -s "$TEST_TMP/err" ] || { cat "$TEST_TMP/err"; fail "gcc printed diagnostics"; }
out=$(GMALLOC_REPORT_AT_EXIT=on pre "$TEST_TMP/prog" 2>"$TEST_TMP/err") || fail "program failed"
[ "$out" = "compiled under gmalloc 5000050000" ] || fail "program printed '$out'"
check_report "$TEST_TMP/err"

# C++: operator new/delete and over-aligned new (aligned_alloc) reach gmalloc.
if command -v g++ >/dev/null 2>&1; then
	cat >"$TEST_TMP/prog.cc" <<'CC'
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>
struct alignas(256) Big { char x[300]; };
int main()
{
	std::map<int, std::string> m;
	for (int i = 0; i < 100000; i++)
		m[i] = std::to_string(i * 3);
	std::vector<std::unique_ptr<Big>> v;
	for (int i = 0; i < 1000; i++) {
		v.emplace_back(new Big);
		if (reinterpret_cast<std::uintptr_t>(v.back().get()) % 256)
			return 1;
	}
	std::size_t s = 0;
	for (auto &p : m)
		s += p.second.size();
	std::printf("%zu\n", s);
	return 0;
}
CC
	pre g++ -O2 -std=c++17 -o "$TEST_TMP/progxx" "$TEST_TMP/prog.cc" 2>"$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "g++ failed"; }
	out=$(pre "$TEST_TMP/progxx") || fail "C++ program failed"
	[ "$out" = 562960 ] || fail "C++ program printed '$out'"
fi
echo "gcc ok"
