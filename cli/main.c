/* main.c: the cnnlab program: finds the command named by the first argument in the
 * list (commands.c) and runs it; `help` and `version` are answered here. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: cnnlab COMMAND [ARGS]\n\n");
        cli_print_commands(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    for (int i = 0; i < cli_ncommands; i++)
        if (!strcmp(name, cli_commands[i]->name)) return cli_commands[i]->run(argc - 1, argv + 1);
    if (!strcmp(name, "version") || !strcmp(name, "--version")) {
        printf("cnnlab %s\n", CNNLAB_VERSION);
        return 0;
    }
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h"))
        return cli_help(argc - 1, argv + 1);
    cli_error("unknown command '%s'", name);
    fprintf(stderr, "usage: cnnlab COMMAND [ARGS]\n\n");
    cli_print_commands(stderr);
    return EXIT_USAGE;
}
