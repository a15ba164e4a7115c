build-merge/src/kernel/kspec.o: src/kernel/kspec.c src/kernel/kspec.h \
 src/util/err.h src/util/buf.h src/util/fsutil.h src/util/xmalloc.h
src/kernel/kspec.h:
src/util/err.h:
src/util/buf.h:
src/util/fsutil.h:
src/util/xmalloc.h:
