build-merge/src/cli/cmd_user.o: src/cli/cmd_user.c src/auth/passwd.h \
 src/util/err.h src/auth/token.h src/cli/cli.h src/cli/client.h \
 src/util/buf.h src/cli/table.h src/sched/flow.h src/iso/limits.h \
 src/sched/cron.h src/sched/tz.h src/util/errlist.h src/store/store.h \
 src/store/store_auth.h src/util/fsutil.h src/util/timeutil.h \
 src/util/xmalloc.h
src/auth/passwd.h:
src/util/err.h:
src/auth/token.h:
src/cli/cli.h:
src/cli/client.h:
src/util/buf.h:
src/cli/table.h:
src/sched/flow.h:
src/iso/limits.h:
src/sched/cron.h:
src/sched/tz.h:
src/util/errlist.h:
src/store/store.h:
src/store/store_auth.h:
src/util/fsutil.h:
src/util/timeutil.h:
src/util/xmalloc.h:
