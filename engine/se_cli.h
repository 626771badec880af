/* Subcommands of the sparseengine front end (engine/main.c); each returns the exit code. */
#ifndef SE_CLI_H
#define SE_CLI_H

int se_cmd_bench(int argc, char **argv);
int se_cmd_run_image(const char *model, const char *image);

#endif
