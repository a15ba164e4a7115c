build-merge/src/util/jparse.o: src/util/jparse.c src/util/jparse.h \
 src/util/xmalloc.h
src/util/jparse.h:
src/util/xmalloc.h:
