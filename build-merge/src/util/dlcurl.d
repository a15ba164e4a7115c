build-merge/src/util/dlcurl.o: src/util/dlcurl.c src/util/dlcurl.h \
 src/util/buf.h
src/util/dlcurl.h:
src/util/buf.h:
