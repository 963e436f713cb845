// Open-loop gRPC load generator for the rate-limit benchmark.
//
// h2load's --rps mode sends in 10 ms bursts (its rate timer never fires more often), so its
// latencies at a fixed rate measure the bursts, not the server. This sends unary gRPC calls over
// h2c at Poisson-distributed instants (ppoll's nanosecond timeout, no busy loop), spread over a few
// connections, and measures each call from its *scheduled* instant to its trailers (so a stalled
// server or client cannot hide queueing: no coordinated omission). A call succeeds when the HTTP
// status is 200 and grpc-status is 0.
//
// usage: rlload HOST PORT PATH BODY_FILE RATE SECONDS [CONNECTIONS] [WARMUP_SECONDS]
// prints one JSON line: offered, sent, ok, errors, achieved, p50/p90/p99/p999/max in ms.
// build: cc -O2 -o rlload rlload.c -lnghttp2 -lm
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64

typedef struct {
  int fd;
  nghttp2_session *session;
  int want_write;
} conn_t;

typedef struct {
  double scheduled;  // seconds, monotonic
  double latency;    // seconds, from scheduled to stream close
  int status;        // HTTP :status
  int grpc_status;   // -1 until trailers
  int done;
  size_t body_sent;  // bytes of the body already handed to nghttp2 (bodies over one DATA frame)
} call_t;

static uint8_t body[65536];
static size_t body_len;
static call_t *calls;
static long done_count;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static ssize_t send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *user) {
  (void)s;
  (void)flags;
  conn_t *c = user;
  ssize_t n = write(c->fd, data, len);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      c->want_write = 1;
      return NGHTTP2_ERR_WOULDBLOCK;
    }
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  return n;
}

static int header_cb(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user) {
  (void)flags;
  (void)user;
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  call_t *call = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
  if (!call) return 0;
  char v[16] = {0};
  memcpy(v, value, valuelen < 15 ? valuelen : 15);
  if (namelen == 7 && memcmp(name, ":status", 7) == 0) call->status = atoi(v);
  if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) call->grpc_status = atoi(v);
  return 0;
}

static int data_cb(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user) {
  (void)flags;
  (void)data;
  (void)user;
  nghttp2_session_consume(s, id, len);
  return 0;
}

static int close_cb(nghttp2_session *s, int32_t id, uint32_t code, void *user) {
  (void)code;
  (void)user;
  call_t *call = nghttp2_session_get_stream_user_data(s, id);
  if (call && !call->done) {
    call->done = 1;
    call->latency = now_s() - call->scheduled;
    done_count++;
  }
  return 0;
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *user) {
  (void)src;
  (void)user;
  call_t *call = nghttp2_session_get_stream_user_data(s, id);
  size_t left = body_len - call->body_sent;
  size_t n = left < len ? left : len;
  memcpy(buf, body + call->body_sent, n);
  call->body_sent += n;
  if (call->body_sent == body_len) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: rlload HOST PORT PATH BODY_FILE RATE SECONDS [CONNECTIONS] [WARMUP_SECONDS]\n");
    return 2;
  }
  const char *host = argv[1], *path = argv[3];
  int port = atoi(argv[2]);
  double rate = atof(argv[5]), seconds = atof(argv[6]);
  int nconn = argc > 7 ? atoi(argv[7]) : 4;
  double warmup = argc > 8 ? atof(argv[8]) : 1;
  if (nconn < 1 || nconn > MAX_CONNS || rate <= 0 || seconds <= 0) {
    fprintf(stderr, "rlload: bad arguments\n");
    return 2;
  }
  FILE *bf = fopen(argv[4], "rb");
  if (!bf) {
    perror("rlload: body file");
    return 2;
  }
  body_len = fread(body, 1, sizeof body, bf);
  if (fgetc(bf) != EOF) {
    fprintf(stderr, "rlload: body over %zu bytes\n", sizeof body);
    return 1;
  }
  fclose(bf);

  char authority[300];
  snprintf(authority, sizeof authority, "%s:%d", host, port);
  nghttp2_nv nva[] = {NV(":method", "POST"), NV(":scheme", "http"), NV(":authority", authority), NV(":path", path),
                      NV("content-type", "application/grpc"), NV("te", "trailers")};

  nghttp2_session_callbacks *cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
  nghttp2_session_callbacks_set_on_header_callback(cbs, header_cb);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, data_cb);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, close_cb);

  conn_t conns[MAX_CONNS];
  struct pollfd pfds[MAX_CONNS];
  for (int i = 0; i < nconn; i++) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &addr.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
      perror("rlload: connect");
      return 1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    conns[i] = (conn_t){.fd = fd};
    nghttp2_session_client_new(&conns[i].session, cbs, &conns[i]);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 10000},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24}};
    nghttp2_submit_settings(conns[i].session, NGHTTP2_FLAG_NONE, iv, 2);
    nghttp2_session_set_local_window_size(conns[i].session, NGHTTP2_FLAG_NONE, 0, 1 << 30);
    nghttp2_session_send(conns[i].session);
    pfds[i].fd = fd;
  }

  long total = (long)(rate * (seconds + warmup));
  long skip = (long)(rate * warmup);
  calls = calloc((size_t)total, sizeof *calls);
  srand48((long)time(NULL));
  double start = now_s() + 0.05, next = start, last_send = start;
  long sent = 0;
  uint8_t buf[65536];
  nghttp2_data_provider prd = {.read_callback = read_body};
  while (done_count < total) {
    double t = now_s();
    while (sent < total && next <= t) {
      conn_t *c = &conns[sent % nconn];
      calls[sent] = (call_t){.scheduled = next, .grpc_status = -1};
      if (nghttp2_submit_request(c->session, NULL, nva, sizeof nva / sizeof nva[0], &prd, &calls[sent]) < 0) {
        fprintf(stderr, "rlload: submit failed\n");
        return 1;
      }
      sent++;
      last_send = next;
      next += -log(1 - drand48()) / rate;
    }
    for (int i = 0; i < nconn; i++) {
      conns[i].want_write = 0;
      if (nghttp2_session_send(conns[i].session) != 0) {
        fprintf(stderr, "rlload: send failed\n");
        return 1;
      }
      pfds[i].events = POLLIN | (conns[i].want_write ? POLLOUT : 0);
    }
    if (sent == total && t - last_send > 5) break;  // calls still open 5 s after the last: give up on them
    double wait = sent < total ? next - now_s() : 0.01;
    if (wait < 0) wait = 0;
    struct timespec ts = {.tv_sec = (time_t)wait, .tv_nsec = (long)((wait - (double)(time_t)wait) * 1e9)};
    if (ppoll(pfds, (nfds_t)nconn, &ts, NULL) < 0 && errno != EINTR) {
      perror("rlload: ppoll");
      return 1;
    }
    for (int i = 0; i < nconn; i++) {
      if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n;
      while ((n = read(conns[i].fd, buf, sizeof buf)) > 0) {
        if (nghttp2_session_mem_recv(conns[i].session, buf, (size_t)n) < 0) {
          fprintf(stderr, "rlload: protocol error\n");
          return 1;
        }
      }
      if (n == 0) {
        fprintf(stderr, "rlload: server closed the connection\n");
        return 1;
      }
    }
  }
  double elapsed = last_send - calls[skip].scheduled;

  long measured = 0, ok = 0, errors = 0;
  double *lat = malloc(sizeof(double) * (size_t)(total - skip));
  for (long i = skip; i < total; i++) {
    if (!calls[i].done) {
      errors++;
      continue;
    }
    if (calls[i].status == 200 && calls[i].grpc_status == 0) ok++;
    else errors++;
    lat[measured++] = calls[i].latency * 1e3;
  }
  qsort(lat, (size_t)measured, sizeof *lat, cmp_double);
#define P(q) (measured ? lat[(long)((q) * (double)(measured - 1))] : NAN)
  printf("{\"offered\":%.0f,\"sent\":%ld,\"ok\":%ld,\"errors\":%ld,\"achieved\":%.0f,\"p50\":%.3f,\"p90\":%.3f,"
         "\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}\n",
         rate, total - skip, ok, errors, (double)measured / elapsed, P(0.5), P(0.9), P(0.99), P(0.999), P(1.0));
  return errors ? 1 : 0;
}
