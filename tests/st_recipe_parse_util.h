/* Helpers shared by the recipe parser suites (recipe_parse, recipe_errors). */
#ifndef ST_RECIPE_PARSE_UTIL_H
#define ST_RECIPE_PARSE_UTIL_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "st_recipe.h"

#define FIX(name) ST_SOURCE_DIR "/tests/fixtures/recipes/" name

/* The error is ST_ERR_INPUT, one line, and holds each of the given words. */
static inline void check_err(st_status s, const st_error *err, const st_recipe *r, const char *what,
                      const char *const *words) {
    ck_assert_msg(s == ST_ERR_INPUT, "%s: expected ST_ERR_INPUT, got %d (%s)", what, s, err->msg);
    ck_assert_int_eq(err->code, ST_ERR_INPUT);
    ck_assert_msg(!strchr(err->msg, '\n'), "%s: message is not one line: %s", what, err->msg);
    for (; *words; words++) ck_assert_msg(strstr(err->msg, *words), "%s: '%s' not in: %s", what, *words, err->msg);
    ck_assert_msg(r->mods == NULL && r->text == NULL && r->n_mods == 0, "%s: result not cleared", what);
}

/* prefix, depth '[' then depth ']', suffix (malloc'ed; the brackets start at strlen(prefix)). */
static inline char *stt_nested_lists(const char *prefix, size_t depth, const char *suffix) {
    const size_t j = strlen(prefix);
    char *t = malloc(j + 2 * depth + strlen(suffix) + 1);
    memcpy(t, prefix, j);
    memset(t + j, '[', depth);
    memset(t + j + depth, ']', depth);
    strcpy(t + j + 2 * depth, suffix);
    return t;
}

#endif
