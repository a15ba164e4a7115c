build-merge/src/kernel/kwire.o: src/kernel/kwire.c src/kernel/kwire.h \
 src/util/err.h src/util/hex.h src/util/buf.h src/util/jparse.h \
 src/util/jwrite.h src/util/timeutil.h src/util/xmalloc.h
src/kernel/kwire.h:
src/util/err.h:
src/util/hex.h:
src/util/buf.h:
src/util/jparse.h:
src/util/jwrite.h:
src/util/timeutil.h:
src/util/xmalloc.h:
