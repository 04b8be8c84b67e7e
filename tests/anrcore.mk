# tests of anrcore
