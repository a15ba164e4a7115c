build-merge/src/util/jsonyaml.o: src/util/jsonyaml.c src/util/jsonyaml.h \
 src/util/buf.h src/util/err.h src/util/xmalloc.h src/util/yamljson.h
src/util/jsonyaml.h:
src/util/buf.h:
src/util/err.h:
src/util/xmalloc.h:
src/util/yamljson.h:
