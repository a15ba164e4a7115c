build-merge/src/spark/seventlog.o: src/spark/seventlog.c \
 src/spark/seventlog.h src/util/buf.h src/util/jparse.h \
 src/util/xmalloc.h
src/spark/seventlog.h:
src/util/buf.h:
src/util/jparse.h:
src/util/xmalloc.h:
