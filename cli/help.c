/* help.c: `cnnlab help`: the command list, one command's help, and, generated from
 * the same option tables, the man page cnnlab(1) (--man), a bash completion script
 * (--bash-completion) and the plain list of every command's options (--options,
 * for scripts and tests/test_options.sh). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *const help_usage =
    "usage: cnnlab help [COMMAND | --man | --bash-completion | --options]";

void cli_print_commands(FILE *f) {
    fprintf(f, "commands:\n");
    for (int i = 0; i < cli_ncommands; i++) {
        const cli_command *c = cli_commands[i];
        fprintf(f, "  %s %s [options]\n        %s\n", c->name, c->operands, c->summary);
    }
    fprintf(f, "  help [COMMAND | --man | --bash-completion | --options]\n"
               "        this list, a command's help, the man page, a bash completion script\n"
               "  version\n"
               "        print the version\n"
               "\n"
               "Every command lists its options with --help (cnnlab COMMAND --help).\n"
               "Model files are described in docs/model-format.md; see README.md.\n");
}

/* ---- the man page ---- */

/* A word or phrase inside a roff line: backslashes and minus signs escaped. */
static void roff_inline(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '\\') fputs("\\e", f);
        else if (*s == '-') fputs("\\-", f);
        else if (*s == '"') fputs("\\(dq", f);
        else fputc(*s, f);
    }
}

/* Text for roff: each line escaped, a leading '.' or '\'' kept literal, a blank
 * line as a paragraph break, indented lines (tables of the help text) unfilled. */
static void roff_text(FILE *f, const char *s) {
    bool unfilled = false;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        bool indented = len > 0 && s[0] == ' ';
        if (indented != unfilled) fputs(indented ? ".nf\n" : ".fi\n", f);
        unfilled = indented;
        if (len == 0) {
            fputs(".PP\n", f);
        } else {
            char line[1024];
            snprintf(line, sizeof line, "%.*s", (int)len, s);
            if (line[0] == '.' || line[0] == '\'') fputs("\\&", f);
            roff_inline(f, line);
            fputc('\n', f);
        }
        s += len + (nl != NULL);
    }
    if (unfilled) fputs(".fi\n", f);
}

static void man_command(FILE *f, const cli_command *c) {
    fputs(".SS \"", f);
    roff_inline(f, c->name);
    fputc(' ', f);
    roff_inline(f, c->operands);
    fputs(" [options]\"\n", f);
    roff_text(f, c->description);
    for (const cli_option *o = c->options; o->name; o++) {
        char notes[160], line[512];
        cli_option_notes(o, notes, sizeof notes);
        fputs(".TP\n\\fB\\-\\-", f);
        roff_inline(f, o->name);
        fputs("\\fR", f);
        if (o->kind != OPT_FLAG) {
            fputs(" \\fI", f);
            roff_inline(f, cli_option_arg(o));
            fputs("\\fR", f);
        }
        fputc('\n', f);
        snprintf(line, sizeof line, "%s%s%s", o->help, notes[0] ? " " : "", notes);
        roff_text(f, line);
    }
}

static void print_man(FILE *f) {
    fprintf(f, ".TH CNNLAB 1 \"\" \"cnnlab %s\" \"User Commands\"\n", CNNLAB_VERSION);
    fputs(".SH NAME\n"
          "cnnlab \\- design, train and understand small convolutional networks\n"
          ".SH SYNOPSIS\n"
          ".B cnnlab\n"
          ".I COMMAND\n"
          "[\\fIOPERANDS\\fR] [\\fIOPTIONS\\fR]\n"
          ".br\n"
          ".B cnnlab help\n"
          "[\\fICOMMAND\\fR | \\fB\\-\\-man\\fR | \\fB\\-\\-bash\\-completion\\fR | "
          "\\fB\\-\\-options\\fR]\n"
          ".br\n"
          ".B cnnlab version\n"
          ".SH DESCRIPTION\n"
          "cnnlab designs, trains and explains small convolutional networks, with every\n"
          "layer exact against PyTorch. A model is a text file, one layer per line\n"
          "(see the model-format document). The commands below summarise a model, fetch\n"
          "and inspect datasets, train (writing a run folder with metrics, checkpoints\n"
          "and a report), evaluate, predict, report, compare runs and measure speed.\n"
          ".PP\n"
          "Options take their value as the next word or after an equals sign\n"
          "(\\fB\\-\\-epochs 5\\fR or \\fB\\-\\-epochs=5\\fR); they may come before or\n"
          "after the operands. Every command prints its options with \\fB\\-\\-help\\fR.\n"
          ".SH COMMANDS\n", f);
    for (int i = 0; i < cli_ncommands; i++) man_command(f, cli_commands[i]);
    fputs(".SS \"help [COMMAND | \\-\\-man | \\-\\-bash\\-completion | \\-\\-options]\"\n"
          "Without an argument, the list of commands; with a command, its help.\n"
          ".TP\n\\fB\\-\\-man\\fR\n"
          "print this manual page (roff)\n"
          ".TP\n\\fB\\-\\-bash\\-completion\\fR\n"
          "print a bash completion script for the commands and their options\n"
          ".TP\n\\fB\\-\\-options\\fR\n"
          "print every command's options, one \\(lqCOMMAND \\-\\-OPTION\\(rq per line\n"
          ".SS \"version\"\n"
          "Print the version.\n"
          ".SH EXIT STATUS\n"
          ".TP\n.B 0\nsuccess\n"
          ".TP\n.B 1\n"
          "failure: a bad model file, missing data, a model over its parameter budget,\n"
          "a diverged run, an input/output error\n"
          ".TP\n.B 2\n"
          "bad usage: an unknown option, a missing or malformed value, a value out of\n"
          "its range (the message names the option and the range)\n"
          ".TP\n.B 130\n"
          "a training run stopped with Ctrl\\-C (its checkpoint saved)\n"
          ".SH ENVIRONMENT\n"
          ".TP\n.B CNNLAB_DATA\n"
          "where named datasets (cifar10, cifar100, mnist, fashion\\-mnist) are looked for\n"
          "after \\fB\\-\\-data\\-dir\\fR and before \\fI./data\\fR and\n"
          "\\fI../shared/data\\fR; where \\fBfetch\\fR puts them without\n"
          "\\fB\\-\\-data\\-dir\\fR\n"
          ".SH FILES\n"
          ".TP\n.I runs/MODEL/\n"
          "the run folder of \\fBtrain\\fR: config.txt, model.net, metrics.csv, log.txt,\n"
          "last.safetensors, best.safetensors and the report (figures and report.html)\n"
          ".TP\n.I data/\n"
          "the default folder of datasets\n"
          ".SH SEE ALSO\n"
          "The README and docs/model\\-format.md (the model file),\n"
          "docs/augmentation.md (augmentation specifications) of cnnlab.\n", f);
}

/* ---- the bash completion script ---- */

/* The values of options with a fixed set of them (train --opt, --sched), after
 * the option itself. */
static void print_value_completion(FILE *f) {
    fputs("    case ${COMP_WORDS[1]}:${COMP_WORDS[COMP_CWORD-1]} in\n", f);
    for (int i = 0; i < cli_ncommands; i++)
        for (const cli_option *o = cli_commands[i]->options; o->name; o++) {
            if (!o->choices) continue;
            fprintf(f, "    %s:--%s) COMPREPLY=($(compgen -W '", cli_commands[i]->name, o->name);
            for (const char *p = o->choices; *p; p++) fputc(*p == '|' ? ' ' : *p, f);
            fputs("' -- \"$cur\")); return 0 ;;\n", f);
        }
    fputs("    esac\n", f);
}

static void print_bash_completion(FILE *f) {
    fputs("# bash completion for cnnlab (generated by `cnnlab help --bash-completion`)\n"
          "_cnnlab() {\n"
          "    local cur=${COMP_WORDS[COMP_CWORD]} words\n"
          "    COMPREPLY=()\n"
          "    if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
          "        words='", f);
    for (int i = 0; i < cli_ncommands; i++) fprintf(f, "%s ", cli_commands[i]->name);
    fputs("help version'\n"
          "        COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
          "        return 0\n"
          "    fi\n", f);
    print_value_completion(f);
    fputs("    case ${COMP_WORDS[1]} in\n", f);
    for (int i = 0; i < cli_ncommands; i++) {
        const cli_command *c = cli_commands[i];
        fprintf(f, "    %s) words='", c->name);
        for (const cli_option *o = c->options; o->name; o++) fprintf(f, "--%s ", o->name);
        fputs("--help' ;;\n", f);
    }
    fputs("    help) words='--man --bash-completion --options", f);
    for (int i = 0; i < cli_ncommands; i++) fprintf(f, " %s", cli_commands[i]->name);
    fputs("' ;;\n"
          "    *) words='' ;;\n"
          "    esac\n"
          "    # options where the word starts with '-' (or after help); else file names\n"
          "    if [[ $cur == -* || ${COMP_WORDS[1]} == help ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
          "    fi\n"
          "    return 0\n"
          "}\n"
          "complete -o default -o bashdefault -F _cnnlab cnnlab\n", f);
}

int cli_help(int argc, char **argv) {
    if (argc < 2) {
        printf("usage: cnnlab COMMAND [ARGS]\n\n");
        cli_print_commands(stdout);
        return 0;
    }
    const char *a = argv[1];
    if (argc > 2) {
        cli_error("help: one argument at most (got '%s' and '%s')", a, argv[2]);
        fprintf(stderr, "%s\n", help_usage);
        return EXIT_USAGE;
    }
    if (!strcmp(a, "--man")) {
        print_man(stdout);
        return 0;
    }
    if (!strcmp(a, "--bash-completion")) {
        print_bash_completion(stdout);
        return 0;
    }
    if (!strcmp(a, "--options")) {
        for (int i = 0; i < cli_ncommands; i++)
            for (const cli_option *o = cli_commands[i]->options; o->name; o++)
                printf("%s --%s\n", cli_commands[i]->name, o->name);
        return 0;
    }
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
        printf("%s\n", help_usage);
        return 0;
    }
    for (int i = 0; i < cli_ncommands; i++)
        if (!strcmp(a, cli_commands[i]->name)) {
            cli_print_help(cli_commands[i], stdout);
            return 0;
        }
    cli_error("help: unknown command or option '%s'", a);
    fprintf(stderr, "%s\n", help_usage);
    return EXIT_USAGE;
}
