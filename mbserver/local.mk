# mbserver: build rules (paths relative to the top of the tree)
sbin_PROGRAMS += mbserver/mbserver
mbserver_mbserver_SOURCES = \
	mbserver/main.c \
	mbserver/server.c mbserver/server.h \
	mbserver/conf.c mbserver/conf.h \
	mbserver/broker.c mbserver/broker.h \
	mbserver/device.c mbserver/device.h \
	mbserver/watermark.c mbserver/watermark.h \
	mbserver/policy.c mbserver/policy.h
mbserver_mbserver_LDADD = common/libmbcommon.la
dist_man_MANS += man/mbserver.8 man/membroker.conf.5
