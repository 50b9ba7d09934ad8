/* An escape probe for the container tests: each verb tries one thing a confined process must not
 * be able to do (or reports who it is) and prints "ok" or the error the kernel gave. Built static
 * by the tests (cc -static), so it runs in a root with nothing else. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static int report(long result) {
    if (result < 0) {
        printf("%s\n", strerror(errno));
        return 1;
    }
    printf("ok\n");
    return 0;
}

/* The CapEff line of /proc/self/status. */
static void effective_capabilities(void) {
    FILE *status = fopen("/proc/self/status", "r");
    char line[256];
    while (status && fgets(line, sizeof line, status))
        if (strncmp(line, "CapEff:", 7) == 0)
            printf("CapEff %s", line + 8);
    if (status)
        fclose(status);
}

int main(int argc, char **argv) {
    const char *verb = argc > 1 ? argv[1] : "";
    if (strcmp(verb, "keyctl") == 0)
        return report(syscall(SYS_add_key, "user", "strata-probe", "secret", 6, KEY_SPEC_SESSION_KEYRING));
    if (strcmp(verb, "bpf") == 0) {
        union bpf_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.map_type = BPF_MAP_TYPE_ARRAY;
        attr.key_size = 4;
        attr.value_size = 4;
        attr.max_entries = 1;
        return report(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
    }
    if (strcmp(verb, "ptrace") == 0 && argc > 2)
        return report(ptrace(PTRACE_ATTACH, atoi(argv[2]), 0, 0));
    if (strcmp(verb, "init_module") == 0)
        return report(syscall(SYS_init_module, "", 0, ""));
    if (strcmp(verb, "finit_module") == 0) {
        int fd = open("/bin/probe", O_RDONLY);
        return report(syscall(SYS_finit_module, fd, "", 0));
    }
    if (strcmp(verb, "whoami") == 0) {
        printf("uid %d euid %d\n", (int)getuid(), (int)geteuid());
        effective_capabilities();
        return 0;
    }
    fprintf(stderr, "usage: probe keyctl|bpf|ptrace PID|init_module|finit_module|whoami\n");
    return 2;
}
