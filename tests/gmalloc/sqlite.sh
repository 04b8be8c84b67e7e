#!/bin/sh
# sqlite3 builds and queries a database under gmalloc.
. "$top_srcdir/tests/gmalloc/gmlib.sh"
need_cmd sqlite3

cat >"$TEST_TMP/build.sql" <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v INTEGER);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)
INSERT INTO t(name, v) SELECT printf('name-%06d', x), (x * 7919) % 1000 FROM c;
CREATE INDEX t_v ON t(v);
SQL
cat >"$TEST_TMP/query.sql" <<'SQL'
SELECT count(*), sum(v), min(name), max(name) FROM t;
SELECT v, count(*) FROM t WHERE v BETWEEN 10 AND 12 GROUP BY v ORDER BY v;
SELECT group_concat(name, ',') FROM (SELECT name FROM t ORDER BY v DESC, id LIMIT 3);
SQL
pre sqlite3 "$TEST_TMP/db" <"$TEST_TMP/build.sql" 2>"$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "build failed"; }
GMALLOC_REPORT_AT_EXIT=on pre sqlite3 "$TEST_TMP/db" <"$TEST_TMP/query.sql" >"$TEST_TMP/got" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "query failed"; }
check_report "$TEST_TMP/err"
sqlite3 "$TEST_TMP/db" <"$TEST_TMP/query.sql" >"$TEST_TMP/want" || fail "query without gmalloc failed"
head -n 1 "$TEST_TMP/got" | grep -qx '100000|49950000|name-000001|name-100000' || fail "first row: $(head -n 1 "$TEST_TMP/got")"
[ "$(wc -l <"$TEST_TMP/got")" = 5 ] || fail "expected 5 rows"
cmp -s "$TEST_TMP/want" "$TEST_TMP/got" || { diff "$TEST_TMP/want" "$TEST_TMP/got"; fail "query output differs"; }
echo "sqlite ok"
