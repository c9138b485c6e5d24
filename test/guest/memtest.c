/*
 * doppel test guest workload: a memory dirtier that can check its own memory, driven over the serial console.
 *
 * Built static (gcc -static -O2) and run as the guest's PID 1 by test/guest/init, with stdin and stdout on
 * /dev/ttyS0. Settings come from the kernel command line (doppel.mem_mib=N, default 64; doppel.rate=R pages per
 * second, default 0 = as fast as it can), or from argv for a run on the host: memtest [-m MIB] [-r RATE] [-d DISK].
 *
 * Memory. The test area is N MiB of 4 KiB pages. Page i holds:
 *   bytes 0..3     a little-endian uint32 counter, 0 after the fill (its low byte is "the byte" of QEMU's test);
 *   bytes 8..15    signature: uint64 i ^ 0x444F5050454C4D45 ("DOPPELME");
 *   bytes 16..2047 uint32 words of xorshift32 seeded by seed(i) = (i * 2654435761 ^ 0x9E3779B9) | 1;
 *   the rest       zero (so the area compresses about 2:1, like mixed real memory).
 * The walker endlessly goes through the pages in order, incrementing each page's counter, at the set rate. It is the
 * memory check of QEMU's own migration test: at any instant the pages before some point p hold v+1 and the pages
 * from p on hold v. A clone that missed a dirty page shows more than one step, or a step other than -1.
 *
 * One thread: the walker works in batches and between batches polls the tty (ppoll's timeout is the rate limiter's
 * sleep), so a command sees the walker stopped between two pages and is answered at once.
 *
 * Commands (one per line; every command prints exactly one line):
 *   check          MEMCHECK ok pages=N value=V            V: the counter of the pages the walker has not reached yet
 *                  MEMCHECK fail pages=N steps=S first_bad=I bad_content=K
 *                                                        S: number of places where the counter changes; I: the first
 *                                                        page that breaks the pattern or has wrong content; K: pages
 *                                                        whose signature or data (everything but the counter) is wrong
 *   stats          STATS walks=W pages_written=P
 *   disk N         writes N 4 KiB blocks at pseudo-random block offsets of the disk, then fsync: DISK wrote=N
 *                  block layout: "DOPPELDK" | uint64 block number | uint64 seq | uint64 0 | uint32 words of
 *                  xorshift32 seeded by (block * 2654435761 ^ seq * 40503 ^ 0x85EBCA6B) | 1 (seq counts writes
 *                  since boot, from 1)
 *   diskcheck      reads the whole disk with O_DIRECT (not the page cache, which a clone inherits from its source)
 *                  and verifies every block that starts with the magic: DISKCHECK ok blocks=K max_seq=S, or
 *                  DISKCHECK fail blocks=K bad=B first_bad=BLOCK
 *   sync           sync(): SYNC ok
 *   corrupt [I]    makes page I (default: half the area away from the walker) one walk stale, as a missed dirty page
 *                  would: CORRUPT page=I
 *   rate R         changes the rate (0 = as fast as possible): RATE R
 *   ping           PONG
 *   anything else  ERR unknown
 * Errors print ERR <what>.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define DATA_START 16u
#define DATA_END 2048u
#define SIG_XOR UINT64_C(0x444F5050454C4D45)
#define BLOCK 4096u
#define DISK_MAGIC "DOPPELDK"
#define MAX_BATCH 4096u
#define LINE_MAX_LEN 256u

static uint8_t *area;
static size_t npages;
static volatile size_t pos;        /* next page the walker increments */
static volatile uint64_t walks;    /* completed walks */
static volatile uint64_t pages_written;
static uint64_t rate;              /* pages per second, 0 = unlimited */
static const char *disk_path = "/dev/vda";
static uint64_t disk_seq;          /* writes since boot */
static uint32_t disk_rng = 0x2545F491u;

static void out(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  size_t off = 0;
  while (off < (size_t)n) {
    ssize_t w = write(1, buf + off, (size_t)n - off);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return;
    }
    off += (size_t)w;
  }
}

static inline uint32_t xorshift32(uint32_t x) {
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return x;
}

static inline uint32_t page_seed(size_t i) { return ((uint32_t)i * 2654435761u ^ 0x9E3779B9u) | 1u; }
static inline uint64_t page_sig(size_t i) { return (uint64_t)i ^ SIG_XOR; }
static inline volatile uint32_t *counter(size_t i) { return (volatile uint32_t *)(area + i * PAGE); }

static void fill_page(size_t i) {
  uint8_t *p = area + i * PAGE;
  *(uint32_t *)p = 0;
  *(uint64_t *)(p + 8) = page_sig(i);
  uint32_t x = page_seed(i);
  for (uint32_t o = DATA_START; o < DATA_END; o += 4) {
    x = xorshift32(x);
    *(uint32_t *)(p + o) = x;
  }
}

static int page_content_ok(size_t i) {
  const uint8_t *p = area + i * PAGE;
  if (*(const uint64_t *)(p + 8) != page_sig(i)) return 0;
  if (*(const uint32_t *)(p + 4) != 0) return 0;
  uint32_t x = page_seed(i);
  for (uint32_t o = DATA_START; o < DATA_END; o += 4) {
    x = xorshift32(x);
    if (*(const uint32_t *)(p + o) != x) return 0;
  }
  for (uint32_t o = DATA_END; o < PAGE; o += 8)
    if (*(const uint64_t *)(p + o) != 0) return 0;
  return 1;
}

static void walk(size_t n) {
  size_t p = pos;
  for (size_t k = 0; k < n; k++) {
    (*counter(p))++;
    if (++p == npages) {
      p = 0;
      walks = walks + 1;
    }
  }
  pos = p;
  pages_written = pages_written + n;
}

static void cmd_check(void) {
  uint64_t steps = 0, bad_content = 0;
  size_t first_bad = (size_t)-1;
  uint32_t prev = *counter(0);
  if (!page_content_ok(0)) {
    bad_content++;
    first_bad = 0;
  }
  for (size_t i = 1; i < npages; i++) {
    uint32_t c = *counter(i);
    if (c != prev) {
      steps++;
      /* The one allowed step goes from v+1 down to v. */
      if ((steps > 1 || (uint32_t)(prev - c) != 1u) && first_bad == (size_t)-1) first_bad = i;
      prev = c;
    }
    if (!page_content_ok(i)) {
      bad_content++;
      if (first_bad == (size_t)-1 || i < first_bad) first_bad = i;
    }
  }
  /* Across the wrap the last page must be exactly one behind the first (or equal when there is no step). */
  uint32_t wrap = (uint32_t)(*counter(0) - *counter(npages - 1));
  if (((steps == 0 && wrap != 0) || (steps >= 1 && wrap != 1u)) && first_bad == (size_t)-1) first_bad = 0;
  if (first_bad == (size_t)-1)
    out("MEMCHECK ok pages=%zu value=%" PRIu32, npages, *counter(npages - 1));
  else
    out("MEMCHECK fail pages=%zu steps=%" PRIu64 " first_bad=%zu bad_content=%" PRIu64, npages, steps, first_bad,
        bad_content);
}

static void fill_block(uint8_t *b, uint64_t blk, uint64_t seq) {
  memcpy(b, DISK_MAGIC, 8);
  memcpy(b + 8, &blk, 8);
  memcpy(b + 16, &seq, 8);
  memset(b + 24, 0, 8);
  uint32_t x = ((uint32_t)blk * 2654435761u ^ (uint32_t)seq * 40503u ^ 0x85EBCA6Bu) | 1u;
  for (uint32_t o = 32; o < BLOCK; o += 4) {
    x = xorshift32(x);
    memcpy(b + o, &x, 4);
  }
}

static int disk_open(int flags, uint64_t *blocks) {
  int fd = open(disk_path, flags | O_CLOEXEC);
  if (fd < 0) return -1;
  off_t size = lseek(fd, 0, SEEK_END);
  if (size < (off_t)BLOCK) {
    close(fd);
    errno = size < 0 ? errno : ENOSPC;
    return -1;
  }
  *blocks = (uint64_t)size / BLOCK;
  return fd;
}

static void cmd_disk(const char *arg) {
  char *end;
  errno = 0;
  unsigned long n = strtoul(arg, &end, 10);
  while (*end == ' ') end++;
  if (errno || end == arg || *end || n == 0 || n > 1000000ul) {
    out("ERR disk: expected a count");
    return;
  }
  uint64_t blocks;
  int fd = disk_open(O_RDWR, &blocks);
  if (fd < 0) {
    out("ERR disk: %s: %s", disk_path, strerror(errno));
    return;
  }
  static uint8_t buf[BLOCK] __attribute__((aligned(BLOCK)));
  unsigned long done = 0;
  for (; done < n; done++) {
    disk_rng = xorshift32(disk_rng);
    uint64_t blk = disk_rng % blocks;
    fill_block(buf, blk, ++disk_seq);
    if (pwrite(fd, buf, BLOCK, (off_t)(blk * BLOCK)) != (ssize_t)BLOCK) break;
  }
  int err = errno;
  if (done == n && fsync(fd) != 0) err = errno, done = 0;
  close(fd);
  if (done == n)
    out("DISK wrote=%lu", n);
  else
    out("ERR disk: wrote %lu of %lu: %s", done, n, strerror(err));
}

static void cmd_diskcheck(void) {
  uint64_t blocks;
  int fd = disk_open(O_RDONLY | O_DIRECT, &blocks);
  if (fd < 0) {
    out("ERR diskcheck: %s: %s", disk_path, strerror(errno));
    return;
  }
  enum { CHUNK = 64 };
  static uint8_t buf[CHUNK * BLOCK] __attribute__((aligned(BLOCK)));
  static uint8_t want[BLOCK];
  uint64_t found = 0, bad = 0, max_seq = 0, first_bad = UINT64_MAX;
  for (uint64_t b = 0; b < blocks; b += CHUNK) {
    uint64_t k = blocks - b < CHUNK ? blocks - b : CHUNK;
    ssize_t r = pread(fd, buf, k * BLOCK, (off_t)(b * BLOCK));
    if (r != (ssize_t)(k * BLOCK)) {
      out("ERR diskcheck: read at block %" PRIu64 ": %s", b, r < 0 ? strerror(errno) : "short read");
      close(fd);
      return;
    }
    for (uint64_t j = 0; j < k; j++) {
      const uint8_t *p = buf + j * BLOCK;
      if (memcmp(p, DISK_MAGIC, 8) != 0) continue;
      found++;
      uint64_t blk, seq;
      memcpy(&blk, p + 8, 8);
      memcpy(&seq, p + 16, 8);
      int ok = blk == b + j;
      if (ok) {
        fill_block(want, blk, seq);
        ok = memcmp(p, want, BLOCK) == 0;
      }
      if (!ok) {
        bad++;
        if (first_bad == UINT64_MAX) first_bad = b + j;
      } else if (seq > max_seq) {
        max_seq = seq;
      }
    }
  }
  close(fd);
  if (bad == 0)
    out("DISKCHECK ok blocks=%" PRIu64 " max_seq=%" PRIu64, found, max_seq);
  else
    out("DISKCHECK fail blocks=%" PRIu64 " bad=%" PRIu64 " first_bad=%" PRIu64, found, bad, first_bad);
}

static void cmd_corrupt(const char *arg) {
  size_t i = (pos + npages / 2) % npages;
  if (*arg) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    while (*end == ' ') end++;
    if (errno || end == arg || *end || v >= npages) {
      out("ERR corrupt: expected a page index below %zu", npages);
      return;
    }
    i = (size_t)v;
  }
  (*counter(i))--;
  out("CORRUPT page=%zu", i);
}

static int parse_u64(const char *s, uint64_t *v) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(s, &end, 10);
  while (*end == ' ') end++;
  if (errno || end == s || *end) return 0;
  *v = x;
  return 1;
}

static void rate_changed(void);

static void command(char *line) {
  size_t n = strlen(line);
  while (n && (line[n - 1] == ' ' || line[n - 1] == '\t')) line[--n] = 0;
  while (*line == ' ' || *line == '\t') line++;
  if (!*line) return;
  char *arg = line;
  while (*arg && *arg != ' ') arg++;
  if (*arg) *arg++ = 0;
  while (*arg == ' ') arg++;
  if (!strcmp(line, "check") && !*arg) {
    cmd_check();
  } else if (!strcmp(line, "stats") && !*arg) {
    out("STATS walks=%" PRIu64 " pages_written=%" PRIu64, (uint64_t)walks, (uint64_t)pages_written);
  } else if (!strcmp(line, "disk")) {
    cmd_disk(arg);
  } else if (!strcmp(line, "diskcheck") && !*arg) {
    cmd_diskcheck();
  } else if (!strcmp(line, "sync") && !*arg) {
    sync();
    out("SYNC ok");
  } else if (!strcmp(line, "corrupt")) {
    cmd_corrupt(arg);
  } else if (!strcmp(line, "rate")) {
    uint64_t r;
    if (!parse_u64(arg, &r) || r > 100000000u) {
      out("ERR rate: expected pages per second");
      return;
    }
    rate = r;
    rate_changed();
    out("RATE %" PRIu64, rate);
  } else if (!strcmp(line, "ping") && !*arg) {
    out("PONG");
  } else {
    out("ERR unknown");
  }
}

/* ---- input: line-based, from fd 0 ---- */
static char linebuf[LINE_MAX_LEN];
static size_t linelen;
static int overlong, input_open = 1;

static void read_input(void) {
  char buf[256];
  ssize_t r = read(0, buf, sizeof buf);
  if (r == 0) {
    /* EOF: on the host (a pipe) we are done; as PID 1 we must never exit. */
    if (getpid() != 1) exit(0);
    input_open = 0;
    return;
  }
  if (r < 0) {
    if (errno != EINTR && errno != EAGAIN && getpid() != 1) exit(1);
    return;
  }
  for (ssize_t k = 0; k < r; k++) {
    char c = buf[k];
    if (c == '\r' || c == '\n') {
      if (overlong) {
        out("ERR unknown");
      } else {
        linebuf[linelen] = 0;
        command(linebuf);
      }
      linelen = 0;
      overlong = 0;
    } else if (c == 0 || overlong) {
      continue;
    } else if (linelen + 1 < sizeof linebuf) {
      linebuf[linelen++] = c;
    } else {
      overlong = 1;
    }
  }
}

/* Waits for input for up to timeout (NULL: don't wait) and handles it. */
static void poll_input(const struct timespec *timeout) {
  static const struct timespec zero = {0, 0};
  struct pollfd pfd = {.fd = 0, .events = POLLIN};
  if (!input_open) {
    if (timeout) nanosleep(timeout, NULL);
    return;
  }
  int r = ppoll(&pfd, 1, timeout ? timeout : &zero, NULL);
  if (r > 0) {
    if (pfd.revents & POLLIN) read_input();
    else if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) {
      if (getpid() != 1) exit(0);
      input_open = 0;
    }
  }
}

/* ---- rate limiter: a credit of pages since t0, capped so that a stall (a paused VM) causes no burst ---- */
static uint64_t done_since_t0;

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t t0_ns;
static void rate_changed(void) {
  t0_ns = now_ns();
  done_since_t0 = 0;
}

