/*
 * lbctl: the operator CLI. Sends one text command per line to lb's admin socket and
 * prints the JSON answer as a table (or as is with --json).
 */
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lbctl [-s SOCKET] COMMAND [ARGS] [--json]\n"
            "\n"
            "Upcoming: lb has no admin socket yet, so none of these commands works yet.\n"
            "\n"
            "  status [--json]                              clusters, servers, state, load\n"
            "  drain CLUSTER SERVER [--wait] [--timeout 30s]  no new requests to SERVER\n"
            "  undrain CLUSTER SERVER\n"
            "  weight CLUSTER SERVER N                      N in 1..256\n"
            "  reload                                       same as SIGHUP\n"
            "  snapshots reload [SET]                       publish snapshot directories again\n"
            "\n"
            "  -s SOCKET   admin socket (default /tmp/lb.sock)\n"
            "exit: 0 ok, 1 error, 2 usage\n");
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    fprintf(stderr, "lbctl: the admin socket is not built yet\n");
    return 2;
}
