#!/bin/sh
# A short libFuzzer run of fuzz/fuzz_wire (see fuzz/short-run.sh).
exec "${top_srcdir:?run through make check}/fuzz/short-run.sh" wire
