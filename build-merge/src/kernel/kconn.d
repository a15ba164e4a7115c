build-merge/src/kernel/kconn.o: src/kernel/kconn.c src/kernel/kconn.h \
 src/util/err.h src/kernel/kwire.h src/util/fsutil.h src/util/xmalloc.h
src/kernel/kconn.h:
src/util/err.h:
src/kernel/kwire.h:
src/util/fsutil.h:
src/util/xmalloc.h:
