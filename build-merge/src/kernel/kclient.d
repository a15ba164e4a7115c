build-merge/src/kernel/kclient.o: src/kernel/kclient.c \
 src/kernel/kclient.h src/kernel/kconn.h src/util/err.h \
 src/kernel/kwire.h src/util/log.h src/util/xmalloc.h src/kernel/zsock.h
src/kernel/kclient.h:
src/kernel/kconn.h:
src/util/err.h:
src/kernel/kwire.h:
src/util/log.h:
src/util/xmalloc.h:
src/kernel/zsock.h:
