build-merge/src/spark/sparkspec.o: src/spark/sparkspec.c \
 src/spark/sparkspec.h src/util/buf.h src/util/err.h src/util/xmalloc.h
src/spark/sparkspec.h:
src/util/buf.h:
src/util/err.h:
src/util/xmalloc.h:
