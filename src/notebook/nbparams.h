/*
 * nbparams — papermill's parameter handling (papermill 2.7.0 translators.py,
 * parameterize.py, inspection.py, cli.py _resolve_type), ported.
 *
 * Ownership: functions never take over their arguments (params, nb are
 * borrowed; nbparams_inject modifies nb in place).  Returned json_t values
 * are new references; returned char * are fresh strings to free().
 *
 * Values JSON cannot hold (float('inf'), float('nan'), ints beyond 64 bits)
 * arrive as yamljson's pynum stand-in and are translated as those Python
 * numbers (see util/yamljson.h).
 *
 * Translator keys.  papermill picks a translator by kernel name first, then
 * by language, from a registry with these exact, case-sensitive keys:
 *   python, R, scala, julia, matlab, .net-csharp, .net-fsharp,
 *   .net-powershell, pysparkkernel (python), sparkkernel (scala),
 *   sparkrkernel (R), bash.
 * Every `language` argument below is such a key; get one from
 * nbparams_find_translator(kernel_name, language).
 */
#ifndef NBHUB_NBPARAMS_H
#define NBHUB_NBPARAMS_H

#include <jansson.h>

#include "util/err.h"

/* The registry key papermill's find_translator would pick: kernel_name if it
 * is a key, else language (either may be NULL).  Stores a static string in
 * *key; -ENOTSUP with papermill's message if neither is known. */
int nbparams_find_translator(const char *kernel_name, const char *language, const char **key,
                             nb_err_t *err);

/* -p VALUE typing like papermill's CLI _resolve_type: "True"/"False"/"None",
 * then Python int(), then float(), else the string itself.  Returns a new
 * reference (never NULL; bytes that are not UTF-8 become U+FFFD). */
json_t *nbparams_resolve_type(const char *value);

/* Whether `name` (UTF-8) may be a parameter's name for the translator
 * `language` (a registry key as nbparams_find_translator returns): an
 * identifier of that language, not a reserved word (the rules are at
 * nbparams.c's "parameter names").  0, or -EINVAL with a message naming
 * the language; -ENOTSUP for an unknown translator.  nbparams_check_names
 * checks every key of an object.  nbparams_translate (and so
 * nbparams_inject) refuses a bad name the same way. */
int nbparams_check_name(const char *name, const char *language, nb_err_t *err);
int nbparams_check_names(const json_t *params, const char *language, nb_err_t *err);

/* Translate a parameters object into the source of the injected cell, as
 * papermill's translate_parameters(..., comment='Parameters') does, e.g.
 * "# Parameters\nalpha = 0.6\n" for python (black is not applied: papermill
 * only formats when black is importable, and its pinned env has none).
 * Stores a fresh string in *out.  -ENOTSUP for an unknown language or a
 * value papermill cannot translate there (a dict for bash, None for C#),
 * with papermill's message; -EINVAL if params is not an object. */
int nbparams_translate(const json_t *params, const char *language, char **out, nb_err_t *err);

/* Inject params into nb (nbformat 4, cell sources as plain strings) like
 * papermill's parameterize_notebook:
 *  - a new code cell tagged ["injected-parameters"] replaces the first cell
 *    already tagged so (at its position), else goes right after the first
 *    cell tagged "parameters", else at the top with *warned = 1 (the caller
 *    logs "Input notebook does not contain a cell with tag 'parameters'");
 *  - the cell gets an 8-hex-digit "id" when nb's nbformat_minor >= 5
 *    (papermill upgrades every notebook to 4.5 on load, which the loader is
 *    expected to have done); report_mode sets metadata.jupyter.source_hidden;
 *  - nb.metadata.papermill.parameters becomes a copy of params.
 * papermill only calls this when params is non-empty; that choice is the
 * caller's.  Returns 0 or a negative errno (nbparams_translate's, or
 * -EINVAL for a malformed notebook). */
int nbparams_inject(json_t *nb, const json_t *params, const char *language, int report_mode,
                    int *warned, nb_err_t *err);

/* Whether papermill can inspect parameters cells for this translator (only
 * the Python one can; for the others papermill logs "Translator for
 * '<language>' language does not support parameter introspection."). */
int nbparams_can_inspect(const char *language);

/* Parameters declared in the first cell tagged "parameters", as papermill's
 * _infer_parameters returns them: an array (in cell order, duplicates kept;
 * inspect_notebook turns it into a dict by name) of objects
 * {"name", "inferred_type_name", "default", "help"}, all strings, with
 * inferred_type_name "None" when unknown.  Empty array without a parameters
 * cell or for a language papermill cannot inspect. */
json_t *nbparams_inspect(const json_t *nb, const char *language);

/* Names in params that the parameters cell does not declare, in params'
 * order, for papermill's "Passed unknown parameter: NAME" warning.  New
 * reference, array of strings. */
json_t *nbparams_unknown(const json_t *nb, const json_t *params, const char *language);

#endif
