/*
 * The load generator's subscriber side in C, for WebSocket (Herald's protocol, plain payload frames,
 * Socket.IO, Faye) and HTTP streaming (Herald's SSE and NDJSON, plain SSE; chunked or not): the same
 * clients and the same accounting as bench/src/gen/subscriber.ts and clients.ts, at about three
 * quarters of their CPU per delivery. No long-polling and no reconnect storm (`recover`).
 *
 * Why: at S2 (10,000 subscribers, 100,000 deliveries/s) the Node subscriber spends about what the
 * fastest servers spend per delivery (~6-7 µs, a third of it in Node's read path and JavaScript), so
 * the last reads of a fan-out trail the last writes and the latency tail shows the generator's pace
 * more than the server's. This one reads with one epoll loop and one read() per ready socket, and
 * does nothing else a delivery does not need.
 *
 * Driven by bench/src/native.ts over stdin/stdout, one command a line, one JSON reply a line:
 *   connect ID PROTOCOL PORT PATH FIRST N CHANNELS CONCURRENCY NAFTER [AFTER...]
 *   mark ID | window ID | drop ID | close ID
 *   drain ID TIMEOUT_MS NFINAL [FINAL...]
 * Replies: {"id":ID,"body":{...}} with the fields of messages.ts (ConnectResult, WindowStats, DrainStats).
 * PATH holds "{ch}" where the channel name (b<index>) goes.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* WebSocket: Herald's protocol (JSON, or MessagePack: P_HERALD_MP), plain payload frames, Socket.IO,
 * Faye; HTTP streaming: Herald's SSE and NDJSON, plain SSE. */
enum proto { P_HERALD, P_HERALD_MP, P_PLAIN, P_SOCKETIO, P_FAYE, P_HERALD_SSE, P_HERALD_STREAM, P_PLAIN_SSE };
#define IS_STREAM(p) ((p) >= P_HERALD_SSE)
enum state { S_IDLE, S_CONNECTING, S_SUBSCRIBED, S_CLOSED };

typedef struct {
  int fd;
  int ch;
  uint8_t state;
  uint8_t head_done;
  uint8_t ever_subscribed;
  uint8_t failed;
  uint8_t settled; /* counted by the connect gate */
  uint32_t last;   /* last sequence number received */
  uint32_t acct;   /* accounted for up to here (received, or counted lost by a drain) */
  uint32_t faye_seq;
  char *pending; /* partial frame or head carried to the next read */
  size_t pending_len;
  char *frag; /* WebSocket: payload of a fragmented message so far; streams: text after the last \n */
  size_t frag_len;
  uint8_t chunked;    /* streams: the body is chunked */
  uint8_t chunk_crlf; /* streams: bytes of the CRLF after a chunk's data still to skip */
  uint8_t size_done;  /* streams: the size line's digits ended (an extension or CR follows) */
  uint32_t chunk_left; /* streams: bytes of the current chunk's data still to come */
  uint32_t chunk_size; /* streams: the size line read so far */
  char faye_client[64];
} sub_t;

/* -- the latency histogram: the same buckets as bench/src/gen/histogram.ts ------------------------ */
#define LINEAR 1024
#define SUB_BITS 9
#define OCTAVES 32
#define NBUCKETS (LINEAR + OCTAVES * (1 << SUB_BITS))
static double hist[NBUCKETS];
static double hist_total;
static uint64_t hist_max;

static int bucket_of(uint64_t v) {
  if (v < LINEAR) return (int)v;
  int msb = 63 - __builtin_clzll(v);
  if (msb > 31) msb = 31;
  int octave = msb - 10;
  int64_t sub = (int64_t)(v >> (msb - SUB_BITS)) - (1 << SUB_BITS);
  if (octave > OCTAVES - 1) octave = OCTAVES - 1;
  if (sub > (1 << SUB_BITS) - 1) sub = (1 << SUB_BITS) - 1;
  return LINEAR + octave * (1 << SUB_BITS) + (int)sub;
}

static double upper_of(int b) {
  if (b < LINEAR) return b;
  int octave = (b - LINEAR) / (1 << SUB_BITS);
  int sub = (b - LINEAR) % (1 << SUB_BITS);
  int msb = octave + 10;
  return (double)((1 << SUB_BITS) + sub + 1) * pow(2, msb - SUB_BITS) - 1;
}

/*
 * BENCH_PUBLICATION_LOG=<file>: per sequence number, the first and last delivery's latency and the
 * count, over the measured window, appended to <file> at each `window` (a look at single
 * publications: when the burst started, how long it took, which ones ran slow).
 */
#define MAX_SEQ (1 << 20)
static const char *pub_log;
static float *seq_min, *seq_max;
static uint32_t *seq_count;

static void seq_record(uint32_t seq, double us) {
  if (seq_min == NULL || seq >= MAX_SEQ) return;
  if (seq_count[seq] == 0 || us < seq_min[seq]) seq_min[seq] = (float)us;
  if (us > seq_max[seq]) seq_max[seq] = (float)us;
  seq_count[seq]++;
}

static void hist_record(double us) {
  uint64_t v = us < 0 ? 0 : (uint64_t)us;
  hist[bucket_of(v)] += 1;
  hist_total += 1;
  if (v > hist_max) hist_max = v;
}

static double hist_quantile(double q) {
  if (hist_total == 0) return 0;
  double rank = ceil(q * hist_total);
  if (rank < 1) rank = 1;
  double seen = 0;
  for (int i = 0; i < NBUCKETS; i++) {
    seen += hist[i];
    if (seen >= rank) {
      double u = upper_of(i);
      return u < (double)hist_max ? u : (double)hist_max;
    }
  }
  return (double)hist_max;
}

/* -- state ------------------------------------------------------------------------------------------ */
static sub_t *subs;
static int nsubs, cap_subs;
static int epfd;
/* Of the latest `connect`: one process reads one target (S7's nodes differ only in port and path,
 * which are used while that `connect` runs). */
static enum proto proto;
static int port;
static char path_tmpl[512];
static char read_buf[256 * 1024];
static uint64_t now_ns; /* receive time of the read being handled */

static int window_open;
static double window_deliveries;
static uint64_t window_start_ns;
static double cpu_start_ms;
static double gap_lost, dup_count, late_count, ended_count;
static char errors[5][200];
static int nerrors;

/* connect gate */
static int gate_active, gate_first, gate_next, gate_end, gate_settled, gate_conc;

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_ms(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static void note(const char *reason) {
  for (int i = 0; i < nerrors; i++)
    if (strcmp(errors[i], reason) == 0) return;
  if (nerrors < 5) snprintf(errors[nerrors++], sizeof errors[0], "%s", reason);
}

static void gate_settle(sub_t *s);

/* `frag` holds a WebSocket message's payload so far, or the text after a stream's last newline. */
static void frag_append(sub_t *s, const char *data, size_t len) {
  s->frag = realloc(s->frag, s->frag_len + len + 1);
  memcpy(s->frag + s->frag_len, data, len);
  s->frag_len += len;
}

/* Hands `handle` the end of a message (or of a run of lines): with what `frag` held before it, if anything. */
static void frag_finish(sub_t *s, const char *data, size_t len, void (*handle)(sub_t *, const char *, size_t)) {
  if (s->frag_len == 0) {
    handle(s, data, len);
    return;
  }
  frag_append(s, data, len);
  char *whole = s->frag;
  size_t wlen = s->frag_len;
  s->frag = NULL; /* `handle` may close the subscriber, which frees `frag` */
  s->frag_len = 0;
  handle(s, whole, wlen);
  free(whole);
}

static void sub_close(sub_t *s) {
  s->state = S_CLOSED;
  if (s->fd >= 0) {
    close(s->fd); /* also leaves the epoll set */
    s->fd = -1;
  }
  free(s->pending);
  s->pending = NULL;
  s->pending_len = 0;
  free(s->frag);
  s->frag = NULL;
  s->frag_len = 0;
}

static void sub_fail(sub_t *s, const char *reason) {
  if (s->state == S_CLOSED) return;
  int was_connecting = s->state == S_CONNECTING;
  sub_close(s);
  note(reason);
  if (was_connecting) {
    s->failed = 1;
    gate_settle(s);
  } else {
    ended_count++;
  }
}

static void failf(sub_t *s, const char *fmt, const char *detail, size_t len) {
  char msg[200];
  char d[120];
  size_t n = len < sizeof d - 1 ? len : sizeof d - 1;
  memcpy(d, detail, n);
  d[n] = 0;
  snprintf(msg, sizeof msg, fmt, d);
  sub_fail(s, msg);
}

static void mark_subscribed(sub_t *s) {
  if (s->state != S_CONNECTING) return;
  s->state = S_SUBSCRIBED;
  s->ever_subscribed = 1;
  gate_settle(s);
}

static void send_all(sub_t *s, const char *data, size_t len) {
  while (len > 0) {
    ssize_t w = write(s->fd, data, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      sub_fail(s, "write failed (the server does not read)");
      return;
    }
    data += w;
    len -= (size_t)w;
  }
}

/* A client frame, masked with a zero key (the payload is unchanged), as RFC 6455 requires. */
static void send_frame(sub_t *s, int opcode, const char *payload, size_t len) {
  char out[1024];
  size_t hdr = len < 126 ? 2 : 4;
  if (len + hdr + 4 > sizeof out) return;
  out[0] = (char)(0x80 | opcode);
  if (len < 126) out[1] = (char)(0x80 | len);
  else {
    out[1] = (char)(0x80 | 126);
    out[2] = (char)(len >> 8);
    out[3] = (char)(len & 0xff);
  }
  memset(out + hdr, 0, 4);
  memcpy(out + hdr + 4, payload, len);
  send_all(s, out, hdr + 4 + len);
}

static void send_text(sub_t *s, const char *text) { send_frame(s, 1, text, strlen(text)); }

/* -- payloads --------------------------------------------------------------------------------------- */
static void delivered(sub_t *s, uint32_t seq, uint64_t sent_ns) {
  if (seq <= s->last) {
    dup_count++;
    return;
  }
  uint32_t floor = s->last > s->acct ? s->last : s->acct;
  if (seq > floor + 1) gap_lost += seq - floor - 1;
  if (seq <= s->acct) late_count++;
  s->last = seq;
  if (window_open) {
    window_deliveries++;
    double us = ((double)now_ns - (double)sent_ns) / 1000.0;
    hist_record(us);
    seq_record(seq, us);
  }
}

/* Every payload is {"seq":<n>,"t":"<ns>"...}: find them without parsing JSON (as scan.ts does). */
static void scan(sub_t *s, const char *text, size_t len) {
  static const char SEQ[] = "\"seq\":";
  static const char T[] = "\"t\":\"";
  const char *end = text + len;
  const char *p = memmem(text, len, SEQ, 6);
  while (p != NULL) {
    const char *j = p + 6;
    uint32_t seq = 0;
    while (j < end && *j >= '0' && *j <= '9') seq = seq * 10 + (uint32_t)(*j++ - '0');
    const char *k = memmem(j, (size_t)(end - j), T, 5);
    if (k == NULL || k > j + 8) break;
    const char *m = k + 5;
    uint64_t t = 0;
    while (m < end && *m >= '0' && *m <= '9') t = t * 10 + (uint64_t)(*m++ - '0');
    delivered(s, seq, t);
    if (s->state == S_CLOSED) return;
    p = memmem(m, (size_t)(end - m), SEQ, 6);
  }
}

/* The same payloads in Herald's MessagePack frames: the map {"seq": <uint>, "t": "<ns>", ...} is
 * a3 's' 'e' 'q' <uint>, a1 't' <str>; found by its bytes, as scan() finds the JSON text. */
static void scan_mp(sub_t *s, const char *text, size_t len) {
  static const char SEQ[] = "\xa3seq";
  static const char T[] = "\xa1t";
  const uint8_t *end = (const uint8_t *)text + len;
  const char *p = memmem(text, len, SEQ, 4);
  while (p != NULL) {
    const uint8_t *j = (const uint8_t *)p + 4;
    if (j >= end) break;
    uint32_t seq = 0;
    int n = *j < 0x80 ? 0 : *j == 0xcc ? 1 : *j == 0xcd ? 2 : *j == 0xce ? 4 : -1;
    if (n < 0 || j + 1 + n > end) break;
    if (n == 0) seq = *j++;
    else
      for (j++; n > 0; n--) seq = (seq << 8) | *j++;
    const char *k = memmem(j, (size_t)(end - j), T, 2);
    if (k == NULL || (const uint8_t *)k > j + 8) break;
    const uint8_t *m = (const uint8_t *)k + 2;
    if (m < end && (*m & 0xe0) == 0xa0) m += 1; /* fixstr */
    else if (m + 1 < end && *m == 0xd9) m += 2; /* str 8 */
    uint64_t t = 0;
    while (m < end && *m >= '0' && *m <= '9') t = t * 10 + (uint64_t)(*m++ - '0');
    delivered(s, seq, t);
    if (s->state == S_CLOSED) return;
    p = memmem(m, (size_t)(end - m), SEQ, 4);
  }
}

static int contains(const char *text, size_t len, const char *needle) {
  return memmem(text, len, needle, strlen(needle)) != NULL;
}

static int starts(const char *text, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(text, prefix, n) == 0;
}

static void channel_name(int ch, char *out, size_t cap) { snprintf(out, cap, "b%d", ch); }

static void send_faye(sub_t *s, const char *fields) {
  char msg[512];
  s->faye_seq++;
  if (s->faye_client[0] == 0)
    snprintf(msg, sizeof msg, "[{%s,\"id\":\"%u\"}]", fields, s->faye_seq);
  else
    snprintf(msg, sizeof msg, "[{%s,\"clientId\":\"%s\",\"id\":\"%u\"}]", fields, s->faye_client, s->faye_seq);
  send_text(s, msg);
}

static const char FAYE_CONNECT[] = "\"channel\":\"/meta/connect\",\"connectionType\":\"websocket\"";

/* Bayeux replies: after the handshake, subscribe and open a /meta/connect; reopen it when answered. */
static void on_faye_meta(sub_t *s, const char *text, size_t len) {
  if (contains(text, len, "\"successful\":false")) {
    failf(s, "faye request failed: %s", text, len);
    return;
  }
  if (contains(text, len, "\"/meta/handshake\"")) {
    const char *c = memmem(text, len, "\"clientId\":\"", 12);
    if (c == NULL) {
      failf(s, "faye handshake without clientId: %s", text, len);
      return;
    }
    c += 12;
    size_t i = 0;
    while (c + i < text + len && c[i] != '"' && i < sizeof s->faye_client - 1) {
      s->faye_client[i] = c[i];
      i++;
    }
    s->faye_client[i] = 0;
    char fields[200];
    char ch[32];
    channel_name(s->ch, ch, sizeof ch);
    snprintf(fields, sizeof fields, "\"channel\":\"/meta/subscribe\",\"subscription\":\"/%s\"", ch);
    send_faye(s, fields);
    if (s->state == S_CLOSED) return;
    send_faye(s, FAYE_CONNECT);
    return;
  }
  if (contains(text, len, "\"/meta/subscribe\"")) mark_subscribed(s);
  const char *p = text;
  const char *end = text + len;
  while ((p = memmem(p, (size_t)(end - p), "\"/meta/connect\"", 15)) != NULL) {
    p += 15;
    send_faye(s, FAYE_CONNECT);
    if (s->state == S_CLOSED) return;
  }
}

/* Engine.IO v4 packet types: 0 open, 2 ping, 4 message; Socket.IO: 0 connect, 2 event, 3 ack, 4 error. */
static void on_socketio(sub_t *s, const char *text, size_t len) {
  if (len == 0) return;
  char type = text[0];
  if (type == '4' && len >= 2) {
    char sio = text[1];
    if (sio == '2') scan(s, text, len);
    else if (sio == '0') {
      char msg[64];
      char ch[32];
      channel_name(s->ch, ch, sizeof ch);
      snprintf(msg, sizeof msg, "420[\"subscribe\",\"%s\"]", ch);
      send_text(s, msg);
    } else if (sio == '3' && starts(text, len, "430")) mark_subscribed(s);
    else if (sio == '4') failf(s, "socket.io connect error: %s", text, len);
  } else if (type == '2') send_text(s, "3");
  else if (type == '0') send_text(s, "40");
  else if (type == '1') sub_fail(s, "engine.io close");
}

static void on_text(sub_t *s, const char *text, size_t len) {
  switch (proto) {
  case P_SOCKETIO:
    on_socketio(s, text, len);
    return;
  case P_FAYE:
    if (contains(text, len, "\"/meta/")) {
      on_faye_meta(s, text, len);
      if (s->state == S_CLOSED) return;
    }
    break;
  case P_HERALD:
    if (s->state == S_CONNECTING) {
      if (contains(text, len, "{\"id\":1,\"result\"")) mark_subscribed(s);
      else if (contains(text, len, "{\"id\":1,\"error\"")) {
        failf(s, "subscribe refused: %s", text, len);
        return;
      }
    }
    break;
  case P_HERALD_MP:
    /* The reply to subscribe (id 1): {"id": 1, "result": ...} or {"id": 1, "error": ...}. */
    if (s->state == S_CONNECTING) {
      if (contains(text, len, "\xa2id\x01\xa6result")) mark_subscribed(s);
      else if (contains(text, len, "\xa2id\x01\xa5" "error")) {
        failf(s, "subscribe refused: %s", text, len);
        return;
      }
    }
    scan_mp(s, text, len);
    return;
  default: /* plain frames: the payload is all there is */
    break;
  }
  scan(s, text, len);
}

/* -- WebSocket framing ------------------------------------------------------------------------------ */
/* A case-insensitive search in the response head. */
static int head_has(const char *head, size_t len, const char *needle) {
  size_t n = strlen(needle);
  for (size_t i = 0; i + n <= len; i++)
    if (strncasecmp(head + i, needle, n) == 0) return 1;
  return 0;
}

static void on_head(sub_t *s, const char *head, size_t len) {
  const char *want = IS_STREAM(proto) ? "200" : "101";
  if (len < 12 || memcmp(head + 9, want, 3) != 0) {
    failf(s, "HTTP %s", head, len);
    return;
  }
  if (IS_STREAM(proto)) {
    s->chunked = (uint8_t)head_has(head, len, "transfer-encoding: chunked");
    s->chunk_left = s->chunk_size = 0;
    s->chunk_crlf = s->size_done = 0;
    if (proto == P_PLAIN_SSE) mark_subscribed(s);
    return;
  }
  char ch[32];
  channel_name(s->ch, ch, sizeof ch);
  char msg[200];
  switch (proto) {
  case P_HERALD:
    snprintf(msg, sizeof msg, "{\"id\":1,\"cmd\":\"subscribe\",\"channel\":\"%s\"}", ch);
    send_text(s, msg);
    break;
  case P_HERALD_MP: {
    /* {"id": 1, "cmd": "subscribe", "channel": ch} as MessagePack (channel names are fixstr). */
    size_t cl = strlen(ch), n = 0;
    n += (size_t)snprintf(msg + n, sizeof msg - n, "\x83\xa2id\x01\xa3""cmd\xa9subscribe\xa7""channel");
    msg[n++] = (char)(0xa0 | cl);
    memcpy(msg + n, ch, cl);
    send_frame(s, 2, msg, n + cl);
    break;
  }
  case P_PLAIN:
    mark_subscribed(s);
    break;
  case P_FAYE:
    send_faye(s, "\"channel\":\"/meta/handshake\",\"version\":\"1.0\",\"supportedConnectionTypes\":[\"websocket\"]");
    break;
  default: /* Socket.IO waits for the Engine.IO open packet */
    break;
  }
}

/* -- HTTP streaming: SSE and NDJSON ------------------------------------------------------------------ */

/* Whole lines of the body (up to and including the last \n): subscribed marker, payloads, disconnect. */
static void on_lines(sub_t *s, const char *text, size_t len) {
  if (s->state == S_CONNECTING) {
    const char *marker = proto == P_HERALD_SSE ? "event: subscribed" : "\"push\":\"subscribed\"";
    const char *at = memmem(text, len, marker, strlen(marker));
    if (at != NULL) mark_subscribed(s);
    else if (contains(text, len, "unsubscribed")) {
      failf(s, "subscribe refused: %s", text, len);
      return;
    }
  }
  scan(s, text, len);
  if (s->state == S_CLOSED) return;
  if (contains(text, len, "\"push\":\"disconnect\"") || contains(text, len, "event: disconnect")) {
    const char *at = memmem(text, len, "disconnect", 10);
    failf(s, "disconnected: %s", at, (size_t)(text + len - at));
  }
}

/* Body text: appended to what is left of the last line, and every whole line handled. */
static void on_body_text(sub_t *s, const char *text, size_t len) {
  if (len == 0 || s->state == S_CLOSED) return;
  const char *nl = NULL;
  for (const char *p = text + len; p > text; p--)
    if (p[-1] == '\n') {
      nl = p;
      break;
    }
  if (nl == NULL) { /* no line ends here: keep it all */
    frag_append(s, text, len);
    return;
  }
  size_t head = (size_t)(nl - text);
  frag_finish(s, text, head, on_lines);
  if (s->state == S_CLOSED || head == len) return;
  frag_append(s, nl, len - head);
}

/* Decodes a (chunked or plain) body; the terminating chunk ends the subscriber. */
static void on_stream_body(sub_t *s, const char *buf, size_t n) {
  if (!s->chunked) {
    on_body_text(s, buf, n);
    return;
  }
  size_t off = 0;
  while (off < n && s->state != S_CLOSED) {
    if (s->chunk_left > 0) {
      size_t take = n - off < s->chunk_left ? n - off : s->chunk_left;
      on_body_text(s, buf + off, take);
      off += take;
      s->chunk_left -= (uint32_t)take;
      if (s->chunk_left == 0) s->chunk_crlf = 2;
      continue;
    }
    if (s->chunk_crlf > 0) {
      off++;
      s->chunk_crlf--;
      continue;
    }
    char c = buf[off++];
    if (c == '\n') {
      uint32_t size = s->chunk_size;
      s->chunk_size = 0;
      s->size_done = 0;
      if (size == 0) {
        sub_fail(s, "response ended");
        return;
      }
      s->chunk_left = size;
    } else if (!s->size_done && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      s->chunk_size = s->chunk_size * 16 + (uint32_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    } else {
      s->size_done = 1; /* CR or a chunk extension */
    }
  }
}

/* Handles the frames in buf; returns how many bytes were consumed (the rest is a partial frame). */
static size_t on_frames(sub_t *s, const char *buf, size_t n) {
  size_t off = 0;
  while (off + 2 <= n) {
    uint8_t b0 = (uint8_t)buf[off], b1 = (uint8_t)buf[off + 1];
    uint64_t len = b1 & 0x7f;
    size_t hdr = 2;
    if (len == 126) {
      if (off + 4 > n) break;
      len = ((uint64_t)(uint8_t)buf[off + 2] << 8) | (uint8_t)buf[off + 3];
      hdr = 4;
    } else if (len == 127) {
      if (off + 10 > n) break;
      len = 0;
      for (int i = 0; i < 8; i++) len = (len << 8) | (uint8_t)buf[off + 2 + i];
      hdr = 10;
    }
    if (b1 & 0x80) hdr += 4; /* servers never mask; tolerate it by skipping the key */
    if (off + hdr + len > n) break;
    const char *payload = buf + off + hdr;
    off += hdr + len;
    int opcode = b0 & 0x0f;
    int fin = (b0 & 0x80) != 0;
    if (opcode <= 2) {
      if (!fin) {
        frag_append(s, payload, len);
        continue;
      }
      frag_finish(s, payload, len, on_text);
      if (s->state == S_CLOSED) return n;
    } else if (opcode == 9) {
      send_frame(s, 0x0a, payload, len);
      if (s->state == S_CLOSED) return n;
    } else if (opcode == 8) {
      int code = len >= 2 ? ((uint8_t)payload[0] << 8) | (uint8_t)payload[1] : 1005;
      send_frame(s, 8, payload, len < 2 ? len : 2);
      char msg[200];
      snprintf(msg, sizeof msg, "closed by server: %d %.*s", code, (int)(len > 2 ? (len - 2 < 100 ? len - 2 : 100) : 0),
               payload + 2);
      sub_fail(s, msg);
      return n;
    }
  }
  return off;
}

static void on_data(sub_t *s, const char *data, size_t n) {
  const char *buf = data;
  char *joined = NULL;
  if (s->pending != NULL) {
    joined = malloc(s->pending_len + n);
    memcpy(joined, s->pending, s->pending_len);
    memcpy(joined + s->pending_len, data, n);
    n += s->pending_len;
    free(s->pending);
    s->pending = NULL;
    s->pending_len = 0;
    buf = joined;
  }
  size_t off = 0;
  if (!s->head_done) {
    const char *end = memmem(buf, n, "\r\n\r\n", 4);
    if (end == NULL) {
      s->pending = malloc(n);
      memcpy(s->pending, buf, n);
      s->pending_len = n;
      free(joined);
      return;
    }
    s->head_done = 1;
    on_head(s, buf, (size_t)(end - buf));
    off = (size_t)(end - buf) + 4;
  }
  if (s->state != S_CLOSED && off < n && IS_STREAM(proto)) {
    on_stream_body(s, buf + off, n - off);
  } else if (s->state != S_CLOSED && off < n) {
    size_t used = on_frames(s, buf + off, n - off);
    off += used;
    if (s->state != S_CLOSED && off < n) {
      s->pending_len = n - off;
      s->pending = malloc(s->pending_len);
      memcpy(s->pending, buf + off, s->pending_len);
    }
  }
  free(joined);
}

/* -- connections ------------------------------------------------------------------------------------ */
static void sub_open(sub_t *s) {
  s->state = S_CONNECTING;
  s->head_done = 0;
  s->faye_client[0] = 0;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    sub_fail(s, "socket() failed (too many open files?)");
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s->fd = fd;
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
    sub_fail(s, "connect failed");
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.u32 = (uint32_t)(s - subs)};
  epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void send_request(sub_t *s) {
  char path[600];
  char ch[32];
  channel_name(s->ch, ch, sizeof ch);
  const char *at = strstr(path_tmpl, "{ch}");
  if (at == NULL) snprintf(path, sizeof path, "%s", path_tmpl);
  else snprintf(path, sizeof path, "%.*s%s%s", (int)(at - path_tmpl), path_tmpl, ch, at + 4);
  char req[1024];
  int len;
  if (IS_STREAM(proto))
    len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: %s\r\n\r\n", path, port,
                   proto == P_HERALD_STREAM ? "application/x-ndjson" : "text/event-stream");
  else
    len = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: aGVyYWxkLWJlbmNoLWtleQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   path, port);
  send_all(s, req, (size_t)len);
}

static void gate_pump(void) {
  while (gate_next < gate_end && gate_next - gate_first - gate_settled < gate_conc) sub_open(&subs[gate_next++]);
}

static void gate_settle(sub_t *s) {
  if (!gate_active || s->settled) return;
  s->settled = 1;
  gate_settled++;
}

#define STDIN_TAG 0xffffffffu

static void on_event(struct epoll_event *ev) {
  if (ev->data.u32 == STDIN_TAG) return; /* read by main() between commands */
  sub_t *s = &subs[ev->data.u32];
  if (s->state == S_CLOSED || s->fd < 0) return;
  if (ev->events & EPOLLOUT) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err != 0) {
      char msg[100];
      snprintf(msg, sizeof msg, "socket: %s", strerror(err));
      sub_fail(s, msg);
      return;
    }
    struct epoll_event in = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = ev->data.u32};
    epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &in);
    send_request(s);
    if (s->state == S_CLOSED) return;
  }
  if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    ssize_t r = read(s->fd, read_buf, sizeof read_buf);
    if (r > 0) {
      now_ns = mono_ns();
      on_data(s, read_buf, (size_t)r);
    } else if (r == 0) {
      sub_fail(s, "connection closed");
    } else if (errno != EAGAIN && errno != EINTR) {
      char msg[100];
      snprintf(msg, sizeof msg, "socket: %s", strerror(errno));
      sub_fail(s, msg);
    }
  }
}

/* -- commands --------------------------------------------------------------------------------------- */
static void reply_errors(void) {
  fputs("\"errors\":[", stdout);
  for (int i = 0; i < nerrors; i++) {
    if (i > 0) fputc(',', stdout);
    fputc('"', stdout);
    for (const unsigned char *c = (const unsigned char *)errors[i]; *c; c++) {
      if (*c == '"' || *c == '\\') printf("\\%c", *c);
      else if (*c < 0x20 || *c >= 0x7f) printf("\\u%04x", *c);
      else fputc(*c, stdout);
    }
    fputc('"', stdout);
  }
  fputs("]", stdout);
  nerrors = 0;
}

static double missing(const uint32_t *final, int nfinal) {
  double m = 0;
  for (int i = 0; i < nsubs; i++) {
    sub_t *s = &subs[i];
    if (!s->ever_subscribed) continue;
    uint32_t top = s->ch < nfinal ? final[s->ch] : 0;
    uint32_t have = s->last > s->acct ? s->last : s->acct;
    if (top > have) m += top - have;
  }
  return m;
}

static void run_loop(int timeout_ms) {
  struct epoll_event evs[512];
  int k = epoll_wait(epfd, evs, 512, timeout_ms);
  for (int i = 0; i < k; i++) on_event(&evs[i]);
}

static int parse_protocol(const char *p) {
  if (strcmp(p, "herald-ws") == 0) return P_HERALD;
  if (strcmp(p, "herald-ws-msgpack") == 0) return P_HERALD_MP;
  if (strcmp(p, "plain-ws") == 0) return P_PLAIN;
  if (strcmp(p, "socketio") == 0) return P_SOCKETIO;
  if (strcmp(p, "faye") == 0) return P_FAYE;
  if (strcmp(p, "herald-sse") == 0) return P_HERALD_SSE;
  if (strcmp(p, "herald-stream") == 0) return P_HERALD_STREAM;
  if (strcmp(p, "plain-sse") == 0) return P_PLAIN_SSE;
  return -1;
}

static uint32_t *read_list(char **save, int *count) {
  char *tok = strtok_r(NULL, " ", save);
  int n = tok == NULL ? 0 : atoi(tok);
  uint32_t *list = calloc((size_t)(n > 0 ? n : 1), sizeof *list);
  for (int i = 0; i < n; i++) {
    tok = strtok_r(NULL, " ", save);
    list[i] = tok == NULL ? 0 : (uint32_t)strtoul(tok, NULL, 10);
  }
  *count = n;
  return list;
}

static void cmd_connect(long id, char **save) {
  const char *p = strtok_r(NULL, " ", save);
  int pr = p == NULL ? -1 : parse_protocol(p);
  const char *port_s = strtok_r(NULL, " ", save);
  const char *path = strtok_r(NULL, " ", save);
  const char *first_s = strtok_r(NULL, " ", save);
  const char *n_s = strtok_r(NULL, " ", save);
  const char *ch_s = strtok_r(NULL, " ", save);
  const char *conc_s = strtok_r(NULL, " ", save);
  if (pr < 0 || port_s == NULL || path == NULL || first_s == NULL || n_s == NULL || ch_s == NULL || conc_s == NULL) {
    printf("{\"id\":%ld,\"body\":{\"error\":\"bad connect command\"}}\n", id);
    return;
  }
  int nafter;
  uint32_t *after = read_list(save, &nafter);
  proto = (enum proto)pr;
  port = atoi(port_s);
  snprintf(path_tmpl, sizeof path_tmpl, "%s", path);
  int first = atoi(first_s), n = atoi(n_s), channels = atoi(ch_s);
  uint64_t t0 = mono_ns();
  if (nsubs + n > cap_subs) {
    cap_subs = nsubs + n;
    subs = realloc(subs, (size_t)cap_subs * sizeof *subs);
  }
  int base = nsubs;
  for (int i = 0; i < n; i++) {
    sub_t *s = &subs[nsubs++];
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->ch = (first + i) % (channels > 0 ? channels : 1);
    s->last = s->acct = s->ch < nafter ? after[s->ch] : 0;
  }
  free(after);
  gate_active = 1;
  gate_first = gate_next = base;
  gate_end = base + n;
  gate_settled = 0;
  gate_conc = atoi(conc_s);
  if (gate_conc < 1) gate_conc = 1;
  gate_pump();
  while (gate_settled < n && mono_ns() - t0 < 120000000000ull) {
    run_loop(20);
    gate_pump();
  }
  gate_active = 0;
  int ok = 0;
  for (int i = base; i < base + n; i++) ok += subs[i].state == S_SUBSCRIBED;
  printf("{\"id\":%ld,\"body\":{\"ok\":%d,\"failed\":%d,\"ms\":%.1f,", id, ok, n - ok, (mono_ns() - t0) / 1e6);
  reply_errors();
  fputs("}}\n", stdout);
}

