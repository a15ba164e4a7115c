build-merge/src/notebook/nb.o: src/notebook/nb.c src/notebook/nb.h \
 src/util/err.h src/util/buf.h src/util/fsutil.h src/util/jparse.h \
 src/util/xmalloc.h
src/notebook/nb.h:
src/util/err.h:
src/util/buf.h:
src/util/fsutil.h:
src/util/jparse.h:
src/util/xmalloc.h:
