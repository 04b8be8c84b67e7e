#!/bin/sh
# The man pages cover the API, the programs and their settings:
#  - every function, error code and event of mbclient.h in libmbclient(3);
#  - for every program, each option its --help lists is documented in its
#    man page as an item (a .B/.BR/.TP/.IP request line naming it, not a
#    passing mention), and each configuration key its --help lists is an
#    item of the page that documents the settings;
#  - every mbutil command in mbutil(1).
. "$top_srcdir/tests/lib.sh"
man="$top_srcdir/man"
missing=0
miss() { echo "$1"; missing=1; }
mention() { # mention PAGE WORD: anywhere in the page (API names)
	pat=$(printf '%s' "$2" | sed 's/-/\\\\-/g')
	grep -q -- "$pat" "$1" || grep -q -- "$2" "$1" || miss "$(basename "$1") does not mention $2"
}
item() { # item PAGE WORD: on a request line of the page, as a whole word
	pat=$(printf '%s' "$2" | sed 's/-/\\\\-/g')
	grep -E -q "^\.(B|BR|BI|RB|IB|IR|TP|IP)( .*)?(^|[^a-zA-Z0-9_-])${pat}([^a-zA-Z0-9_-]|$)" "$1" ||
		miss "$(basename "$1") does not document $2"
}
# Options of a --help text: the option column of lines that start with '-'.
help_options() {
	sed -n 's/^ \{1,\}\(-[-a-zA-Z].*\)/\1/p' "$1" | sed 's/  .*//' |
		grep -o -E -- '--?[a-z][a-z-]*' | sort -u
}
# Configuration keys of a --help text (mb_conf_help lines).
help_keys() {
	sed -n 's/^  \([a-z][a-z_0-9]*\)  *[a-z]\{1,\}  *default: .*/\1/p' "$1"
}
check_program() { # check_program BINARY PAGE KEYPAGE
	help="$TEST_TMP/$(basename "$1").help"
	"$1" --help >"$help" 2>&1 || fail "$1 --help failed"
	opts=$(help_options "$help")
	[ -n "$opts" ] || fail "$1 --help lists no options"
	for o in $opts; do
		item "$2" "$o"
	done
	for k in $(help_keys "$help"); do
		item "$3" "$k"
	done
}
mk_tmpdir

for f in $(sed -n 's/^[a-z_0-9 ]*[ *]\(mb_[a-z_]*\)(.*/\1/p' "$top_srcdir/libmbclient/mbclient.h"); do
	mention "$man/libmbclient.3" "$f"
done
for e in $(sed -n 's/^[[:space:]]*\(MB_E[A-Z]*\) = -[0-9]*,.*/\1/p' "$top_srcdir/libmbclient/mbclient.h"); do
	mention "$man/libmbclient.3" "$e"
done
for e in $(sed -n 's/^[[:space:]]*\(MB_EVENT_[A-Z_]*\) = .*/\1/p' "$top_srcdir/libmbclient/mbclient.h"); do
	mention "$man/libmbclient.3" "$e"
done

check_program "$top_builddir/libmbclient/mbutil" "$man/mbutil.1" "$man/mbutil.1"
check_program "$top_builddir/libmbclient/mbstatus" "$man/mbstatus.1" "$man/mbstatus.1"
check_program "$top_builddir/mbserver/mbserver" "$man/mbserver.8" "$man/membroker.conf.5"
[ "$(help_keys "$TEST_TMP/mbserver.help" | wc -l)" -gt 10 ] || fail "no keys found in mbserver --help"
if [ -x "$top_builddir/track_fs/track_fs" ]; then
	check_program "$top_builddir/track_fs/track_fs" "$man/track_fs.8" "$man/track_fs.8"
	[ -n "$(help_keys "$TEST_TMP/track_fs.help")" ] || fail "no keys found in track_fs --help"
fi

for c in request reserve return hold query; do
	"$top_builddir/libmbclient/mbutil" --help | grep -q "^  $c" || fail "mbutil --help lacks $c"
	item "$man/mbutil.1" "$c"
done
[ $missing = 0 ] || fail "man pages incomplete"
