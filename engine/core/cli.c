#include "st_cli.h"

#include <stdlib.h>
#include <unistd.h>

void st_cli_prefer_passive_wait(int argc, char **argv) {
    (void)argc;
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc): carry on with the default policy */
}
