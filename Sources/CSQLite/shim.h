#define _GNU_SOURCE
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sqlite3.h>

/// Lowers (or raises, with privileges) the scheduling priority of the calling thread alone (Linux: a thread is
/// a task of its own for setpriority). Inline, so the module needs no C target.
static inline int bakeoff_set_thread_nice(int nice) {
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
}
