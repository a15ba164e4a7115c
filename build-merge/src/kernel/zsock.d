build-merge/src/kernel/zsock.o: src/kernel/zsock.c src/kernel/zsock.h \
 src/kernel/kwire.h src/util/err.h src/kernel/zmtp.h src/util/buf.h \
 src/util/log.h src/util/xmalloc.h
src/kernel/zsock.h:
src/kernel/kwire.h:
src/util/err.h:
src/kernel/zmtp.h:
src/util/buf.h:
src/util/log.h:
src/util/xmalloc.h:
