build-merge/src/spark/sprogress.o: src/spark/sprogress.c \
 src/spark/sprogress.h
src/spark/sprogress.h:
