build-merge/src/cli/cmd_run.o: src/cli/cmd_run.c src/cli/cli.h \
 src/kernel/kspec.h src/util/err.h src/notebook/nb.h \
 src/notebook/nbexec.h src/notebook/nbjson.h src/util/buf.h \
 src/notebook/nbparams.h src/util/fsutil.h src/util/log.h \
 src/util/xmalloc.h src/util/yamljson.h
src/cli/cli.h:
src/kernel/kspec.h:
src/util/err.h:
src/notebook/nb.h:
src/notebook/nbexec.h:
src/notebook/nbjson.h:
src/util/buf.h:
src/notebook/nbparams.h:
src/util/fsutil.h:
src/util/log.h:
src/util/xmalloc.h:
src/util/yamljson.h:
