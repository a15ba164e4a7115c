build-merge/src/store/store_auth.o: src/store/store_auth.c \
 src/store/store_auth.h src/store/store.h src/util/err.h \
 src/util/xmalloc.h
src/store/store_auth.h:
src/store/store.h:
src/util/err.h:
src/util/xmalloc.h:
