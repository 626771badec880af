/* Shared basics: status codes and the error record every library call fills.
 * Library code never exits; it returns a status and leaves a message in st_error
 * for the command-line front end to print. */
#ifndef ST_COMMON_H
#define ST_COMMON_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    ST_OK = 0,
    ST_ERR_INTERNAL = 1, /* a bug or an impossible state */
    ST_ERR_INPUT = 2,    /* bad user input: files, arguments, data (exit code 2) */
    ST_ERR_IO = 3,       /* the system refused: write failed, disk full */
    ST_ERR_NOMEM = 4,
    ST_ERR_NUMERIC = 5,  /* NaN or Inf in loss or weights */
} st_status;

typedef struct st_error {
    st_status code;
    char msg[1024];
} st_error;

/* Records code and a printf-style message in err (if err is not NULL); returns code. */
st_status st_errorf(st_error *err, st_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Exit code a front end should use for a status: 0 ok, 2 bad input, 1 otherwise. */
int st_exit_code(st_status s);

/* Aligned allocation for SIMD (64 bytes); free with st_free. Sizes round up. */
void *st_alloc(size_t bytes);
void *st_calloc(size_t bytes);
void st_free(void *p);

/* Levenshtein distance of two names (only the first 255 characters count), for
 * "did you mean" hints. */
int st_edit_distance(const char *a, const char *b);

#define ST_MIN(a, b) ((a) < (b) ? (a) : (b))
#define ST_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
