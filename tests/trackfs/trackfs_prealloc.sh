#!/bin/sh
# Preallocation past the end of a file (fallocate --keep-size) is charged,
# and writing into the holes below the end afterwards is charged too: the
# pages tmpfs really uses never exceed what the broker granted.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/trackfs/lib_tfs.sh"
tfs_need
tfs_need_broker 8M
tfs_mount -o step=256K,release_hysteresis=1M

# Backing bytes in use (st_blocks * 512) of one file.
back_bytes() { stat -c '%b %B' "$BACK/$1" | { read -r b u; echo $((b * u)); }; }

truncate -s 3M "$MNT/f" || fail "truncate -s 3M"
fallocate -n -o 3M -l 3M "$MNT/f" || fail "fallocate past the end"
expect_eq "size after fallocate -n" "$(stat -c %s "$MNT/f")" $((3 * MiB))
expect_eq "used by the preallocation" "$(tfs_used)" $((3 * MiB))
# The file's blocks now cover its size while all of it below the end is a
# hole: filling it is charged.
dd if=/dev/zero of="$MNT/f" bs=1M count=3 conv=notrunc status=none ||
	fail "write into the holes"
b=$(back_bytes f)
expect_eq "pages tmpfs holds" "$b" $((6 * MiB))
expect_eq "used equals the pages tmpfs holds" "$(tfs_used)" "$b"
bal=$(tfs_balance)
[ "$bal" -ge "$b" ] || fail "broker balance $bal below the $b bytes in use"
dd if=/dev/zero of="$MNT/more" bs=1M count=4 status=none 2>/dev/null &&
	fail "4M more written with 6M in use on an 8M quota"
b=$(($(back_bytes f) + $(back_bytes more)))
[ "$b" -le $((8 * MiB)) ] || fail "tmpfs holds $b bytes on an 8M quota"
expect_eq "used after ENOSPC" "$(tfs_used)" "$b"
rm "$MNT/more"

# Writing inside the preallocated range past the end: charged by what it
# really allocates (nothing new), data kept.
rm "$MNT/f"
expect_eq "used after rm" "$(tfs_used)" 0
touch "$MNT/g" && fallocate -n -l 4M "$MNT/g" || fail "fallocate -n 4M"
dd if=/dev/zero of="$MNT/g" bs=1M count=3 conv=notrunc status=none ||
	fail "write into preallocated pages"
expect_eq "used after writing into preallocated pages" "$(tfs_used)" $((4 * MiB))
expect_eq "pages held by g" "$(back_bytes g)" $((4 * MiB))
rm "$MNT/g"
expect_eq "end" "$(tfs_used)" 0
tfs_umount
echo "PASS"
