build-merge/src/http/router.o: src/http/router.c src/http/router.h \
 src/http/server.h src/util/buf.h src/util/err.h src/util/xmalloc.h
src/http/router.h:
src/http/server.h:
src/util/buf.h:
src/util/err.h:
src/util/xmalloc.h:
