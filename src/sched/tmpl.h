/*
 * tmpl — `{{ name }}` substitution in task parameters, commands and env.
 *
 * Deliberately not Jinja: a template is literal text with `{{ VAR }}`
 * holes, VAR being one of the names below.  No filters, no expressions, no
 * code: a flow file must not be able to run anything in the daemon, and a
 * template must be checkable when the file is loaded, so that a typo fails
 * the reload instead of the 05:00 run.
 *
 *   ds                   logical date, YYYY-MM-DD in the flow's time zone
 *   ds_nodash            YYYYMMDD
 *   ts                   logical date, ISO 8601 with offset (2026-03-01T05:00:00+01:00)
 *   ts_nodash            YYYYMMDDTHHMMSS (local, no offset)
 *   data_interval_start  ISO 8601 with offset
 *   data_interval_end    ISO 8601 with offset
 *   run_id, flow, task   strings
 *   params.NAME[.KEY...] a flow parameter (and keys inside an object value)
 *
 * Syntax: `{{` opens a hole, the next `}}` closes it; spaces and tabs around
 * the name are optional.  `{{{{` is a literal `{{` (so a literal
 * "{{ x }}" is written "{{{{ x }}"); a lone `}}` is literal text.
 *
 * Types: a string that is exactly one `{{ params.X }}` hole (nothing
 * around it) becomes the parameter's value with its JSON type, so `n:
 * "{{ params.n }}"` stays an integer.  Anywhere else values are
 * interpolated as text: strings as they are, integers in decimal, floats as
 * Python's repr, true/false/null spelled as in JSON, arrays and objects as
 * compact JSON.
 *
 * Ownership: every function borrows its arguments; tmpl_render and
 * tmpl_render_string store a new reference in *out on success (NULL on
 * failure).
 */
#ifndef NBHUB_TMPL_H
#define NBHUB_TMPL_H

#include <stdint.h>
#include <jansson.h>

#include "sched/tz.h"
#include "util/err.h"

/* An instant and the flow zone's UTC offset at that instant. */
typedef struct tmpl_time {
    int64_t utc;         /* seconds since the epoch */
    int32_t utc_offset;  /* seconds east of UTC */
} tmpl_time_t;

typedef struct tmpl_ctx {
    const char  *flow;
    const char  *task;
    const char  *run_id;
    tmpl_time_t  logical;
    tmpl_time_t  interval_start;
    tmpl_time_t  interval_end;
    const json_t *params;   /* object: defaults merged with the trigger's values */
} tmpl_ctx_t;

/* Fill *out with `utc` and tz's offset at that instant (tz NULL = UTC).
 * 0 or -ERANGE. */
int tmpl_time_in(const tz_t *tz, int64_t utc, tmpl_time_t *out);

/* Load-time check of one string: syntax, and every name known.  `params`
 * (object or NULL) holds the declared parameters; a `params.X` whose X is
 * not declared there is an error.  0, or -EINVAL with a message that names
 * the hole and suggests the closest name. */
int tmpl_check(const char *s, const json_t *params, nb_err_t *err);

/* Whether s contains any hole (cheap; does not validate). */
int tmpl_has_holes(const char *s);

/* Render one string (typed when it is a single params hole, see above). */
int tmpl_render_string(const char *s, const tmpl_ctx_t *ctx, json_t **out, nb_err_t *err);

/* Render every string inside `value` (object values and array items,
 * recursively; object keys are not templated).  Other values are copied.
 * 0, or -EINVAL (bad template, unknown variable or parameter). */
int tmpl_render(const json_t *value, const tmpl_ctx_t *ctx, json_t **out, nb_err_t *err);

#endif
