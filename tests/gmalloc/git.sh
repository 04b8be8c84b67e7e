#!/bin/sh
# git init, add, commit and log on a repository under gmalloc.
. "$top_srcdir/tests/gmalloc/gmlib.sh"
need_cmd git

HOME="$TEST_TMP"; export HOME
GIT_CONFIG_NOSYSTEM=1; export GIT_CONFIG_NOSYSTEM
GIT_AUTHOR_DATE="2020-01-01T00:00:00Z"; GIT_COMMITTER_DATE="$GIT_AUTHOR_DATE"
export GIT_AUTHOR_DATE GIT_COMMITTER_DATE
repo="$TEST_TMP/repo"
g() { pre git -C "$repo" -c user.name=T -c user.email=t@example.org "$@"; }

pre git init -q "$repo" 2>"$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "git init failed"; }
for i in 1 2 3; do
	seq 1 $((i * 2000)) >"$repo/file$i.txt"
	g add "file$i.txt" || fail "git add failed"
	g commit -q -m "commit $i" || fail "git commit failed"
done
g log --format=%s >"$TEST_TMP/log" 2>"$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "git log failed"; }
printf 'commit 3\ncommit 2\ncommit 1\n' | cmp -s - "$TEST_TMP/log" || fail "log: $(cat "$TEST_TMP/log")"
g gc -q 2>"$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "git gc failed"; }
g fsck --strict 2>"$TEST_TMP/err" >/dev/null || { cat "$TEST_TMP/err"; fail "git fsck failed"; }
[ "$(g show HEAD~1:file2.txt | wc -l)" = 4000 ] || fail "file2 content"
echo "git ok"
