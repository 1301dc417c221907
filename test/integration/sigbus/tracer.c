// Another tracer, as strace or a debugger would be: seizes PID, prints "traced", and passes every signal
// through until the process exits.
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

int main (int argc, char **argv)
{
  pid_t pid = argc > 1 ? atoi(argv[1]) : 0;
  if (ptrace(PTRACE_SEIZE, pid, 0, 0) == -1) { perror("PTRACE_SEIZE"); return 1; }
  write(1, "traced\n", 7);
  for (;;) {
    int status;
    if (waitpid(pid, &status, __WALL) == -1 || WIFEXITED(status) || WIFSIGNALED(status)) return 0;
    int sig = WSTOPSIG(status);
    if (status >> 16 == PTRACE_EVENT_STOP) {
      int stop = sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
      ptrace(stop ? PTRACE_LISTEN : PTRACE_CONT, pid, 0, 0);
    } else {
      ptrace(PTRACE_CONT, pid, 0, (void *)(long)sig);
    }
  }
}
