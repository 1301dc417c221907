// dmemfs's native data path: READ and WRITE of regular-file data served on libfuse's own threads, one
// memcpy per stretch between the request buffer and the pool, without the round trip to the JavaScript
// thread. Every decision that is not a copy stays in TypeScript (src/fs/datapath.ts): it tells this module
// which dpage backs which file index, each file's size, which handles are open on which file, and whether
// the path is on at all. A request this module cannot serve completely (a hole, a poisoned or migrating
// dpage, a write past the size, an O_APPEND handle, a control file) is passed on to JavaScript unchanged.
//
// Shared state and its rule: everything below (regions, files, their dpage mirrors and sizes, handles,
// `enabled`) is written only by the JavaScript thread, through the N-API functions at the end of this file,
// each of which holds `dp_lock` for writing; libfuse threads only read it, holding `dp_lock` for reading
// during the whole of a copy. So once a mirror change returns to TypeScript, no copy into or out of the
// dpage it removed is still running: TypeScript may then poison, free, move or zero that dpage. The time
// stamps are the one field libfuse threads write (see dp_file).

#define NAPI_VERSION 6
#include <node_api.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

// Same signatures as fuse_native_data_hook_t and fuse_native_read_reply_hook_t in the patched fuse-native.c.
typedef int (*dp_hook_t) (int write, char *buf, size_t len, off_t offset, uint64_t fh, int *res);
typedef int (*dp_reply_hook_t) (size_t len, off_t offset, uint64_t fh, int devfd, uint64_t unique);
typedef int (*dp_getxattr_hook_t) (const char *name, size_t size, int *res);
typedef int (*dp_write_pipe_hook_t) (int fd, size_t len, off_t offset, uint64_t fh, int *res);

// A READ at least this long is answered by dp_reply, straight from the pool to the FUSE device; a shorter
// one is copied into libfuse's buffer, which costs less than the extra system call of libfuse's own reply.
#define REPLY_MIN (64 * 1024)
// The most stretches a reply or a spliced write is taken in; one more falls back to a copy or JavaScript.
#define MAX_STRETCHES 512

#define LEAF_SHIFT 9
#define LEAF_SIZE (1u << LEAF_SHIFT)
#define BUCKETS 4096
#define MAX_REGIONS 4096

typedef struct {
  uint32_t base; // pool dpage number of the region's first dpage
  uint32_t count;
  char *mem;
} dp_region;

// One regular file. `leaves` is a two-level radix from file index to the address of its dpage (NULL:
// not served here), so a sparse file costs a pointer per 512 indexes. `stamps` points into a BigInt64Array
// that TypeScript owns and reads: [0] the time of the last native write, [1] of the last native read, in
// the nanoseconds of TypeScript's clock. libfuse threads store them; TypeScript only reads them.
typedef struct dp_file {
  uint64_t ino;
  uint64_t size;
  char ***leaves;
  uint64_t nleaves;
  int64_t *stamps;
  struct dp_file *next;
} dp_file;

typedef struct dp_handle {
  uint64_t fh;
  dp_file *file;
  int append;
  struct dp_handle *next;
} dp_handle;

static pthread_rwlock_t dp_lock;
static int enabled;
static dp_region regions[MAX_REGIONS];
static uint32_t nregions;
static uint32_t dpage_size;
static dp_file *files[BUCKETS];
static dp_handle *handles[BUCKETS];
static int64_t clock_anchor; // TypeScript's nowNs() minus CLOCK_MONOTONIC
static dp_hook_t *hook_slot;
static dp_reply_hook_t *reply_slot;
static dp_getxattr_hook_t *getxattr_slot;
static dp_write_pipe_hook_t *write_pipe_slot;
// TypeScript's rule for extended attributes: only names beginning with xattr_prefix can hold a value, so a
// GETXATTR of any other name (the kernel's security.capability before each write) is ENODATA. Off: "".
static char xattr_prefix[64];
static size_t xattr_prefix_len;
static int xattr_rule;
static uint64_t served_reads, served_writes, passed, replied, xattrs_answered, spliced;

// --- libfuse threads ---------------------------------------------------------------------------------

static int64_t dp_now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return clock_anchor + (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static dp_handle *handle_find (uint64_t fh) {
  for (dp_handle *h = handles[fh % BUCKETS]; h; h = h->next) if (h->fh == fh) return h;
  return NULL;
}

// The file a handle reads, or NULL when it is not one served here. Caller holds dp_lock.
static dp_file *read_target (uint64_t fh) {
  dp_handle *h = handle_find(fh);
  return h ? h->file : NULL;
}

// The file a handle overwrites [off, off+len) of, or NULL: only inside the size and without O_APPEND, since
// a write that grows the file is TypeScript's. Caller holds dp_lock.
static dp_file *overwrite_target (uint64_t fh, uint64_t off, uint64_t len) {
  dp_handle *h = handle_find(fh);
  if (!h || !h->file || h->append || len == 0 || off + len > h->file->size) return NULL;
  return h->file;
}

// How much of a read of len at off the file holds: nothing past its size.
static uint64_t read_len (dp_file *f, uint64_t off, uint64_t len) {
  return off >= f->size ? 0 : (len < f->size - off ? len : f->size - off);
}

static char *file_dpage (dp_file *f, uint64_t index) {
  uint64_t leaf = index >> LEAF_SHIFT;
  if (leaf >= f->nleaves || !f->leaves[leaf]) return NULL;
  return f->leaves[leaf][index & (LEAF_SIZE - 1)];
}

// Whether every dpage of [off, off+len) of the file is in the mirror (len > 0).
static int file_served (dp_file *f, uint64_t off, uint64_t len) {
  uint64_t last = (off + len - 1) / dpage_size;
  for (uint64_t i = off / dpage_size; i <= last; i++) if (!file_dpage(f, i)) return 0;
  return 1;
}

// The stretch of the file at pos, neighbouring dpages merged, of at most `left` bytes: its address goes to
// *start, its length is returned. Every dpage up to pos + left must be in the mirror.
static uint64_t file_stretch (dp_file *f, uint64_t pos, uint64_t left, char **start) {
  uint64_t index = pos / dpage_size;
  *start = file_dpage(f, index) + (pos - index * dpage_size);
  uint64_t n = dpage_size - (pos - index * dpage_size);
  while (n < left && file_dpage(f, index + 1) == *start + n) {
    index++;
    n += dpage_size;
  }
  return n < left ? n : left;
}

// Copies [off, off+len) of the file to or from buf, one memcpy per stretch; returns 0, or -1 without
// copying anything if some dpage in the range is not served here.
static int file_copy (dp_file *f, int write, char *buf, uint64_t off, uint64_t len) {
  if (!file_served(f, off, len)) return -1;
  for (uint64_t done = 0; done < len;) {
    char *start;
    uint64_t n = file_stretch(f, off + done, len - done, &start);
    if (write) memcpy(start, buf + done, n);
    else memcpy(buf + done, start, n);
    done += n;
  }
  return 0;
}

// Takes the read lock for a copy, unless the path is off. `enabled` is read under the lock, the one place
// each hook asks: a thread that waited while setEnabled(0) held the write lock must not serve (tracing
// turned on would miss the request).
static int lock_for_copy (void) {
  pthread_rwlock_rdlock(&dp_lock);
  if (__atomic_load_n(&enabled, __ATOMIC_ACQUIRE)) return 1;
  pthread_rwlock_unlock(&dp_lock);
  return 0;
}

// The hook fuse-native calls on a FUSE thread before sending READ or WRITE to JavaScript.
static int dp_serve (int write, char *buf, size_t len, off_t offset, uint64_t fh, int *res) {
  if (offset < 0 || len > INT32_MAX || !lock_for_copy()) return 0;
  uint64_t off = (uint64_t) offset;
  dp_file *f = write ? overwrite_target(fh, off, len) : read_target(fh);
  int ok = 0;
  if (f) {
    uint64_t n = write ? len : read_len(f, off, len);
    ok = n == 0 || file_copy(f, write, buf, off, n) == 0;
    *res = (int) n;
  }
  if (ok) __atomic_store_n(&f->stamps[write ? 0 : 1], dp_now(), __ATOMIC_RELAXED);
  pthread_rwlock_unlock(&dp_lock);
  __atomic_add_fetch(ok ? (write ? &served_writes : &served_reads) : &passed, 1, __ATOMIC_RELAXED);
  return ok;
}

// The stretches of [off, off+len) of the file in the pool, into iov; returns how many, or -1 if some dpage
// in the range is not served here or they do not fit.
static int file_iov (dp_file *f, uint64_t off, uint64_t len, struct iovec *iov, int max) {
  if (!file_served(f, off, len)) return -1;
  int count = 0;
  for (uint64_t done = 0; done < len; count++) {
    if (count == max) return -1;
    char *start;
    uint64_t n = file_stretch(f, off + done, len - done, &start);
    iov[count].iov_base = start;
    iov[count].iov_len = n;
    done += n;
  }
  return count;
}

// The READ hook that replies itself: the reply goes from the pool to the FUSE device in one writev, under
// the same read lock as a copy, so no dpage changes owner while the kernel copies out of it.
static int dp_reply (size_t len, off_t offset, uint64_t fh, int devfd, uint64_t unique) {
  if (len < REPLY_MIN || len > INT32_MAX || offset < 0) return 0;
  struct { uint32_t len; int32_t error; uint64_t unique; } head = { 0, 0, unique };
  struct iovec iov[MAX_STRETCHES];
  iov[0].iov_base = &head;
  iov[0].iov_len = sizeof(head);
  if (!lock_for_copy()) return 0;
  dp_file *f = read_target(fh);
  uint64_t off = (uint64_t) offset;
  int ok = 0;
  if (f) {
    uint64_t n = read_len(f, off, len);
    int count = n == 0 ? 0 : file_iov(f, off, n, iov + 1, MAX_STRETCHES - 1);
    if (count >= 0) {
      head.len = (uint32_t) (sizeof(head) + n);
      // Stamped before the reply ends the reader's read(): a futimens it makes next must find the stamp
      // taken, not overwrite its atime later. A failed writev falls back to a copy, which reads anyway.
      __atomic_store_n(&f->stamps[1], dp_now(), __ATOMIC_RELAXED);
      ssize_t w = writev(devfd, iov, count + 1);
      // ENOENT: the request was interrupted and is gone; nothing more to answer.
      ok = w == (ssize_t) head.len || (w < 0 && errno == ENOENT);
    }
  }
  pthread_rwlock_unlock(&dp_lock);
  if (ok) {
    __atomic_add_fetch(&served_reads, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&replied, 1, __ATOMIC_RELAXED);
  }
  return ok;
}

// The WRITE hook for data still in libfuse's pipe: one readv from the pipe into the pool's stretches, under
// the read lock as any copy. For a buffered write the kernel put the writer's page-cache pages into the
// pipe by reference, so this is the request's only copy of its data (O_DIRECT data was copied into the
// pipe, as it would have been into libfuse's buffer).
static int dp_write_pipe (int fd, size_t len, off_t offset, uint64_t fh, int *res) {
  if (offset < 0 || len == 0 || len > INT32_MAX) return 0;
  struct iovec iov[MAX_STRETCHES];
  if (!lock_for_copy()) return 0;
  uint64_t off = (uint64_t) offset;
  dp_file *f = overwrite_target(fh, off, len);
  int count = f ? file_iov(f, off, len, iov, MAX_STRETCHES) : -1;
  if (count >= 0) {
    // The whole request is in the pipe already, so one readv takes all of it or something is wrong.
    ssize_t got = readv(fd, iov, count);
    *res = got == (ssize_t) len ? (int) len : -EIO;
    if (*res > 0) __atomic_store_n(&f->stamps[0], dp_now(), __ATOMIC_RELAXED);
  }
  pthread_rwlock_unlock(&dp_lock);
  if (count < 0) {
    __atomic_add_fetch(&passed, 1, __ATOMIC_RELAXED);
    return 0;
  }
  if (*res > 0) {
    __atomic_add_fetch(&served_writes, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&spliced, 1, __ATOMIC_RELAXED);
  }
  return 1;
}

// The GETXATTR hook: a name outside the prefix TypeScript gave has no value, whatever the file.
static int dp_getxattr (const char *name, size_t size, int *res) {
  (void) size;
  if (!__atomic_load_n(&xattr_rule, __ATOMIC_ACQUIRE) || strncmp(name, xattr_prefix, xattr_prefix_len) == 0) return 0;
  *res = -ENODATA;
  __atomic_add_fetch(&xattrs_answered, 1, __ATOMIC_RELAXED);
  return 1;
}

// --- the JavaScript thread ---------------------------------------------------------------------------

static dp_file *file_find (uint64_t ino) {
  for (dp_file *f = files[ino % BUCKETS]; f; f = f->next) if (f->ino == ino) return f;
  return NULL;
}

static char *dpage_address (uint32_t dpage) {
  for (uint32_t i = 0; i < nregions; i++) {
    dp_region *r = &regions[i];
    if (dpage >= r->base && dpage - r->base < r->count) return r->mem + (uint64_t) (dpage - r->base) * dpage_size;
  }
  return NULL;
}

static int file_set (dp_file *f, uint64_t index, char *addr) {
  uint64_t leaf = index >> LEAF_SHIFT;
  if (leaf >= f->nleaves) {
    if (!addr) return 0;
    uint64_t n = f->nleaves ? f->nleaves : 1;
    while (n <= leaf) n *= 2;
    char ***grown = realloc(f->leaves, n * sizeof(char **));
    if (!grown) return -1;
    memset(grown + f->nleaves, 0, (n - f->nleaves) * sizeof(char **));
    f->leaves = grown;
    f->nleaves = n;
  }
  if (!f->leaves[leaf]) {
    if (!addr) return 0;
    f->leaves[leaf] = calloc(LEAF_SIZE, sizeof(char *));
    if (!f->leaves[leaf]) return -1;
  }
  f->leaves[leaf][index & (LEAF_SIZE - 1)] = addr;
  return 0;
}

static void file_clear_from (dp_file *f, uint64_t index) {
  for (uint64_t leaf = 0; leaf < f->nleaves; leaf++) {
    if (!f->leaves[leaf]) continue;
    uint64_t lo = leaf << LEAF_SHIFT;
    if (lo + LEAF_SIZE <= index) continue;
    if (lo >= index) {
      free(f->leaves[leaf]);
      f->leaves[leaf] = NULL;
      continue;
    }
    for (uint64_t i = index - lo; i < LEAF_SIZE; i++) f->leaves[leaf][i] = NULL;
  }
}

#define WRITE_LOCKED(...) do { pthread_rwlock_wrlock(&dp_lock); __VA_ARGS__; pthread_rwlock_unlock(&dp_lock); } while (0)

static napi_value undefined (napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

static int args (napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < want) {
    napi_throw_type_error(env, NULL, "datapath: too few arguments");
    return -1;
  }
  return 0;
}

static double num (napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return d;
}

typedef struct {
  dp_hook_t *hook;
  dp_reply_hook_t *reply;
  dp_getxattr_hook_t *getxattr;
  dp_write_pipe_hook_t *write_pipe;
} dp_slots;

static int find_hooks (struct dl_phdr_info *info, size_t size, void *data) {
  if (!info->dlpi_name || !info->dlpi_name[0]) return 0;
  void *h = dlopen(info->dlpi_name, RTLD_NOW | RTLD_NOLOAD);
  if (!h) return 0;
  void *hook = dlsym(h, "fuse_native_data_hook");
  void *reply = dlsym(h, "fuse_native_read_reply_hook");
  void *getxattr = dlsym(h, "fuse_native_getxattr_hook");
  void *write_pipe = dlsym(h, "fuse_native_write_pipe_hook");
  dlclose(h);
  if (!hook) return 0;
  ((dp_slots *) data)->hook = (dp_hook_t *) hook;
  ((dp_slots *) data)->reply = (dp_reply_hook_t *) reply;
  ((dp_slots *) data)->getxattr = (dp_getxattr_hook_t *) getxattr;
  ((dp_slots *) data)->write_pipe = (dp_write_pipe_hook_t *) write_pipe;
  return 1;
}

// attach(): finds the patched fuse-native's hooks among the loaded objects and installs dp_serve (and
// dp_reply, where that binding has its hook). Returns false when the loaded binding has no hook (the
// prebuilt one): everything then goes to JavaScript.
static napi_value dp_attach (napi_env env, napi_callback_info info) {
  if (!hook_slot) {
    dp_slots slots = { NULL, NULL, NULL, NULL };
    dl_iterate_phdr(find_hooks, &slots);
    hook_slot = slots.hook;
    reply_slot = slots.reply;
    getxattr_slot = slots.getxattr;
    write_pipe_slot = slots.write_pipe;
  }
  if (hook_slot) __atomic_store_n(hook_slot, dp_serve, __ATOMIC_RELEASE);
  if (reply_slot) __atomic_store_n(reply_slot, dp_reply, __ATOMIC_RELEASE);
  if (getxattr_slot) __atomic_store_n(getxattr_slot, dp_getxattr, __ATOMIC_RELEASE);
  if (write_pipe_slot) __atomic_store_n(write_pipe_slot, dp_write_pipe, __ATOMIC_RELEASE);
  napi_value r;
  napi_get_boolean(env, hook_slot != NULL, &r);
  return r;
}

// setup(dpageSize, clockAnchor: bigint)
static napi_value dp_setup (napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (args(env, info, 2, argv)) return NULL;
  bool lossless;
  int64_t anchor = 0;
  napi_get_value_bigint_int64(env, argv[1], &anchor, &lossless);
  WRITE_LOCKED({ dpage_size = (uint32_t) num(env, argv[0]); clock_anchor = anchor; });
  return undefined(env);
}

// addRegion(firstDpage, count, buffer): the region's memory stays where it is for the mount's life.
static napi_value dp_add_region (napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (args(env, info, 3, argv)) return NULL;
  void *mem = NULL;
  size_t len = 0;
  napi_get_buffer_info(env, argv[2], &mem, &len);
  napi_ref ref; // held for ever: the region lives as long as the process serves the mount
  napi_create_reference(env, argv[2], 1, &ref);
  if (nregions == MAX_REGIONS) {
    napi_throw_range_error(env, NULL, "datapath: too many regions");
    return NULL;
  }
  WRITE_LOCKED({ regions[nregions++] = (dp_region) { (uint32_t) num(env, argv[0]), (uint32_t) num(env, argv[1]), mem }; });
  return undefined(env);
}

// setEnabled(on)
static napi_value dp_set_enabled (napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (args(env, info, 1, argv)) return NULL;
  bool on = false;
  napi_get_value_bool(env, argv[0], &on);
  WRITE_LOCKED({ __atomic_store_n(&enabled, on ? 1 : 0, __ATOMIC_RELEASE); });
  return undefined(env);
}

// xattrPrefix(prefix): GETXATTR of a name without this prefix is answered ENODATA here; "" turns that off.
// Set once, before the mount serves requests.
static napi_value dp_xattr_prefix (napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (args(env, info, 1, argv)) return NULL;
  size_t n = 0;
  napi_get_value_string_latin1(env, argv[0], xattr_prefix, sizeof(xattr_prefix), &n);
  xattr_prefix_len = n;
  __atomic_store_n(&xattr_rule, n > 0 ? 1 : 0, __ATOMIC_RELEASE);
  return undefined(env);
}

// fileNew(ino, stamps: BigInt64Array, at): stamps[at] and stamps[at + 1] are the file's time stamps.
static napi_value dp_file_new (napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (args(env, info, 3, argv)) return NULL;
  napi_typedarray_type type;
  size_t length;
  void *data;
  napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL);
  uint64_t at = (uint64_t) num(env, argv[2]);
  dp_file *f = calloc(1, sizeof(dp_file));
  if (!f || type != napi_bigint64_array || at + 2 > length) {
    free(f);
    napi_throw_range_error(env, NULL, "datapath: bad file slot");
    return NULL;
  }
  f->ino = (uint64_t) num(env, argv[0]);
  f->stamps = (int64_t *) data + at;
  WRITE_LOCKED({ f->next = files[f->ino % BUCKETS]; files[f->ino % BUCKETS] = f; });
  return undefined(env);
}

// fileFree(ino): the inode is gone; its handles were closed before.
static napi_value dp_file_free (napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (args(env, info, 1, argv)) return NULL;
  uint64_t ino = (uint64_t) num(env, argv[0]);
  dp_file *gone = NULL;
  WRITE_LOCKED({
    for (dp_file **p = &files[ino % BUCKETS]; *p; p = &(*p)->next) {
      if ((*p)->ino != ino) continue;
      gone = *p;
      *p = gone->next;
      break;
    }
  });
  if (!gone) return undefined(env);
  for (uint64_t i = 0; i < gone->nleaves; i++) free(gone->leaves[i]);
  free(gone->leaves);
  free(gone);
  return undefined(env);
}

// map(ino, index, firstDpage, count): file indexes index.. are served from pool dpages firstDpage..
static napi_value dp_map (napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (args(env, info, 4, argv)) return NULL;
  uint64_t ino = (uint64_t) num(env, argv[0]);
  uint64_t index = (uint64_t) num(env, argv[1]);
  uint32_t dpage = (uint32_t) num(env, argv[2]);
  uint32_t count = (uint32_t) num(env, argv[3]);
  int err = 0;
  WRITE_LOCKED({
    dp_file *f = file_find(ino);
    for (uint32_t i = 0; f && i < count && !err; i++) {
      char *addr = dpage_address(dpage + i);
      err = addr ? file_set(f, index + i, addr) : -1;
    }
  });
  if (err) napi_throw_error(env, NULL, "datapath: cannot map dpage");
  return undefined(env);
}

// unmap(ino, index): that index is no longer served here. When this returns, no copy touches its dpage.
static napi_value dp_unmap (napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (args(env, info, 2, argv)) return NULL;
  uint64_t ino = (uint64_t) num(env, argv[0]);
  uint64_t index = (uint64_t) num(env, argv[1]);
  WRITE_LOCKED({
    dp_file *f = file_find(ino);
    if (f) file_set(f, index, NULL);
  });
  return undefined(env);
}

// resize(ino, size, keep): the file's size; indexes from `keep` on are no longer served here.
static napi_value dp_resize (napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (args(env, info, 3, argv)) return NULL;
  uint64_t ino = (uint64_t) num(env, argv[0]);
  uint64_t size = (uint64_t) num(env, argv[1]);
  double keep = num(env, argv[2]);
  WRITE_LOCKED({
    dp_file *f = file_find(ino);
    if (f) {
      f->size = size;
      if (keep >= 0) file_clear_from(f, (uint64_t) keep);
    }
  });
  return undefined(env);
}

// open(fh, ino, append) and close(fh): the regular-file handles this module may serve.
static napi_value dp_open (napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (args(env, info, 3, argv)) return NULL;
  dp_handle *h = calloc(1, sizeof(dp_handle));
  if (!h) return undefined(env);
  h->fh = (uint64_t) num(env, argv[0]);
  uint64_t ino = (uint64_t) num(env, argv[1]);
  bool append = false;
  napi_get_value_bool(env, argv[2], &append);
  h->append = append;
  WRITE_LOCKED({
    h->file = file_find(ino);
    if (h->file) {
      h->next = handles[h->fh % BUCKETS];
      handles[h->fh % BUCKETS] = h;
    }
  });
  if (!h->file) free(h);
  return undefined(env);
}

static napi_value dp_close (napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (args(env, info, 1, argv)) return NULL;
  uint64_t fh = (uint64_t) num(env, argv[0]);
  dp_handle *gone = NULL;
  WRITE_LOCKED({
    for (dp_handle **p = &handles[fh % BUCKETS]; *p; p = &(*p)->next) {
      if ((*p)->fh != fh) continue;
      gone = *p;
      *p = gone->next;
      break;
    }
  });
  free(gone);
  return undefined(env);
}

// stats(): [reads served, writes served, requests passed to JavaScript, reads of them replied to the device,
// GETXATTRs answered, writes of them read from libfuse's pipe]
static napi_value dp_stats (napi_env env, napi_callback_info info) {
  napi_value arr, v;
  napi_create_array_with_length(env, 6, &arr);
  uint64_t vals[6] = {
    __atomic_load_n(&served_reads, __ATOMIC_RELAXED),
    __atomic_load_n(&served_writes, __ATOMIC_RELAXED),
    __atomic_load_n(&passed, __ATOMIC_RELAXED),
    __atomic_load_n(&replied, __ATOMIC_RELAXED),
    __atomic_load_n(&xattrs_answered, __ATOMIC_RELAXED),
    __atomic_load_n(&spliced, __ATOMIC_RELAXED)
  };
  for (uint32_t i = 0; i < 6; i++) {
    napi_create_double(env, (double) vals[i], &v);
    napi_set_element(env, arr, i, v);
  }
  return arr;
}

static napi_value init (napi_env env, napi_value exports) {
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  // A steady stream of readers must not starve TypeScript's changes (a memory failure waits on them).
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&dp_lock, &attr);
  napi_property_descriptor props[] = {
    { "attach", NULL, dp_attach, NULL, NULL, NULL, napi_default, NULL },
    { "setup", NULL, dp_setup, NULL, NULL, NULL, napi_default, NULL },
    { "addRegion", NULL, dp_add_region, NULL, NULL, NULL, napi_default, NULL },
    { "setEnabled", NULL, dp_set_enabled, NULL, NULL, NULL, napi_default, NULL },
    { "xattrPrefix", NULL, dp_xattr_prefix, NULL, NULL, NULL, napi_default, NULL },
    { "fileNew", NULL, dp_file_new, NULL, NULL, NULL, napi_default, NULL },
    { "fileFree", NULL, dp_file_free, NULL, NULL, NULL, napi_default, NULL },
    { "map", NULL, dp_map, NULL, NULL, NULL, napi_default, NULL },
    { "unmap", NULL, dp_unmap, NULL, NULL, NULL, napi_default, NULL },
    { "resize", NULL, dp_resize, NULL, NULL, NULL, napi_default, NULL },
    { "open", NULL, dp_open, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, dp_close, NULL, NULL, NULL, napi_default, NULL },
    { "stats", NULL, dp_stats, NULL, NULL, NULL, napi_default, NULL }
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
