// A target for the siginfo tests: a SA_SIGINFO SIGBUS handler prints what it was given; the mode says what
// the process does meanwhile. Prints "ready pid=P tids=T1,T2,..." once set up. Ended by the test (SIGKILL).
//   sleep    blocked in a long nanosleep
//   spin     a busy loop
//   threads  three more threads (two spinning, one sleeping); the leader sleeps
//   early    one more thread with prctl(PR_MCE_KILL_EARLY), printed as early=TID; the leader sleeps
//   block    the leader blocks SIGBUS; one more thread does not
//   blockall the leader blocks SIGBUS; one more thread blocks it too, for 300 ms after "ready"
//   noleader one more thread sleeps; the leader calls pthread_exit after "ready" (it stays a zombie)
//   others   raises SIGILL at itself with all signals blocked for a while, then unblocks, over and over,
//            so that SIGILL is pending with SIGBUS and dequeued before it; counts SIGILLs lost or altered
//   vfork S  a vfork child sleeps S seconds (S "stdin": until a byte comes on stdin): the parent waits
//            for it where no signal is taken
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t bus_taken;
static volatile sig_atomic_t ill_count;
static volatile sig_atomic_t ill_bad;

static pid_t tid (void) { return (pid_t)syscall(SYS_gettid); }

static void on_bus (int sig, siginfo_t *si, void *uc)
{
  (void)sig; (void)uc;
  char line[160];
  int n = snprintf(line, sizeof line, "sigbus code=%d addr=%p lsb=%d tid=%d pid=%d\n",
    si->si_code, si->si_addr, (int)si->si_addr_lsb, (int)tid(), (int)si->si_pid);
  write(1, line, n);
  bus_taken = 1;
}

static void on_ill (int sig, siginfo_t *si, void *uc)
{
  (void)sig; (void)uc;
  if (si->si_code != SI_TKILL || si->si_pid != getpid()) ill_bad++;
  ill_count++;
}

static void sleep_forever (void)
{
  for (;;) {
    struct timespec ts = { 3600, 0 };
    nanosleep(&ts, NULL);
  }
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t started = PTHREAD_COND_INITIALIZER;
static pid_t early_tid;
static int running;

// A new thread runs with every signal blocked until glibc restores its mask, just before its function:
// each says when it runs, and main waits for them all before "ready".
static void announce (void)
{
  pthread_mutex_lock(&lock);
  running++;
  pthread_cond_signal(&started);
  pthread_mutex_unlock(&lock);
}

static void wait_running (int n)
{
  pthread_mutex_lock(&lock);
  while (running < n) pthread_cond_wait(&started, &lock);
  pthread_mutex_unlock(&lock);
}

static void *sleeper (void *arg) { (void)arg; announce(); sleep_forever(); return NULL; }

static void *spinner (void *arg)
{
  if (arg) announce(); // not when main spins itself
  for (volatile unsigned long n = 0;; n++) {}
  return NULL;
}

static void block_sigbus (int how)
{
  sigset_t bus;
  sigemptyset(&bus);
  sigaddset(&bus, SIGBUS);
  pthread_sigmask(how, &bus, NULL);
}

static void *late_unblocker (void *arg)
{
  (void)arg;
  block_sigbus(SIG_BLOCK);
  announce();
  struct timespec ts = { 0, 300000000 };
  nanosleep(&ts, NULL); // counted from before "ready": at most 300 ms after it
  block_sigbus(SIG_UNBLOCK);
  sleep_forever();
  return NULL;
}

static void *early (void *arg)
{
  (void)arg;
  if (prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0) != 0) { perror("prctl"); exit(2); }
  early_tid = tid();
  announce();
  sleep_forever();
  return NULL;
}

static void ready (const char *extra)
{
  char line[256];
  int n = snprintf(line, sizeof line, "ready pid=%d%s\n", (int)getpid(), extra);
  write(1, line, n);
}

static void spin_for_us (long us)
{
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  do clock_gettime(CLOCK_MONOTONIC, &b);
  while ((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000 < us);
}

static void others (void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_ill;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGILL, &sa, NULL);
  ready("");
  sigset_t all, old;
  sigfillset(&all);
  long sent = 0, lost = 0, after = 0;
  for (;;) {
    sigprocmask(SIG_BLOCK, &all, &old);
    syscall(SYS_tgkill, getpid(), tid(), SIGILL);
    spin_for_us(500);
    sigprocmask(SIG_SETMASK, &old, NULL); // SIGILL (and a pending SIGBUS) are taken here
    sent++;
    if (ill_count != sent) { lost += sent - ill_count; ill_count = sent; }
    if (bus_taken && ++after == 100) break;
  }
  char line[128];
  int n = snprintf(line, sizeof line, "sigill sent=%ld lost=%ld altered=%d\n", sent, lost, (int)ill_bad);
  write(1, line, n);
  sleep_forever();
}

int main (int argc, char **argv)
{
  const char *mode = argc > 1 ? argv[1] : "sleep";
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_bus;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGBUS, &sa, NULL);
  pthread_t t;
  char extra[160];
  if (!strcmp(mode, "sleep")) {
    ready("");
    sleep_forever();
  } else if (!strcmp(mode, "spin")) {
    ready("");
    spinner(NULL);
  } else if (!strcmp(mode, "threads")) {
    pthread_create(&t, NULL, spinner, (void *)1);
    pthread_create(&t, NULL, spinner, (void *)1);
    pthread_create(&t, NULL, sleeper, NULL);
    wait_running(3);
    ready(" threads=4");
    sleep_forever();
  } else if (!strcmp(mode, "early")) {
    pthread_create(&t, NULL, early, NULL);
    wait_running(1);
    snprintf(extra, sizeof extra, " early=%d", (int)early_tid);
    ready(extra);
    sleep_forever();
  } else if (!strcmp(mode, "block")) {
    pthread_create(&t, NULL, sleeper, NULL); // before the mask: it keeps SIGBUS unblocked
    wait_running(1);
    block_sigbus(SIG_BLOCK);
    ready("");
    sleep_forever();
  } else if (!strcmp(mode, "blockall")) {
    block_sigbus(SIG_BLOCK);
    pthread_create(&t, NULL, late_unblocker, NULL);
    wait_running(1);
    ready("");
    sleep_forever();
  } else if (!strcmp(mode, "noleader")) {
    pthread_create(&t, NULL, sleeper, NULL);
    wait_running(1);
    ready("");
    pthread_exit(NULL);
  } else if (!strcmp(mode, "others")) {
    others();
  } else if (!strcmp(mode, "vfork")) {
    const char *wait = argc > 2 ? argv[2] : "2";
    ready("");
    if (vfork() == 0) {
      char line[64];
      int n = snprintf(line, sizeof line, "vforked pid=%d\n", (int)getpid());
      write(1, line, n);
      if (!strcmp(wait, "stdin")) read(0, line, 1);
      else sleep((unsigned)atoi(wait));
      _exit(0);
    }
    sleep_forever();
  }
  fprintf(stderr, "unknown mode %s\n", mode);
  return 2;
}
