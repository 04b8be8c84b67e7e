#!/bin/sh
# A short libFuzzer run of fuzz/fuzz_conf (see fuzz/short-run.sh).
exec "${top_srcdir:?run through make check}/fuzz/short-run.sh" conf
