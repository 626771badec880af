/* Subcommands of the sparsetrain front end; each returns the process exit code. */
#ifndef ST_CLI_CMDS_H
#define ST_CLI_CMDS_H

int st_cmd_recipe_check(int argc, char **argv);
int st_cmd_export(int argc, char **argv);
int st_cmd_predict(int argc, char **argv);
int st_cmd_eval(int argc, char **argv);
int st_cmd_oneshot(int argc, char **argv);

#endif