static void run(void) {
  rate_changed();
  for (;;) {
    if (rate == 0) {
      walk(MAX_BATCH);
      poll_input(NULL);
      continue;
    }
    uint64_t now = now_ns();
    uint64_t elapsed = now - t0_ns;
    uint64_t allowed = (uint64_t)((unsigned __int128)elapsed * rate / 1000000000u);
    uint64_t due = allowed > done_since_t0 ? allowed - done_since_t0 : 0;
    uint64_t cap = rate / 10 + 1;
    if (due > cap) {
      /* More than 100 ms behind (the VM was stopped, or a command took long): start counting afresh. */
      rate_changed();
      due = rate / 100 ? rate / 100 : 1;
    }
    if (due > 0) {
      size_t n = due > MAX_BATCH ? MAX_BATCH : (size_t)due;
      walk(n);
      done_since_t0 += n;
      poll_input(NULL);
    } else {
      /* Sleep until the next page is due, at least 1 ms, waking early for a command. */
      uint64_t next = (uint64_t)(((unsigned __int128)(done_since_t0 + 1) * 1000000000u + rate - 1) / rate);
      uint64_t wait = next > elapsed ? next - elapsed : 0;
      if (wait < 1000000u) wait = 1000000u;
      struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000u), .tv_nsec = (long)(wait % 1000000000u)};
      poll_input(&ts);
    }
  }
}

static void read_cmdline(uint64_t *mib, uint64_t *r) {
  int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return;
  buf[n] = 0;
  for (char *tok = strtok(buf, " \t\n"); tok; tok = strtok(NULL, " \t\n")) {
    uint64_t v;
    if (!strncmp(tok, "doppel.mem_mib=", 15) && parse_u64(tok + 15, &v)) *mib = v;
    else if (!strncmp(tok, "doppel.rate=", 12) && parse_u64(tok + 12, &v)) *r = v;
    else if (!strncmp(tok, "doppel.disk=", 12)) disk_path = strdup(tok + 12);
  }
}

static void tty_raw(void) {
  struct termios t;
  if (tcgetattr(0, &t) != 0) return;
  cfmakeraw(&t);
  t.c_oflag |= OPOST | ONLCR; /* "\n" out as "\r\n", like any console */
  t.c_cc[VMIN] = 0;
  t.c_cc[VTIME] = 0;
  tcsetattr(0, TCSANOW, &t);
  tcflush(0, TCIFLUSH);
}

static void fatal(const char *what) {
  out("FATAL %s: %s", what, strerror(errno));
  if (getpid() != 1) exit(1);
  for (;;) pause(); /* PID 1 must not exit: the kernel would panic and hide the message */
}

int main(int argc, char **argv) {
  uint64_t mib = 64, r = 0;
  read_cmdline(&mib, &r);
  int opt;
  while ((opt = getopt(argc, argv, "m:r:d:")) != -1) {
    uint64_t v;
    if (opt == 'm' && parse_u64(optarg, &v)) mib = v;
    else if (opt == 'r' && parse_u64(optarg, &v)) r = v;
    else if (opt == 'd') disk_path = optarg;
    else {
      fprintf(stderr, "usage: memtest [-m MIB] [-r PAGES_PER_SECOND] [-d DISK]\n");
      return 2;
    }
  }
  if (mib == 0 || mib > 1u << 20) mib = 64;
  rate = r;
  signal(SIGPIPE, SIG_IGN);
  tty_raw();

  npages = (size_t)(mib * (1024u * 1024u / PAGE));
  area = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) fatal("mmap");
  for (size_t i = 0; i < npages; i++) fill_page(i);
  /* A blank line first: the firmware leaves the console mid-line, and READY should start a line of its own. */
  out("");
  out("DOPPEL-GUEST READY mem_mib=%" PRIu64 " rate=%" PRIu64, mib, rate);
  run();
  return 0;
}
