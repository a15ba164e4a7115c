build-merge/src/util/xmalloc.o: src/util/xmalloc.c src/util/xmalloc.h
src/util/xmalloc.h:
