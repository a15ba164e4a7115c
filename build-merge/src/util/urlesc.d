build-merge/src/util/urlesc.o: src/util/urlesc.c src/util/urlesc.h \
 src/util/buf.h
src/util/urlesc.h:
src/util/buf.h:
