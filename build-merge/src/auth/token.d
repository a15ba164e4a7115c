build-merge/src/auth/token.o: src/auth/token.c src/auth/token.h \
 src/util/hex.h
src/auth/token.h:
src/util/hex.h:
