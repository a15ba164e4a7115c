build-merge/src/http/sse.o: src/http/sse.c src/http/sse.h \
 src/http/server.h src/util/buf.h src/util/err.h src/util/xmalloc.h
src/http/sse.h:
src/http/server.h:
src/util/buf.h:
src/util/err.h:
src/util/xmalloc.h:
