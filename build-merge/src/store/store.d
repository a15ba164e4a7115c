build-merge/src/store/store.o: src/store/store.c src/store/store.h \
 src/util/err.h src/util/log.h src/util/xmalloc.h
src/store/store.h:
src/util/err.h:
src/util/log.h:
src/util/xmalloc.h:
