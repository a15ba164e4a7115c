build-merge/src/http/gzip.o: src/http/gzip.c src/http/gzip.h \
 src/util/xmalloc.h
src/http/gzip.h:
src/util/xmalloc.h:
