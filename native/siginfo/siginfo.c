// The siginfo injector: sends SIGBUS to one thread of another process with the siginfo the kernel's
// memory-failure path builds (si_code BUS_MCEERR_AO/AR, si_addr, si_addr_lsb 12). kill(2), tgkill(2) and
// sigqueue(3) cannot: the kernel refuses a non-negative si_code from another process. A tracer can: at the
// signal's signal-delivery-stop, PTRACE_SETSIGINFO replaces the siginfo the tracee is about to take, and
// PTRACE_DETACH with that signal lets it go on. (At a PTRACE_INTERRUPT stop SETSIGINFO has no signal to
// apply to.) See src/mce/siginfo.ts for the thread choice and the kill(2) fallback.
//
// Why an N-API addon and not a helper process: the daemon's one JavaScript thread serves every FUSE
// request, and the target may be blocked in one of them (faulting on its mapping of the file), so the
// wait for its stop must not run there; and a daemon holding a large pool cannot fork (the kernel refuses
// to duplicate its mappings: see startUnmounter in src/fuse/mount.ts), so a helper process would have to
// be started before the pool exists and fed over a pipe. The addon needs neither.
//
// Why a thread of its own for each delivery, joined by a libuv worker: ptrace binds the tracee to the
// tracer thread, so every ptrace call of one delivery must come from one thread, and when that thread
// exits the kernel detaches whatever it still traces (exit_ptrace()), resuming a tracee left in a stop
// with its own signal. So no error path, timeout included, can leave a process traced by a reused worker
// and stuck in a stop nobody will ever continue. Every call in the thread is non-blocking (waitpid polls
// with WNOHANG up to a deadline), so the worker is held for at most the timeout.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SHIFT 12
#define POLL_FIRST_NS 20000L    // a sleeping or spinning target stops within microseconds
#define POLL_MAX_NS 1000000L

enum outcome {
  DELIVERED, // the target took SIGBUS with the kernel's siginfo
  REFUSED,   // nothing was sent: the caller may send a plain SIGBUS
  SENT       // a plain SIGBUS (SI_TKILL or SI_USER) was sent and stays with the target: send no other
};

static const char *const outcome_names[] = { "delivered", "refused", "sent" };

struct delivery {
  pid_t tgid;
  pid_t tid;      // the thread to signal, or 0: any thread, by a process-directed kill(2)
  pid_t *traced;  // the threads seized: tid, or every thread of tgid; 0 once gone
  size_t ntraced;
  int si_code;
  uint64_t addr;
  uint32_t timeout_ms;
  enum outcome outcome;
  char error[256];
  napi_async_work work;
  napi_deferred deferred;
};

static enum outcome fail (struct delivery *d, enum outcome o, const char *what, int err)
{
  char buf[128];
  snprintf(d->error, sizeof d->error, "%s: %s", what, strerror_r(err, buf, sizeof buf));
  return o;
}

static enum outcome say (struct delivery *d, enum outcome o, const char *text)
{
  snprintf(d->error, sizeof d->error, "%s", text);
  return o;
}

static int64_t now_ns (void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int is_stop_signal (int sig)
{
  return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

// Our own SIGBUS, not one the kernel or someone else sent meanwhile: those pass through untouched.
static int is_ours (const struct delivery *d, const siginfo_t *si)
{
  return si->si_signo == SIGBUS && si->si_code == (d->tid ? SI_TKILL : SI_USER) && si->si_pid == getpid();
}

// At our signal's signal-delivery-stop: what the kernel's kill_proc() would have queued instead.
static enum outcome replace_and_go (struct delivery *d, pid_t tid)
{
  siginfo_t si;
  memset(&si, 0, sizeof si);
  si.si_signo = SIGBUS;
  si.si_code = d->si_code;
  si.si_addr = (void *)(uintptr_t)d->addr;
  si.si_addr_lsb = PAGE_SHIFT;
  if (ptrace(PTRACE_SETSIGINFO, tid, 0, &si) == -1) {
    // Thread exit detaches it, with its SIGBUS as sent.
    return fail(d, SENT, "PTRACE_SETSIGINFO refused; sent as a plain SIGBUS", errno);
  }
  if (ptrace(PTRACE_DETACH, tid, 0, (void *)(uintptr_t)SIGBUS) == -1) {
    return fail(d, SENT, "PTRACE_DETACH refused", errno);
  }
  return DELIVERED;
}

// One ptrace-stop of the tracee. Returns 1 when the delivery is decided (d->outcome set), else 0 after
// letting the tracee go on as it would have without us.
static int handle_stop (struct delivery *d, pid_t tid, int status)
{
  int sig = WSTOPSIG(status);
  int event = status >> 16;
  if (event == PTRACE_EVENT_STOP && is_stop_signal(sig)) {
    // Group-stop (job control; also how a seized, already stopped process reports): it will not take
    // any signal until SIGCONT. Detaching leaves it stopped, with our SIGBUS pending as sent.
    ptrace(PTRACE_DETACH, tid, 0, 0);
    d->outcome = say(d, SENT, d->tid
      ? "the process is stopped (job control): SIGBUS stays pending as sent by tgkill(2)"
      : "the process is stopped (job control): SIGBUS stays pending as sent by kill(2)");
    return 1;
  }
  if (event != 0) {
    // No events were asked for; any other trap (a stray PTRACE_EVENT_STOP) resumes with no signal.
    ptrace(PTRACE_CONT, tid, 0, 0);
    return 0;
  }
  siginfo_t si;
  if (ptrace(PTRACE_GETSIGINFO, tid, 0, &si) == -1) {
    ptrace(PTRACE_CONT, tid, 0, 0);
    return 0;
  }
  if (sig == SIGBUS && is_ours(d, &si)) {
    d->outcome = replace_and_go(d, tid);
    return 1;
  }
  // Another signal (or someone else's SIGBUS): re-inject it with its own siginfo, which the kernel keeps
  // when the tracer resumes with the same signal number.
  ptrace(PTRACE_CONT, tid, 0, (void *)(uintptr_t)sig);
  return 0;
}

// One poll of every seized thread: 1 when the delivery is decided (d->outcome set), else 0.
static int poll_traced (struct delivery *d, int *live)
{
  *live = 0;
  for (size_t i = 0; i < d->ntraced; i++) {
    pid_t tid = d->traced[i];
    if (tid == 0) continue;
    int status;
    pid_t r;
    do r = waitpid(tid, &status, __WALL | WNOHANG);
    while (r == -1 && errno == EINTR);
    if (r == -1 || (r > 0 && (WIFEXITED(status) || WIFSIGNALED(status)))) {
      d->traced[i] = 0; // exited (ECHILD: reaped as a thread of an exiting process)
      continue;
    }
    ++*live;
    if (r > 0 && WIFSTOPPED(status) && handle_stop(d, tid, status)) return 1;
  }
  return 0;
}

static enum outcome wait_for_stop (struct delivery *d)
{
  int64_t deadline = now_ns() + (int64_t)d->timeout_ms * 1000000;
  long nap = POLL_FIRST_NS;
  for (;;) {
    int live;
    if (poll_traced(d, &live)) return d->outcome;
    if (live == 0) return say(d, SENT, "the process exited before it took SIGBUS");
    if (now_ns() >= deadline) {
      snprintf(d->error, sizeof d->error, "no signal-delivery-stop within %u ms: SIGBUS stays pending as "
        "sent by %s", d->timeout_ms, d->tid ? "tgkill(2)" : "kill(2)");
      return SENT;
    }
    struct timespec ts = { 0, nap };
    nanosleep(&ts, NULL);
    if (nap < POLL_MAX_NS) nap *= 2;
  }
}

static int is_traced (const struct delivery *d, pid_t tid)
{
  for (size_t i = 0; i < d->ntraced; i++) if (d->traced[i] == tid) return 1;
  return 0;
}

// A leader that has exited while other threads run stays a zombie, which PTRACE_SEIZE refuses (EPERM).
static int is_zombie (const struct delivery *d, pid_t tid)
{
  char path[64], stat[512];
  snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)d->tgid, (int)tid);
  FILE *f = fopen(path, "r");
  if (!f) return 1;
  size_t n = fread(stat, 1, sizeof stat - 1, f);
  fclose(f);
  stat[n] = 0;
  const char *paren = strrchr(stat, ')'); // the command name may hold anything
  return !paren || paren[1] == 0 || paren[2] == 'Z' || paren[2] == 'X';
}

// Seizes one thread; 0 when seized or gone meanwhile, -1 with d->error set when refused.
static int seize (struct delivery *d, pid_t tid)
{
  if (ptrace(PTRACE_SEIZE, tid, 0, 0) == -1) {
    // One thread of many exited: it takes no signal.
    if (d->tid == 0 && (errno == ESRCH || (errno == EPERM && is_zombie(d, tid)))) return 0;
    fail(d, REFUSED, errno == EPERM
      ? "PTRACE_SEIZE refused (already traced, or not permitted)" : "PTRACE_SEIZE", errno);
    return -1;
  }
  pid_t *more = realloc(d->traced, (d->ntraced + 1) * sizeof *more);
  if (!more) return say(d, REFUSED, "out of memory"), -1;
  d->traced = more;
  d->traced[d->ntraced++] = tid;
  return 0;
}

// Every thread of the process, read again until a pass finds none new: a thread started meanwhile would
// take a process-directed signal without a stop.
static int seize_all (struct delivery *d)
{
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/task", (int)d->tgid);
  for (int added = 1; added;) {
    DIR *task = opendir(dir);
    if (!task) return fail(d, REFUSED, "cannot list the process's threads", errno), -1;
    added = 0;
    struct dirent *e;
    while ((e = readdir(task))) {
      pid_t tid = (pid_t)atoi(e->d_name);
      if (tid <= 0 || is_traced(d, tid)) continue;
      if (seize(d, tid) != 0) return closedir(task), -1;
      added = 1;
    }
    closedir(task);
  }
  return d->ntraced ? 0 : (say(d, REFUSED, "the process has no threads left"), -1);
}

static void *deliver (void *arg)
{
  struct delivery *d = arg;
  if ((d->tid ? seize(d, d->tid) : seize_all(d)) != 0) {
    d->outcome = REFUSED;
    return NULL; // what was seized is detached as this thread exits
  }
  // Thread-directed, as the kernel's send_sig_mceerr()/force_sig_mceerr(), to the one thread seized;
  // process-directed, when every thread blocks SIGBUS, to whichever unblocks it first (all seized).
  int sent = d->tid ? (int)syscall(SYS_tgkill, d->tgid, d->tid, SIGBUS) : kill(d->tgid, SIGBUS);
  if (sent == -1) {
    d->outcome = fail(d, REFUSED, d->tid ? "tgkill" : "kill", errno);
    return NULL;
  }
  d->outcome = wait_for_stop(d);
  return NULL; // whatever is still traced is detached as this thread exits
}

static void execute (napi_env env, void *data)
{
  (void)env;
  struct delivery *d = data;
  pthread_t thread;
  int err = pthread_create(&thread, NULL, deliver, d);
  if (err != 0) {
    d->outcome = fail(d, REFUSED, "cannot start the tracer thread", err);
    return;
  }
  pthread_join(thread, NULL);
  free(d->traced);
  d->traced = NULL;
}

static void complete (napi_env env, napi_status status, void *data)
{
  struct delivery *d = data;
  napi_value result, outcome, error;
  if (status == napi_ok) {
    napi_create_object(env, &result);
    napi_create_string_utf8(env, outcome_names[d->outcome], NAPI_AUTO_LENGTH, &outcome);
    napi_create_string_utf8(env, d->error, NAPI_AUTO_LENGTH, &error);
    napi_set_named_property(env, result, "outcome", outcome);
    napi_set_named_property(env, result, "error", error);
    napi_resolve_deferred(env, d->deferred, result);
  } else {
    napi_create_string_utf8(env, "siginfo injector: async work failed", NAPI_AUTO_LENGTH, &error);
    napi_value err;
    napi_create_error(env, NULL, error, &err);
    napi_reject_deferred(env, d->deferred, err);
  }
  napi_delete_async_work(env, d->work);
  free(d);
}

#define CHECK(call) do { if ((call) != napi_ok) goto bad; } while (0)

// inject(tgid, tid or 0 for any thread, siCode, addr: bigint, timeoutMs) -> Promise<{ outcome, error }>
static napi_value inject (napi_env env, napi_callback_info info)
{
  size_t argc = 5;
  napi_value argv[5], promise, name;
  int32_t tgid, tid, si_code;
  uint32_t timeout_ms;
  uint64_t addr;
  bool lossless;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 5) goto bad;
  CHECK(napi_get_value_int32(env, argv[0], &tgid));
  CHECK(napi_get_value_int32(env, argv[1], &tid));
  CHECK(napi_get_value_int32(env, argv[2], &si_code));
  CHECK(napi_get_value_bigint_uint64(env, argv[3], &addr, &lossless));
  CHECK(napi_get_value_uint32(env, argv[4], &timeout_ms));
  if (tgid <= 0 || tid < 0 || !lossless) goto bad;

  struct delivery *d = calloc(1, sizeof *d);
  if (!d) goto bad;
  d->tgid = tgid;
  d->tid = tid;
  d->si_code = si_code;
  d->addr = addr;
  d->timeout_ms = timeout_ms;
  napi_create_promise(env, &d->deferred, &promise);
  napi_create_string_utf8(env, "dmemfs:siginfo", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, execute, complete, d, &d->work) != napi_ok ||
      napi_queue_async_work(env, d->work) != napi_ok) {
    free(d); // the promise is dropped unsettled; the caller gets the exception below
    goto bad;
  }
  return promise;
bad:
  napi_throw_type_error(env, NULL, "inject(tgid, tid, siCode, addr: bigint, timeoutMs): bad arguments");
  return NULL;
}

NAPI_MODULE_INIT ()
{
  napi_value fn;
  if (napi_create_function(env, "inject", NAPI_AUTO_LENGTH, inject, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "inject", fn) != napi_ok) return NULL;
  return exports;
}
