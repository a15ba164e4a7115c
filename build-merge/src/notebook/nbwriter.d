build-merge/src/notebook/nbwriter.o: src/notebook/nbwriter.c \
 src/notebook/nbwriter.h src/util/err.h src/notebook/nbjson.h \
 src/util/buf.h src/util/fsutil.h src/util/xmalloc.h
src/notebook/nbwriter.h:
src/util/err.h:
src/notebook/nbjson.h:
src/util/buf.h:
src/util/fsutil.h:
src/util/xmalloc.h:
