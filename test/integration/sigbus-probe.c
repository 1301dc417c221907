/* A process that maps part of a file and reports every SIGBUS it gets, for the memory-failure tests.
 *
 *   sigbus-probe FILE OFFSET LENGTH
 *
 * Maps LENGTH bytes of FILE from OFFSET (shared, read-write), installs an SA_SIGINFO SIGBUS handler, prints
 * `ready fd=N addr=A`, then runs commands read from stdin, one a line, answering each with one line:
 *   touch OFF        read the mapped byte at OFF:  `touched OFF value=V`, or `fault OFF` after a SIGBUS
 *   poke OFF V       write V into the mapped byte: `poked OFF`, or `fault OFF`
 *   read OFF         pread(2) one byte at OFFSET+OFF: `read OFF value=V` or `read OFF errno=E`
 *   exit
 * Every SIGBUS prints `sigbus code=C addr=0xA lsb=L` first (si_code, si_addr, si_addr_lsb). A SIGBUS
 * raised by a touch or poke jumps back out of it; one sent from outside just returns. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static sigjmp_buf touch_env;
static volatile sig_atomic_t touching;

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	char line[128];
	int n;

	(void)sig;
	(void)ctx;
	n = snprintf(line, sizeof(line), "sigbus code=%d addr=%#lx lsb=%d\n", si->si_code,
		     (unsigned long)si->si_addr, (int)si->si_addr_lsb);
	if (write(STDOUT_FILENO, line, n) < 0)
		_exit(3);
	if (touching)
		siglongjmp(touch_env, 1);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	char cmd[64];
	unsigned char *map;
	long offset, length, off, value;
	int fd;

	if (argc != 4) {
		fprintf(stderr, "usage: sigbus-probe FILE OFFSET LENGTH\n");
		return 2;
	}
	offset = atol(argv[2]);
	length = atol(argv[3]);
	fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	map = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
	if (map == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
	sigaction(SIGBUS, &sa, NULL);
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("ready fd=%d addr=%lu\n", fd, (unsigned long)map);
	while (fgets(cmd, sizeof(cmd), stdin)) {
		unsigned char byte;

		if (sscanf(cmd, "touch %ld", &off) == 1 || sscanf(cmd, "poke %ld %ld", &off, &value) == 2) {
			int poke = cmd[0] == 'p';

			if (sigsetjmp(touch_env, 1)) {
				touching = 0;
				printf("fault %ld\n", off);
				continue;
			}
			touching = 1;
			if (poke)
				map[off] = (unsigned char)value;
			else
				value = map[off];
			touching = 0;
			if (poke)
				printf("poked %ld\n", off);
			else
				printf("touched %ld value=%ld\n", off, value);
		} else if (sscanf(cmd, "read %ld", &off) == 1) {
			if (pread(fd, &byte, 1, offset + off) == 1)
				printf("read %ld value=%d\n", off, byte);
			else
				printf("read %ld errno=%d\n", off, errno);
		} else if (strncmp(cmd, "exit", 4) == 0) {
			return 0;
		} else {
			printf("unknown %s", cmd);
		}
	}
	return 0;
}
