#!/bin/sh
# A short libFuzzer run of fuzz/fuzz_trackfs (see fuzz/short-run.sh).
exec "${top_srcdir:?run through make check}/fuzz/short-run.sh" trackfs
