# Chaos: every kind of client, random kills, a broker restart (real programs).
TESTS += tests/chaos/chaos.sh
EXTRA_DIST += tests/chaos/chaos.sh tests/chaos/chaos.py
