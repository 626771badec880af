/* One runner for every suite. `st_tests` runs them all; `st_tests NAME...` runs some;
 * `st_tests --list` prints the names. Output ends with Check's summary line. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_SUITE(name) Suite *name##_suite(void);
#include "st_suites.inc"
#undef ST_SUITE

typedef struct {
    const char *name;
    Suite *(*make)(void);
} suite_entry;

static const suite_entry all_suites[] = {
#define ST_SUITE(name) {#name, name##_suite},
#include "st_suites.inc"
#undef ST_SUITE
};

int main(int argc, char **argv) {
    size_t n = sizeof all_suites / sizeof all_suites[0];
    SRunner *sr = NULL;
    int picked = 0;
    for (size_t i = 0; i < n; i++) {
        int want = argc < 2;
        for (int a = 1; a < argc; a++) {
            if (strcmp(argv[a], "--list") == 0) {
                printf("%s\n", all_suites[i].name);
                continue;
            }
            if (strcmp(argv[a], all_suites[i].name) == 0) want = 1;
        }
        if (!want) continue;
        if (!sr) sr = srunner_create(all_suites[i].make());
        else srunner_add_suite(sr, all_suites[i].make());
        picked++;
    }
    if (!sr) {
        if (argc >= 2 && strcmp(argv[1], "--list") == 0) return 0;
        fprintf(stderr, "st_tests: no suite matches; try --list\n");
        return 2;
    }
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
