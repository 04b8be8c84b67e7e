# The simulated device (device/run.sh), short: root and a memory cgroup
# needed; it skips with its reason otherwise.
TESTS += tests/device.sh
EXTRA_DIST += tests/device.sh
