/* commands.c: the list of commands, in the order `cnnlab help` and the man page
 * show them. A new command adds its cli_command here (see cli.h). */
#include "cli.h"

const cli_command *const cli_commands[] = {
    &summary_command, &fetch_command,  &stats_command,   &augment_preview_command,
    &train_command,   &lr_find_command, &eval_command,   &predict_command, &report_command,
    &compare_command, &export_command, &import_command, &bench_command,
};
const int cli_ncommands = (int)(sizeof cli_commands / sizeof *cli_commands);
