build-merge/src/notebook/nbout.o: src/notebook/nbout.c \
 src/notebook/nbout.h src/util/buf.h src/util/xmalloc.h
src/notebook/nbout.h:
src/util/buf.h:
src/util/xmalloc.h:
