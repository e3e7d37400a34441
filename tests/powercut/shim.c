/*
 * libpowercut: an LD_PRELOAD shim that records what a process does to the
 * files under $POWERCUT_ROOT, so that a test can afterwards turn the
 * directory into what a power cut would have left (tests/src/powercut.rs).
 *
 * Each operation on a path or descriptor under the root appends one line to
 * $POWERCUT_LOG (fields separated by spaces, paths percent-encoded):
 *
 *   C pino ino kind path          entry created (kind f file, d dir, l other)
 *   U pino ino stash path         entry unlinked, its inode linked at stash
 *   D pino ino mode path          directory removed
 *   R spino dpino ino victim src dst   renamed; victim is a stash name, -
 *                                 (none) or @<mode> (an empty dir replaced)
 *   X spino dpino src dst         exchanged (renameat2 RENAME_EXCHANGE)
 *   W ino off len pre_off pre_len size_before   data written (write, pwrite,
 *                                 writev, copy_file_range, sendfile, splice,
 *                                 fallocate)
 *   T ino len pre_off pre_len size_before        size set
 *   S ino size start              file fsync/fdatasync; start is the log's
 *                                 length when it began: what the lines
 *                                 before that offset did, it made durable
 *   Y ino start                   directory fsync
 *   A start                       syncfs or sync
 *   P ino off len                 sync_file_range (no durability promise)
 *   K what                        the shim cut the power here ($POWERCUT_KILL,
 *                                 or what `!`: a cut asked for on $POWERCUT_CUT)
 *
 * Bytes a write or truncate replaces are copied to $POWERCUT_LOG.pre first
 * (pre_off, pre_len); an entry an unlink or rename removes is hard-linked
 * into $POWERCUT_STASH first. The real call is never changed: on any
 * failure of its own the shim logs what it can and carries on.
 *
 * $POWERCUT_KILL=<letter>:<text>[:<n>] makes the process SIGKILL itself
 * right after logging the n-th (default first) line of that letter that
 * contains text (ends with it, if text ends with '$'): a power cut at an
 * exact operation.
 *
 * $POWERCUT_CUT names a FIFO: a byte written to it makes the process
 * SIGKILL itself between two operations (a thread of the shim's waits on
 * it, takes the lock every traced operation holds from its real call to
 * its line, then kills). A SIGKILL from outside could land while a call
 * such as rmdir or unlink is in the kernel: the call completes, the
 * process dies before logging it, and the replay can neither undo it nor
 * find the tree the later undo steps expect. A test cutting the power at
 * a moment of its own choosing asks here instead.
 *
 * Only the process that loaded the shim is traced: LD_PRELOAD is removed
 * from the environment at load (unless $POWERCUT_CHILDREN is set: the
 * shim's own tests trace shell scripts), and a forked child (between fork
 * and exec) passes every call straight through. The files the process was
 * given as its standard streams (the test's log of it) are not traced.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <unistd.h>

#define REAL(name) static __typeof__(name) *real_##name
#define LOAD(name) ((__typeof__(&name))load((void **)&real_##name, #name))

/* The next definition of `name` (glibc's), looked up once. */
static void *load(void **slot, const char *name) {
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!f) {
        f = dlsym(RTLD_NEXT, name);
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    }
    return f;
}

REAL(open); REAL(open64); REAL(openat); REAL(openat64);
REAL(write); REAL(pwrite); REAL(pwrite64); REAL(writev); REAL(pwritev); REAL(pwritev64);
REAL(ftruncate); REAL(ftruncate64); REAL(truncate); REAL(truncate64);
REAL(fsync); REAL(fdatasync); REAL(syncfs); REAL(sync); REAL(sync_file_range);
REAL(rename); REAL(renameat); REAL(renameat2);
REAL(unlink); REAL(unlinkat); REAL(rmdir); REAL(mkdir); REAL(mkdirat);
REAL(link); REAL(linkat); REAL(symlink); REAL(symlinkat); REAL(mknod); REAL(mknodat);
REAL(copy_file_range); REAL(fallocate); REAL(fallocate64); REAL(sendfile); REAL(sendfile64);
REAL(splice);

static int enabled;
static pid_t owner;
static char root[PATH_MAX];
static size_t root_len;
static dev_t root_dev;
static char stash[PATH_MAX];
static int log_fd = -1, pre_fd = -1;
static unsigned long seq;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static ino_t stdio_ino[3];
static char kill_letter;
static char kill_text[PATH_MAX];
static long kill_left;
static int kill_at_end;
static char line[4 * 3 * PATH_MAX + 256];
static char cut_fifo[PATH_MAX];

static void emit(const char *head, const char *p1, const char *p2);
static void *cutter(void *arg);

__attribute__((constructor)) static void powercut_init(void) {
    const char *r = getenv("POWERCUT_ROOT"), *l = getenv("POWERCUT_LOG");
    const char *s = getenv("POWERCUT_STASH"), *k = getenv("POWERCUT_KILL");
    if (!getenv("POWERCUT_CHILDREN")) unsetenv("LD_PRELOAD");
    if (!r || !l || !s || !realpath(r, root)) return;
    struct stat st;
    if (stat(root, &st) != 0) return;
    root_dev = st.st_dev;
    root_len = strlen(root);
    snprintf(stash, sizeof stash, "%s", s);
    char pre[PATH_MAX];
    snprintf(pre, sizeof pre, "%s.pre", l);
    log_fd = LOAD(open)(l, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    pre_fd = LOAD(open)(pre, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0 || pre_fd < 0) return;
    if (k && strlen(k) > 2 && k[1] == ':') {
        kill_letter = k[0];
        snprintf(kill_text, sizeof kill_text, "%s", k + 2);
        char *nth = strrchr(kill_text, ':');
        kill_left = 1;
        if (nth && nth[1] && strspn(nth + 1, "0123456789") == strlen(nth + 1)) {
            kill_left = atol(nth + 1);
            *nth = 0;
        }
        size_t n = strlen(kill_text);
        if (n > 0 && kill_text[n - 1] == '$') {
            kill_text[n - 1] = 0;
            kill_at_end = 1;
        }
    }
    for (int fd = 0; fd < 3; fd++)
        if (fstat(fd, &st) == 0 && st.st_dev == root_dev) stdio_ino[fd] = st.st_ino;
    owner = getpid();
    enabled = 1;
    const char *c = getenv("POWERCUT_CUT");
    if (c && *c) {
        snprintf(cut_fifo, sizeof cut_fifo, "%s", c);
        unsetenv("POWERCUT_CUT"); /* the process's children get no cutter */
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_create(&t, &attr, cutter, NULL);
        pthread_attr_destroy(&attr);
    }
}

/* Waits for a byte on $POWERCUT_CUT, then cuts the power between two
 * traced operations: with the lock held, none is half logged. */
static void *cutter(void *arg) {
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* the process's signals are not ours */
    for (;;) {
        int fd = LOAD(open)(cut_fifo, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == EINTR) continue;
        if (fd < 0) return NULL;
        char byte;
        ssize_t n;
        do n = read(fd, &byte, 1); while (n < 0 && errno == EINTR);
        close(fd);
        if (n == 1) {
            pthread_mutex_lock(&lock);
            emit("K !", NULL, NULL);
            kill(getpid(), SIGKILL);
            pause();
        }
    }
}

/* Traced at all: set up, and in the process that loaded the shim. */
static int active(void) { return enabled && getpid() == owner; }

/* --- paths ------------------------------------------------------------ */

/* The absolute path of `path` relative to `dirfd`, without trailing '/'. */
static int resolve(int dirfd, const char *path, char *out, size_t cap) {
    char base[PATH_MAX];
    if (!path) return -1;
    if (path[0] == '/') {
        snprintf(out, cap, "%s", path);
    } else {
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base)) return -1;
        } else {
            char proc[64];
            snprintf(proc, sizeof proc, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(proc, base, sizeof base - 1);
            if (n < 0) return -1;
            base[n] = 0;
        }
        if ((size_t)snprintf(out, cap, "%s/%s", base, path) >= cap) return -1;
    }
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') out[--n] = 0;
    return 0;
}

static int under_root(const char *p) {
    return strncmp(p, root, root_len) == 0 && (p[root_len] == '/' || p[root_len] == 0);
}

/* The inode of the directory holding `full`, if it lies on the root's
 * filesystem under the root; 0 otherwise. */
static ino_t parent_ino(const char *full) {
    char dir[PATH_MAX];
    struct stat st;
    snprintf(dir, sizeof dir, "%s", full);
    char *slash = strrchr(dir, '/');
    if (!slash) return 0;
    if (slash == dir) slash[1] = 0; else *slash = 0;
    if (!under_root(dir) || stat(dir, &st) != 0 || st.st_dev != root_dev) return 0;
    return st.st_ino;
}

/* A regular file or directory on the root's filesystem under the root. */
static int traced_fd(int fd, struct stat *st) {
    if (fd < 0 || fstat(fd, st) != 0 || st->st_dev != root_dev) return 0;
    if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode)) return 0;
    for (int i = 0; i < 3; i++)
        if (stdio_ino[i] && st->st_ino == stdio_ino[i]) return 0;
    char proc[64], target[PATH_MAX];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, target, sizeof target - 1);
    if (n < 0) return 0;
    target[n] = 0;
    return under_root(target);
}

/* --- the log ---------------------------------------------------------- */

static char *put_path(char *o, const char *p) {
    static const char hex[] = "0123456789ABCDEF";
    *o++ = ' ';
    for (const unsigned char *c = (const unsigned char *)p; *c; c++) {
        if (*c <= ' ' || *c == '%' || *c >= 0x7f) {
            *o++ = '%';
            *o++ = hex[*c >> 4];
            *o++ = hex[*c & 15];
        } else {
            *o++ = (char)*c;
        }
    }
    return o;
}

/* Whether the line just built (`len` bytes before its newline) is the one
 * $POWERCUT_KILL names. */
static int kill_matches(size_t len) {
    size_t n = strlen(kill_text);
    if (!kill_at_end) return memmem(line, len, kill_text, n) != NULL;
    return len >= n && memcmp(line + len - n, kill_text, n) == 0;
}

/* Appends one line (caller holds the lock): `head`, then the paths. */
static void emit(const char *head, const char *p1, const char *p2) {
    char *o = line + snprintf(line, 256, "%s", head);
    if (p1) o = put_path(o, p1);
    if (p2) o = put_path(o, p2);
    *o++ = '\n';
    size_t len = (size_t)(o - line), done = 0;
    while (done < len) {
        ssize_t n = LOAD(write)(log_fd, line + done, len - done);
        if (n <= 0 && errno != EINTR) break;
        if (n > 0) done += (size_t)n;
    }
    seq++;
    if (kill_letter && head[0] == kill_letter && kill_matches(len - 1) && --kill_left == 0) {
        char cut[256];
        snprintf(cut, sizeof cut, "K %c", kill_letter);
        kill_letter = 0;
        emit(cut, kill_text, NULL);
        kill(getpid(), SIGKILL);
    }
}

/* Copies bytes [off, off+len) of the open file `fd` (clipped to `size`)
 * to the pre-image file; returns how many, and where they went. */
static size_t save_pre(int fd, off_t off, off_t len, off_t size, off_t *at) {
    *at = lseek(pre_fd, 0, SEEK_END);
    if (off >= size || len <= 0) return 0;
    if (off + len > size) len = size - off;
    char proc[64], buf[65536];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    int in = LOAD(open)(proc, O_RDONLY | O_CLOEXEC);
    if (in < 0) return 0;
    off_t done = 0;
    while (done < len) {
        size_t want = (size_t)(len - done) < sizeof buf ? (size_t)(len - done) : sizeof buf;
        ssize_t n = pread(in, buf, want, off + done);
        if (n <= 0) break;
        ssize_t w = LOAD(write)(pre_fd, buf, (size_t)n);
        if (w != n) break;
        done += n;
    }
    close(in);
    return (size_t)done;
}

/* --- data ------------------------------------------------------------- */

/* A write of `len` bytes at `off` (-1: the descriptor's position) to `fd`
 * by `call`, which returns the byte count. */
#define DATA_OP(fd, off, len, call)                                             \
    do {                                                                        \
        struct stat st_;                                                        \
        if (!active() || !traced_fd(fd, &st_) || !S_ISREG(st_.st_mode))        \
            return call;                                                        \
        pthread_mutex_lock(&lock);                                              \
        fstat(fd, &st_);                                                        \
        off_t at_ = (off);                                                      \
        if (at_ < 0) at_ = (fcntl(fd, F_GETFL) & O_APPEND) ? st_.st_size        \
                                                           : lseek(fd, 0, SEEK_CUR); \
        off_t pre_at_;                                                          \
        size_t pre_ = save_pre(fd, at_, (off_t)(len), st_.st_size, &pre_at_);  \
        __typeof__(call) r_ = call;                                             \
        int e_ = errno;                                                         \
        if (r_ > 0) {                                                           \
            char h_[256];                                                       \
            snprintf(h_, sizeof h_, "W %lu %lld %lld %lld %zu %lld",            \
                     (unsigned long)st_.st_ino, (long long)at_, (long long)r_,  \
                     (long long)pre_at_, pre_, (long long)st_.st_size);         \
            emit(h_, NULL, NULL);                                               \
        }                                                                       \
        pthread_mutex_unlock(&lock);                                            \
        errno = e_;                                                             \
        return r_;                                                              \
    } while (0)

static size_t iov_len(const struct iovec *iov, int n) {
    size_t t = 0;
    for (int i = 0; i < n; i++) t += iov[i].iov_len;
    return t;
}

ssize_t write(int fd, const void *b, size_t n) { DATA_OP(fd, -1, n, LOAD(write)(fd, b, n)); }
ssize_t pwrite(int fd, const void *b, size_t n, off_t o) { DATA_OP(fd, o, n, LOAD(pwrite)(fd, b, n, o)); }
ssize_t pwrite64(int fd, const void *b, size_t n, off64_t o) { DATA_OP(fd, o, n, LOAD(pwrite64)(fd, b, n, o)); }
ssize_t writev(int fd, const struct iovec *v, int c) { DATA_OP(fd, -1, iov_len(v, c), LOAD(writev)(fd, v, c)); }
ssize_t pwritev(int fd, const struct iovec *v, int c, off_t o) { DATA_OP(fd, o, iov_len(v, c), LOAD(pwritev)(fd, v, c, o)); }
ssize_t pwritev64(int fd, const struct iovec *v, int c, off64_t o) { DATA_OP(fd, o, iov_len(v, c), LOAD(pwritev64)(fd, v, c, o)); }
ssize_t copy_file_range(int in, off64_t *oi, int out, off64_t *oo, size_t n, unsigned f) {
    DATA_OP(out, oo ? *oo : -1, n, LOAD(copy_file_range)(in, oi, out, oo, n, f));
}
ssize_t sendfile(int out, int in, off_t *o, size_t n) { DATA_OP(out, -1, n, LOAD(sendfile)(out, in, o, n)); }
ssize_t sendfile64(int out, int in, off64_t *o, size_t n) { DATA_OP(out, -1, n, LOAD(sendfile64)(out, in, o, n)); }
ssize_t splice(int in, off64_t *oi, int out, off64_t *oo, size_t n, unsigned f) {
    DATA_OP(out, oo ? *oo : -1, n, LOAD(splice)(in, oi, out, oo, n, f));
}

/* fallocate without FALLOC_FL_KEEP_SIZE may grow the file; modes that
 * punch or zero save the bytes they replace. */
#define FALLOC_OP(fd, mode, o, n, call)                                         \
    do {                                                                        \
        struct stat st_;                                                        \
        if (!active() || !traced_fd(fd, &st_) || !S_ISREG(st_.st_mode))        \
            return call;                                                        \
        pthread_mutex_lock(&lock);                                              \
        off_t pre_at_;                                                          \
        size_t pre_ = (mode) & ~1 ? save_pre(fd, o, n, st_.st_size, &pre_at_)   \
                                  : save_pre(fd, 0, 0, 0, &pre_at_);            \
        int r_ = call, e_ = errno;                                              \
        if (r_ == 0) {                                                          \
            char h_[256];                                                       \
            snprintf(h_, sizeof h_, "W %lu %lld %lld %lld %zu %lld",            \
                     (unsigned long)st_.st_ino, (long long)(o), (long long)(n), \
                     (long long)pre_at_, pre_, (long long)st_.st_size);         \
            emit(h_, NULL, NULL);                                               \
        }                                                                       \
        pthread_mutex_unlock(&lock);                                            \
        errno = e_;                                                             \
        return r_;                                                              \
    } while (0)

int fallocate(int fd, int m, off_t o, off_t n) { FALLOC_OP(fd, m, o, n, LOAD(fallocate)(fd, m, o, n)); }
int fallocate64(int fd, int m, off64_t o, off64_t n) { FALLOC_OP(fd, m, o, n, LOAD(fallocate64)(fd, m, o, n)); }

/* Logs `T` for a size change of the open file `fd` from `before` to `len`
 * (caller holds the lock; the pre-image was saved at pre_at, pre). */
static void log_trunc(struct stat *before, off_t len, off_t pre_at, size_t pre) {
    char h[256];
    snprintf(h, sizeof h, "T %lu %lld %lld %zu %lld", (unsigned long)before->st_ino,
             (long long)len, (long long)pre_at, pre, (long long)before->st_size);
    emit(h, NULL, NULL);
}

#define FTRUNC_OP(fd, len, call)                                                \
    do {                                                                        \
        struct stat st_;                                                        \
        if (!active() || !traced_fd(fd, &st_) || !S_ISREG(st_.st_mode))        \
            return call;                                                        \
        pthread_mutex_lock(&lock);                                              \
        fstat(fd, &st_);                                                        \
        off_t pre_at_;                                                          \
        size_t pre_ = save_pre(fd, len, st_.st_size, st_.st_size, &pre_at_);    \
        int r_ = call, e_ = errno;                                              \
        if (r_ == 0) log_trunc(&st_, len, pre_at_, pre_);                       \
        pthread_mutex_unlock(&lock);                                            \
        errno = e_;                                                             \
        return r_;                                                              \
    } while (0)

int ftruncate(int fd, off_t len) { FTRUNC_OP(fd, len, LOAD(ftruncate)(fd, len)); }
int ftruncate64(int fd, off64_t len) { FTRUNC_OP(fd, len, LOAD(ftruncate64)(fd, len)); }

/* truncate(path): through a descriptor of our own, so the same code runs. */
#define PTRUNC_OP(path, len, call)                                              \
    do {                                                                        \
        char full_[PATH_MAX];                                                   \
        if (!active() || resolve(AT_FDCWD, path, full_, sizeof full_) || !under_root(full_)) \
            return call;                                                        \
        int fd_ = LOAD(open)(full_, O_RDONLY | O_CLOEXEC);                       \
        struct stat st_;                                                        \
        if (fd_ < 0 || !traced_fd(fd_, &st_) || !S_ISREG(st_.st_mode)) {        \
            if (fd_ >= 0) close(fd_);                                           \
            return call;                                                        \
        }                                                                       \
        pthread_mutex_lock(&lock);                                              \
        off_t pre_at_;                                                          \
        size_t pre_ = save_pre(fd_, len, st_.st_size, st_.st_size, &pre_at_);   \
        int r_ = call, e_ = errno;                                              \
        if (r_ == 0) log_trunc(&st_, len, pre_at_, pre_);                       \
        pthread_mutex_unlock(&lock);                                            \
        close(fd_);                                                             \
        errno = e_;                                                             \
        return r_;                                                              \
    } while (0)

int truncate(const char *p, off_t len) { PTRUNC_OP(p, len, LOAD(truncate)(p, len)); }
int truncate64(const char *p, off64_t len) { PTRUNC_OP(p, len, LOAD(truncate64)(p, len)); }

/* --- syncs ------------------------------------------------------------ */

/* The log's length now: a sync begun now covers the lines before it. */
static unsigned long sync_start(void) {
    pthread_mutex_lock(&lock);
    off_t end = lseek(log_fd, 0, SEEK_END);
    pthread_mutex_unlock(&lock);
    return end < 0 ? 0 : (unsigned long)end;
}

#define FSYNC_OP(fd, call)                                                      \
    do {                                                                        \
        struct stat st_;                                                        \
        if (!active() || !traced_fd(fd, &st_)) return call;                     \
        unsigned long start_ = sync_start();                                    \
        int r_ = call, e_ = errno;                                              \
        if (r_ == 0) {                                                          \
            char h_[256];                                                       \
            pthread_mutex_lock(&lock);                                          \
            if (S_ISDIR(st_.st_mode))                                           \
                snprintf(h_, sizeof h_, "Y %lu %lu", (unsigned long)st_.st_ino, start_); \
            else                                                                \
                snprintf(h_, sizeof h_, "S %lu %lld %lu", (unsigned long)st_.st_ino, \
                         (long long)st_.st_size, start_);                       \
            emit(h_, NULL, NULL);                                               \
            pthread_mutex_unlock(&lock);                                        \
        }                                                                       \
        errno = e_;                                                             \
        return r_;                                                              \
    } while (0)

int fsync(int fd) { FSYNC_OP(fd, LOAD(fsync)(fd)); }
int fdatasync(int fd) { FSYNC_OP(fd, LOAD(fdatasync)(fd)); }

static void log_all(unsigned long start) {
    char h[64];
    pthread_mutex_lock(&lock);
    snprintf(h, sizeof h, "A %lu", start);
    emit(h, NULL, NULL);
    pthread_mutex_unlock(&lock);
}

int syncfs(int fd) {
    struct stat st;
    if (!active() || fstat(fd, &st) != 0 || st.st_dev != root_dev) return LOAD(syncfs)(fd);
    unsigned long start = sync_start();
    int r = LOAD(syncfs)(fd), e = errno;
    if (r == 0) log_all(start);
    errno = e;
    return r;
}

void sync(void) {
    if (!active()) {
        LOAD(sync)();
        return;
    }
    unsigned long start = sync_start();
    LOAD(sync)();
    log_all(start);
}

int sync_file_range(int fd, off64_t o, off64_t n, unsigned int f) {
    struct stat st;
    if (!active() || !traced_fd(fd, &st) || !S_ISREG(st.st_mode))
        return LOAD(sync_file_range)(fd, o, n, f);
    int r = LOAD(sync_file_range)(fd, o, n, f), e = errno;
    if (r == 0) {
        char h[256];
        pthread_mutex_lock(&lock);
        snprintf(h, sizeof h, "P %lu %lld %lld", (unsigned long)st.st_ino, (long long)o,
                 (long long)n);
        emit(h, NULL, NULL);
        pthread_mutex_unlock(&lock);
    }
    errno = e;
    return r;
}

/* --- directory entries ------------------------------------------------- */

/* Hard-links the entry at `full` into the stash; its name there, or "-". */
static void stash_entry(const char *full, char *name, size_t cap) {
    char dst[2 * PATH_MAX];
    snprintf(name, cap, "%d-%lu", (int)owner, seq);
    snprintf(dst, sizeof dst, "%s/%s", stash, name);
    if (LOAD(linkat)(AT_FDCWD, full, AT_FDCWD, dst, 0) != 0) snprintf(name, cap, "-");
}

static char kind_of(mode_t m) { return S_ISREG(m) ? 'f' : S_ISDIR(m) ? 'd' : 'l'; }

/* After an entry was created at `full` (caller holds the lock). */
static void log_created(const char *full, ino_t pino) {
    struct stat st;
    if (lstat(full, &st) != 0) return;
    char h[256];
    snprintf(h, sizeof h, "C %lu %lu %c", (unsigned long)pino, (unsigned long)st.st_ino,
             kind_of(st.st_mode));
    emit(h, full, NULL);
}

/* An operation creating the entry `path` (relative to `dirfd`) by `call`
 * (0 on success), such as mkdir. */
#define CREATE_OP(dirfd, path, call)                                            \
    do {                                                                        \
        char full_[PATH_MAX];                                                   \
        ino_t pino_;                                                            \
        if (!active() || resolve(dirfd, path, full_, sizeof full_) ||           \
            !under_root(full_) || !(pino_ = parent_ino(full_)))                 \
            return call;                                                        \
        pthread_mutex_lock(&lock);                                              \
        int r_ = call, e_ = errno;                                              \
        if (r_ == 0) log_created(full_, pino_);                                 \
        pthread_mutex_unlock(&lock);                                            \
        errno = e_;                                                             \
        return r_;                                                              \
    } while (0)

int mkdir(const char *p, mode_t m) { CREATE_OP(AT_FDCWD, p, LOAD(mkdir)(p, m)); }
int mkdirat(int d, const char *p, mode_t m) { CREATE_OP(d, p, LOAD(mkdirat)(d, p, m)); }
int symlink(const char *t, const char *p) { CREATE_OP(AT_FDCWD, p, LOAD(symlink)(t, p)); }
int symlinkat(const char *t, int d, const char *p) { CREATE_OP(d, p, LOAD(symlinkat)(t, d, p)); }
int mknod(const char *p, mode_t m, dev_t v) { CREATE_OP(AT_FDCWD, p, LOAD(mknod)(p, m, v)); }
int mknodat(int d, const char *p, mode_t m, dev_t v) { CREATE_OP(d, p, LOAD(mknodat)(d, p, m, v)); }
int link(const char *o, const char *p) { CREATE_OP(AT_FDCWD, p, LOAD(link)(o, p)); }
int linkat(int od, const char *o, int d, const char *p, int f) {
    CREATE_OP(d, p, LOAD(linkat)(od, o, d, p, f));
}

/* open with O_CREAT may create the file, and with O_TRUNC empty it. */
/* kind: which call (0 open, 1 open64, 2 openat, 3 openat64). */
static int traced_open(int dirfd, const char *path, int flags, mode_t mode, int kind) {
#define CALL_OPEN                                                              \
    (kind == 0 ? LOAD(open)(path, flags, mode)                                 \
     : kind == 1 ? LOAD(open64)(path, flags, mode)                             \
     : kind == 2 ? LOAD(openat)(dirfd, path, flags, mode)                      \
                 : LOAD(openat64)(dirfd, path, flags, mode))
    char full[PATH_MAX];
    ino_t pino;
    int writes = (flags & O_ACCMODE) != O_RDONLY;
    if (!active() || !(flags & (O_CREAT | O_TRUNC)) || (flags & O_TMPFILE) == O_TMPFILE ||
        resolve(dirfd, path, full, sizeof full) || !under_root(full) ||
        !(pino = parent_ino(full)))
        return CALL_OPEN;
    pthread_mutex_lock(&lock);
    struct stat before;
    int existed = lstat(full, &before) == 0;
    int old = -1;
    off_t pre_at = 0;
    size_t pre = 0;
    if (existed && writes && (flags & O_TRUNC) && S_ISREG(before.st_mode) && before.st_size > 0) {
        old = LOAD(open)(full, O_RDONLY | O_CLOEXEC);
        if (old >= 0) pre = save_pre(old, 0, before.st_size, before.st_size, &pre_at);
    }
    int fd = CALL_OPEN, e = errno;
    if (fd >= 0 && !existed && (flags & O_CREAT)) log_created(full, pino);
    if (fd >= 0 && old >= 0) log_trunc(&before, 0, pre_at, pre);
    pthread_mutex_unlock(&lock);
    if (old >= 0) close(old);
    errno = e;
    return fd;
#undef CALL_OPEN
}

static mode_t mode_arg(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *p, int f, ...) {
    va_list ap;
    va_start(ap, f);
    mode_t m = mode_arg(f, ap);
    va_end(ap);
    return traced_open(AT_FDCWD, p, f, m, 0);
}
int open64(const char *p, int f, ...) {
    va_list ap;
    va_start(ap, f);
    mode_t m = mode_arg(f, ap);
    va_end(ap);
    return traced_open(AT_FDCWD, p, f, m, 1);
}
int openat(int d, const char *p, int f, ...) {
    va_list ap;
    va_start(ap, f);
    mode_t m = mode_arg(f, ap);
    va_end(ap);
    return traced_open(d, p, f, m, 2);
}
int openat64(int d, const char *p, int f, ...) {
    va_list ap;
    va_start(ap, f);
    mode_t m = mode_arg(f, ap);
    va_end(ap);
    return traced_open(d, p, f, m, 3);
}
int creat(const char *p, mode_t m) { return traced_open(AT_FDCWD, p, O_CREAT | O_WRONLY | O_TRUNC, m, 0); }
int creat64(const char *p, mode_t m) { return traced_open(AT_FDCWD, p, O_CREAT | O_WRONLY | O_TRUNC, m, 1); }

/* unlink, rmdir and unlinkat: the entry is stashed (or its mode noted)
 * before it goes. */
static int traced_remove(int dirfd, const char *path, int dir, int (*call)(void *), void *arg) {
    char full[PATH_MAX];
    ino_t pino;
    struct stat st;
    if (!active() || resolve(dirfd, path, full, sizeof full) || !under_root(full) ||
        !(pino = parent_ino(full)) || lstat(full, &st) != 0)
        return call(arg);
    pthread_mutex_lock(&lock);
    char name[64] = "-", h[256];
    if (!dir) stash_entry(full, name, sizeof name);
    int r = call(arg), e = errno;
    if (r == 0 && dir)
        snprintf(h, sizeof h, "D %lu %lu %o", (unsigned long)pino, (unsigned long)st.st_ino,
                 (unsigned)(st.st_mode & 07777));
    else if (r == 0)
        snprintf(h, sizeof h, "U %lu %lu %s", (unsigned long)pino, (unsigned long)st.st_ino,
                 name);
    if (r == 0) emit(h, full, NULL);
    else if (name[0] != '-') {
        char dst[2 * PATH_MAX];
        snprintf(dst, sizeof dst, "%s/%s", stash, name);
        LOAD(unlink)(dst);
    }
    pthread_mutex_unlock(&lock);
    errno = e;
    return r;
}

struct rm_args { int dirfd; const char *path; int flags; };
static int do_unlink(void *a) { return LOAD(unlink)(((struct rm_args *)a)->path); }
static int do_rmdir(void *a) { return LOAD(rmdir)(((struct rm_args *)a)->path); }
static int do_unlinkat(void *a) {
    struct rm_args *r = a;
    return LOAD(unlinkat)(r->dirfd, r->path, r->flags);
}

int unlink(const char *p) {
    struct rm_args a = {AT_FDCWD, p, 0};
    return traced_remove(AT_FDCWD, p, 0, do_unlink, &a);
}
int rmdir(const char *p) {
    struct rm_args a = {AT_FDCWD, p, 0};
    return traced_remove(AT_FDCWD, p, 1, do_rmdir, &a);
}
int unlinkat(int d, const char *p, int f) {
    struct rm_args a = {d, p, f};
    return traced_remove(d, p, (f & AT_REMOVEDIR) != 0, do_unlinkat, &a);
}

/* rename, renameat, renameat2: a replaced target is stashed first. */
static int traced_rename(int sd, const char *src, int dd, const char *dst, unsigned flags) {
#define CALL_RENAME                                                             \
    (flags ? LOAD(renameat2)(sd, src, dd, dst, flags)                          \
           : sd == AT_FDCWD && dd == AT_FDCWD ? LOAD(rename)(src, dst)        \
                                              : LOAD(renameat)(sd, src, dd, dst))
    char from[PATH_MAX], to[PATH_MAX];
    ino_t sp, dp;
    struct stat moved, victim;
    if (!active() || resolve(sd, src, from, sizeof from) || resolve(dd, dst, to, sizeof to) ||
        !under_root(from) || !under_root(to) || !(sp = parent_ino(from)) ||
        !(dp = parent_ino(to)) || lstat(from, &moved) != 0)
        return CALL_RENAME;
    pthread_mutex_lock(&lock);
    char name[64] = "-", h[256];
    int replaces = !(flags & (RENAME_NOREPLACE | RENAME_EXCHANGE)) && lstat(to, &victim) == 0 &&
                   victim.st_ino != moved.st_ino;
    if (replaces && S_ISDIR(victim.st_mode))
        snprintf(name, sizeof name, "@%o", (unsigned)(victim.st_mode & 07777));
    else if (replaces)
        stash_entry(to, name, sizeof name);
    int r = CALL_RENAME, e = errno;
    if (r == 0 && (flags & RENAME_EXCHANGE))
        snprintf(h, sizeof h, "X %lu %lu", (unsigned long)sp, (unsigned long)dp);
    else if (r == 0)
        snprintf(h, sizeof h, "R %lu %lu %lu %s", (unsigned long)sp, (unsigned long)dp,
                 (unsigned long)moved.st_ino, name);
    if (r == 0) emit(h, from, to);
    else if (replaces && name[0] != '@' && name[0] != '-') {
        char st[2 * PATH_MAX];
        snprintf(st, sizeof st, "%s/%s", stash, name);
        LOAD(unlink)(st);
    }
    pthread_mutex_unlock(&lock);
    errno = e;
    return r;
#undef CALL_RENAME
}

int rename(const char *s, const char *d) { return traced_rename(AT_FDCWD, s, AT_FDCWD, d, 0); }
int renameat(int sd, const char *s, int dd, const char *d) { return traced_rename(sd, s, dd, d, 0); }
int renameat2(int sd, const char *s, int dd, const char *d, unsigned f) {
    return traced_rename(sd, s, dd, d, f);
}
