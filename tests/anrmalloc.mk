# tests of anrmalloc
