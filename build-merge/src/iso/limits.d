build-merge/src/iso/limits.o: src/iso/limits.c src/iso/limits.h
src/iso/limits.h:
