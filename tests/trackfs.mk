# tests of trackfs
