build-merge/src/notebook/nbexec.o: src/notebook/nbexec.c \
 src/notebook/nbexec.h src/kernel/kspec.h src/util/err.h src/cli/cli.h \
 src/kernel/kmgr.h src/kernel/kclient.h src/kernel/kconn.h \
 src/kernel/kwire.h src/notebook/nbout.h src/notebook/nbwriter.h \
 src/util/jparse.h src/util/log.h src/util/timeutil.h src/util/xmalloc.h
src/notebook/nbexec.h:
src/kernel/kspec.h:
src/util/err.h:
src/cli/cli.h:
src/kernel/kmgr.h:
src/kernel/kclient.h:
src/kernel/kconn.h:
src/kernel/kwire.h:
src/notebook/nbout.h:
src/notebook/nbwriter.h:
src/util/jparse.h:
src/util/log.h:
src/util/timeutil.h:
src/util/xmalloc.h:
