build-merge/src/cli/cmd_serve.o: src/cli/cmd_serve.c src/cli/cli.h \
 src/cli/srvconf.h src/iso/limits.h src/util/errlist.h src/util/buf.h \
 src/iso/cgroup.h src/util/err.h src/api/api.h src/http/hclient.h \
 src/http/server.h src/sched/pool.h src/sched/sched.h src/sched/flow.h \
 src/sched/cron.h src/sched/tz.h src/store/store.h src/auth/passwd.h \
 src/auth/token.h src/http/notify.h src/kernel/kspec.h \
 src/store/store_auth.h src/util/fsutil.h src/util/log.h \
 src/util/timeutil.h src/util/xmalloc.h
src/cli/cli.h:
src/cli/srvconf.h:
src/iso/limits.h:
src/util/errlist.h:
src/util/buf.h:
src/iso/cgroup.h:
src/util/err.h:
src/api/api.h:
src/http/hclient.h:
src/http/server.h:
src/sched/pool.h:
src/sched/sched.h:
src/sched/flow.h:
src/sched/cron.h:
src/sched/tz.h:
src/store/store.h:
src/auth/passwd.h:
src/auth/token.h:
src/http/notify.h:
src/kernel/kspec.h:
src/store/store_auth.h:
src/util/fsutil.h:
src/util/log.h:
src/util/timeutil.h:
src/util/xmalloc.h:
