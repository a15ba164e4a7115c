build-merge/src/kernel/kmgr.o: src/kernel/kmgr.c src/kernel/kmgr.h \
 src/kernel/kclient.h src/kernel/kconn.h src/util/err.h \
 src/kernel/kwire.h src/kernel/kspec.h src/kernel/kproc.h src/util/buf.h \
 src/util/jwrite.h src/util/log.h src/util/xmalloc.h
src/kernel/kmgr.h:
src/kernel/kclient.h:
src/kernel/kconn.h:
src/util/err.h:
src/kernel/kwire.h:
src/kernel/kspec.h:
src/kernel/kproc.h:
src/util/buf.h:
src/util/jwrite.h:
src/util/log.h:
src/util/xmalloc.h:
