# tests of gmalloc
