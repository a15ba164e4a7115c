build-merge/src/kernel/kproc.o: src/kernel/kproc.c src/kernel/kproc.h \
 src/util/err.h src/util/log.h src/util/xmalloc.h
src/kernel/kproc.h:
src/util/err.h:
src/util/log.h:
src/util/xmalloc.h:
