build-merge/src/notebook/nbparams.o: src/notebook/nbparams.c \
 src/notebook/nbparams.h src/util/err.h src/util/buf.h src/util/xmalloc.h \
 src/util/yamljson.h
src/notebook/nbparams.h:
src/util/err.h:
src/util/buf.h:
src/util/xmalloc.h:
src/util/yamljson.h:
