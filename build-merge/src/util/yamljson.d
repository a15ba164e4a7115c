build-merge/src/util/yamljson.o: src/util/yamljson.c src/util/yamljson.h \
 src/util/err.h src/util/buf.h src/util/xmalloc.h
src/util/yamljson.h:
src/util/err.h:
src/util/buf.h:
src/util/xmalloc.h:
