# track_fs: the FUSE file system that charges its data to the broker
# (GPL-2.0, see COPYING.GPL-2).  Built only when libfuse3 is found.
if HAVE_FUSE
bin_PROGRAMS += track_fs/track_fs
track_fs_track_fs_SOURCES = track_fs/main.c track_fs/ops.c \
	track_fs/charge.c track_fs/walk.c track_fs/conf.c track_fs/tfs.h
track_fs_track_fs_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/libmbclient
track_fs_track_fs_CFLAGS = $(AM_CFLAGS) $(FUSE3_CFLAGS) $(PTHREAD_CFLAGS)
track_fs_track_fs_LDADD = libmbclient/libmbclient.la common/libmbcommon.la \
	$(FUSE3_LIBS) $(PTHREAD_LIBS)
endif
