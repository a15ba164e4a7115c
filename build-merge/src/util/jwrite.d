build-merge/src/util/jwrite.o: src/util/jwrite.c src/util/jwrite.h \
 src/util/buf.h
src/util/jwrite.h:
src/util/buf.h:
