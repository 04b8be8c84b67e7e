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

truncate -s 6M "$MNT/f" || fail "truncate -s 6M"
fallocate -n -o 6M -l 6M "$MNT/f" || fail "fallocate past the end"
expect_eq "size after fallocate -n" "$(stat -c %s "$MNT/f")" $((6 * MiB))
expect_eq "used by the preallocation" "$(tfs_used)" $((6 * MiB))
dd if=/dev/zero of="$MNT/f" bs=1M count=6 conv=notrunc status=none 2>/dev/null &&
	fail "6M written into the holes of a file holding 6M past its end, on an 8M quota"
b=$(back_bytes f)
[ "$b" -le $((8 * MiB)) ] || fail "tmpfs holds $b bytes on an 8M quota"
expect_eq "used equals the pages tmpfs holds" "$(tfs_used)" "$b"
bal=$(tfs_balance)
[ "$bal" -ge "$b" ] || fail "broker balance $bal below the $b bytes in use"

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
