#include "st_cli.h"

#include <stdlib.h>
#include <unistd.h>

void st_cli_prefer_passive_wait(int argc, char **argv) {
    (void)argc;
    if (getenv("OMP_WAIT_POLICY")) return;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return;
    self[n] = 0;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv(self, argv);
    /* exec failed (no /proc): carry on with the default policy */
}
