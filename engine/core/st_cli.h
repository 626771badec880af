/* Start-up shared by the command-line front ends (never called by library code). */
#ifndef ST_CLI_H
#define ST_CLI_H

/* Makes OpenMP threads sleep instead of spin while they wait, by re-executing the
 * program once with OMP_WAIT_POLICY=PASSIVE when the user has not chosen a policy
 * (libgomp reads it only at load time). Spinning threads steal the core from the thread
 * they wait for whenever the machine is busy: measured 4x slower training on a loaded
 * 2-core machine. Returns only if no re-exec happened. */
void st_cli_prefer_passive_wait(int argc, char **argv);

#endif
