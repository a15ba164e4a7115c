build-merge/src/cli/main.o: src/cli/main.c src/cli/cli.h src/sched/sup.h \
 src/util/err.h src/util/log.h
src/cli/cli.h:
src/sched/sup.h:
src/util/err.h:
src/util/log.h:
