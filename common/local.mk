# common: the internal library every component links (wire format, log
# writer, amounts, config table, the libraries' own threads).  Built PIC
# so it can go into the shared libraries; no heap and no stdio anywhere
# in it.
noinst_LTLIBRARIES += common/libmbcommon.la
common_libmbcommon_la_SOURCES = \
	common/mb_wire.c common/mb_wire.h \
	common/mb_log.c common/mb_log.h \
	common/mb_size.c common/mb_size.h \
	common/mb_conf.c common/mb_conf.h \
	common/mb_addr.c common/mb_addr.h \
	common/mb_thread.c common/mb_thread.h \
	common/mb_clock.h
