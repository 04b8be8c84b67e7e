#!/bin/sh
# demo.sh - builds the suite, then runs the simulated swapless device
# (device/run.sh): a memory cgroup without swap running the same spiky
# workloads with the suite and without it, the numbers of both runs and a
# timeline chart.  Options go to device/run.sh (./demo.sh --help).
# ./tour.sh shows the parts one by one instead.
TOP=$(cd "$(dirname "$0")" && pwd)
case ${1:-} in -h|--help) exec "$TOP/device/run.sh" --help ;; esac
. "$TOP/scripts/deps.sh"

install_packages $DEB_BUILD $DEB_DEVICE
bootstrap
B=$TOP/build/plain
echo "Building into $B ..."
build_tree "$B" --enable-werror CFLAGS="-O2 -g"
exec "$TOP/device/run.sh" --build "$B" "$@"