static void cmd_drain(long id, char **save) {
  const char *t_s = strtok_r(NULL, " ", save);
  double timeout_ms = t_s == NULL ? 10000 : atof(t_s);
  int nfinal;
  uint32_t *final = read_list(save, &nfinal);
  uint64_t t0 = mono_ns();
  while (missing(final, nfinal) > 0 && (mono_ns() - t0) / 1e6 < timeout_ms) run_loop(20);
  double tail = missing(final, nfinal);
  int complete = 0;
  for (int i = 0; i < nsubs; i++) {
    sub_t *s = &subs[i];
    if (!s->ever_subscribed) continue;
    uint32_t top = s->ch < nfinal ? final[s->ch] : 0;
    if (s->last >= top) complete++;
    if (top > s->acct) s->acct = top;
  }
  printf("{\"id\":%ld,\"body\":{\"lost\":%.0f,\"dup\":%.0f,\"late\":%.0f,\"closed\":%.0f,\"complete\":%d,\"drainMs\":%.1f}}\n",
         id, gap_lost + tail, dup_count, late_count, ended_count, complete, (mono_ns() - t0) / 1e6);
  gap_lost = dup_count = late_count = 0;
  free(final);
}

static void write_publication_log(void) {
  if (seq_min == NULL) return;
  FILE *f = fopen(pub_log, "a");
  if (f != NULL) {
    fprintf(f, "# window: seq count first_ms last_ms\n");
    for (uint32_t i = 0; i < MAX_SEQ; i++)
      if (seq_count[i] > 0) fprintf(f, "%u %u %.3f %.3f\n", i, seq_count[i], seq_min[i] / 1000, seq_max[i] / 1000);
    fclose(f);
  }
  memset(seq_count, 0, MAX_SEQ * sizeof *seq_count);
  memset(seq_max, 0, MAX_SEQ * sizeof *seq_max);
}

