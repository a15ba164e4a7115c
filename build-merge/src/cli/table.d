build-merge/src/cli/table.o: src/cli/table.c src/cli/table.h \
 src/util/buf.h src/util/xmalloc.h
src/cli/table.h:
src/util/buf.h:
src/util/xmalloc.h:
