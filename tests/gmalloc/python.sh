#!/bin/sh
# python3 builds a big dict and list under gmalloc; its output must be the
# same as under glibc.
. "$top_srcdir/tests/gmalloc/gmlib.sh"
need_cmd python3

cat >"$TEST_TMP/work.py" <<'PY'
import hashlib, json
d = {i: str(i) * 3 for i in range(300000)}
l = [x * 2 for x in range(500000)]
s = {frozenset((i, i + 1)) for i in range(50000)}
h = hashlib.sha256()
for i in range(0, 300000, 3):
    h.update(d[i].encode())
del d[5]
blob = json.dumps([l[:1000], sorted(d)[:1000]])
l.sort(reverse=True)
print(len(d), sum(l), len(s), len(json.loads(blob)[1]), h.hexdigest())
PY
python3 "$TEST_TMP/work.py" >"$TEST_TMP/want" || fail "python3 without gmalloc failed"
GMALLOC_REPORT_AT_EXIT=on pre python3 "$TEST_TMP/work.py" >"$TEST_TMP/got" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "python3 under gmalloc failed"; }
cmp -s "$TEST_TMP/want" "$TEST_TMP/got" || fail "output differs: $(cat "$TEST_TMP/got") vs $(cat "$TEST_TMP/want")"
check_report "$TEST_TMP/err"
# The same with every block guarded and freed memory trashed.
GMALLOC_GUARD=on GMALLOC_TRASH=on pre python3 "$TEST_TMP/work.py" >"$TEST_TMP/got" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "python3 under gmalloc with guard and trash failed"; }
cmp -s "$TEST_TMP/want" "$TEST_TMP/got" || fail "output differs with guard and trash"
# The same with a stack kept for every block (the unwinder runs inside
# every malloc, including those made while modules are loaded); the
# report names the interpreter's own frames.
GMALLOC_BACKTRACE_DEPTH=8 GMALLOC_REPORT_AT_EXIT=on pre python3 "$TEST_TMP/work.py" >"$TEST_TMP/got" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "python3 under gmalloc with backtrace_depth 8 failed"; }
cmp -s "$TEST_TMP/want" "$TEST_TMP/got" || fail "output differs with backtrace_depth 8"
grep -q '^gmalloc: live blocks by call site (backtrace_depth 8): ' "$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "no call-site section"; }
grep -q '^    #[0-7] /.*python[^ ]*+0x[0-9a-f]*$' "$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "no frame of the interpreter named"; }
echo "python ok: $(cat "$TEST_TMP/got")"