static void cmd_window(long id) {
  window_open = 0;
  write_publication_log();
  printf("{\"id\":%ld,\"body\":{\"deliveries\":%.0f,\"elapsedMs\":%.3f,\"latency\":{\"count\":%.0f,\"p50\":%.3f,"
         "\"p95\":%.3f,\"p99\":%.3f,\"max\":%.3f},\"cpuMs\":%.3f}}\n",
         id, window_deliveries, (mono_ns() - window_start_ns) / 1e6, hist_total, round(hist_quantile(0.5)) / 1000,
         round(hist_quantile(0.95)) / 1000, round(hist_quantile(0.99)) / 1000, (double)hist_max / 1000,
         cpu_ms() - cpu_start_ms);
}

/* Returns 0 when told to close. */
static int command(char *line) {
  char *save = NULL;
  char *verb = strtok_r(line, " ", &save);
  char *id_s = strtok_r(NULL, " ", &save);
  if (verb == NULL || id_s == NULL) return 1;
  long id = atol(id_s);
  if (strcmp(verb, "connect") == 0) cmd_connect(id, &save);
  else if (strcmp(verb, "mark") == 0) {
    memset(hist, 0, sizeof hist);
    hist_total = 0;
    hist_max = 0;
    window_deliveries = 0;
    window_start_ns = mono_ns();
    cpu_start_ms = cpu_ms();
    window_open = 1;
    gap_lost = dup_count = late_count = ended_count = 0;
    printf("{\"id\":%ld,\"body\":{\"done\":true}}\n", id);
  } else if (strcmp(verb, "window") == 0) cmd_window(id);
  else if (strcmp(verb, "drain") == 0) cmd_drain(id, &save);
  else if (strcmp(verb, "drop") == 0 || strcmp(verb, "close") == 0) {
    for (int i = 0; i < nsubs; i++)
      if (!subs[i].failed) sub_close(&subs[i]);
    printf("{\"id\":%ld,\"body\":{\"done\":true}}\n", id);
    if (strcmp(verb, "close") == 0) {
      fflush(stdout);
      return 0;
    }
  } else printf("{\"id\":%ld,\"body\":{\"error\":\"unknown command %s\"}}\n", id, verb);
  fflush(stdout);
  return 1;
}

int main(void) {
  pub_log = getenv("BENCH_PUBLICATION_LOG");
  if (pub_log != NULL && pub_log[0] != 0) {
    seq_min = calloc(MAX_SEQ, sizeof *seq_min);
    seq_max = calloc(MAX_SEQ, sizeof *seq_max);
    seq_count = calloc(MAX_SEQ, sizeof *seq_count);
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = STDIN_TAG};
  epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
  static char line[1 << 20];
  size_t have = 0;
  struct epoll_event evs[512];
  for (;;) {
    int k = epoll_wait(epfd, evs, 512, -1);
    for (int i = 0; i < k; i++) {
      if (evs[i].data.u32 != STDIN_TAG) {
        on_event(&evs[i]);
        continue;
      }
      ssize_t r = read(0, line + have, sizeof line - 1 - have);
      if (r <= 0) return 0; /* the orchestrator is gone */
      have += (size_t)r;
      char *nl;
      while ((nl = memchr(line, '\n', have)) != NULL) {
        *nl = 0;
        size_t used = (size_t)(nl - line) + 1;
        if (!command(line)) return 0;
        memmove(line, line + used, have - used);
        have -= used;
      }
    }
  }
}
