build-merge/src/util/errlist.o: src/util/errlist.c src/util/errlist.h \
 src/util/buf.h src/util/xmalloc.h
src/util/errlist.h:
src/util/buf.h:
src/util/xmalloc.h:
