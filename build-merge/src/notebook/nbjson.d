build-merge/src/notebook/nbjson.o: src/notebook/nbjson.c \
 src/notebook/nbjson.h src/util/buf.h src/util/jwrite.h \
 src/util/xmalloc.h
src/notebook/nbjson.h:
src/util/buf.h:
src/util/jwrite.h:
src/util/xmalloc.h:
