build-merge/src/util/buf.o: src/util/buf.c src/util/buf.h \
 src/util/xmalloc.h
src/util/buf.h:
src/util/xmalloc.h:
