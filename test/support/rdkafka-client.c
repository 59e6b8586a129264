/* A minimal Kafka client on librdkafka 2.15 (the static library kafka-mock.sh builds), for tests
 * that need a client sending the flexible API versions (Metadata v12, Produce v10, Fetch v16,
 * OffsetCommit v9, OffsetFetch v6, ListOffsets v7; FindCoordinator stays at v2, the most librdkafka
 * sends). Debian's kcat links librdkafka 2.0.2, which never sends a flexible version.
 *
 *   rdkafka-client [-d CONTEXTS] [-X key=value]... produce BOOTSTRAP TOPIC COUNT PREFIX
 *   rdkafka-client [-d CONTEXTS] [-X key=value]... produce BOOTSTRAP TOPIC -
 *   rdkafka-client [-d CONTEXTS] [-X key=value]... consume BOOTSTRAP TOPIC GROUP COUNT
 *
 * produce: sends COUNT messages PREFIX-0, PREFIX-1, ... (or, with `-`, one per stdin line), message
 *   i to partition i % partitions, acks=all; waits for every delivery report. Exit 0 when all were
 *   delivered, 1 if any failed, 3 after 20 s.
 * consume: joins consumer group GROUP on TOPIC (auto.offset.reset=earliest) and prints one line
 *   `partition<TAB>offset<TAB>value` per message. Exit 0 after COUNT messages (having committed
 *   and left the group), 3 after 30 s. session.timeout.ms is 6 s (see consume()).
 * -d (or env RDKAFKA_DEBUG) sets librdkafka's `debug`, e.g. `-d protocol` logs every request as
 * `Sent MetadataRequest (v12, ...)`. librdkafka's own logger writes its errors (with no error_cb
 * set, global errors too: `%3|...|ERROR|...`) and debug lines to stderr; this program's lines
 * there start `rdkafka-client:`. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "rdkafka.h"

static const char *deadline_message = "rdkafka-client: deadline passed, giving up\n";
static void deadline(int sig) {
  (void)sig;
  ssize_t ignored = write(2, deadline_message, strlen(deadline_message));
  (void)ignored;
  _exit(3); /* librdkafka may be blocked anywhere: do not clean up */
}

static void set(rd_kafka_conf_t *conf, const char *key, const char *value) {
  char err[512];
  if (rd_kafka_conf_set(conf, key, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
    fprintf(stderr, "rdkafka-client: %s=%s: %s\n", key, value, err);
    exit(2);
  }
}

static char *overrides[64]; /* -X key=value, applied over each mode's defaults */
static int noverrides = 0;

static rd_kafka_t *client(rd_kafka_type_t type, rd_kafka_conf_t *conf) {
  char err[512];
  for (int i = 0; i < noverrides; i++) {
    char *eq = strchr(overrides[i], '=');
    *eq = 0;
    set(conf, overrides[i], eq + 1);
  }
  rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) { fprintf(stderr, "rdkafka-client: rd_kafka_new: %s\n", err); exit(2); }
  return rk;
}

static int delivered = 0, failed = 0;
static void delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk; (void)opaque;
  if (!m->err) { delivered++; return; }
  if (failed++ < 5) fprintf(stderr, "rdkafka-client: delivery failed: %s\n", rd_kafka_err2str(m->err));
}

static int produce(rd_kafka_conf_t *conf, const char *topic, const char *count_arg, const char *prefix) {
  alarm(20);
  set(conf, "acks", "all");
  set(conf, "message.timeout.ms", "15000"); /* before the deadline; -X overrides it */
  rd_kafka_conf_set_dr_msg_cb(conf, delivery_cb);
  rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, conf);
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
  const rd_kafka_metadata_t *md;
  int partitions = 0;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
  if (e) { fprintf(stderr, "rdkafka-client: metadata for %s: %s\n", topic, rd_kafka_err2str(e)); return 1; }
  if (md->topic_cnt == 1 && !md->topics[0].err) partitions = md->topics[0].partition_cnt;
  else fprintf(stderr, "rdkafka-client: topic %s: %s\n", topic,
               md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "not in metadata");
  rd_kafka_metadata_destroy(md);
  if (partitions <= 0) return 1;

  int sent = 0, count = strcmp(count_arg, "-") == 0 ? -1 : atoi(count_arg);
  char value[4096];
  while (count < 0 ? fgets(value, sizeof value, stdin) != NULL : sent < count) {
    if (count < 0) value[strcspn(value, "\n")] = 0;
    else snprintf(value, sizeof value, "%s-%d", prefix, sent);
    for (;;) { /* the queue is full only with huge COUNTs: serve reports and retry */
      e = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(sent % partitions),
                            RD_KAFKA_V_VALUE(value, strlen(value)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_END);
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
      rd_kafka_poll(rk, 100);
    }
    if (e) { fprintf(stderr, "rdkafka-client: produce: %s\n", rd_kafka_err2str(e)); return 1; }
    sent++;
    rd_kafka_poll(rk, 0);
  }
  while (delivered + failed < sent) rd_kafka_poll(rk, 100); /* the alarm bounds this */
  fprintf(stderr, "rdkafka-client: %d of %d delivered to %s (%d partitions)\n", delivered, sent, topic, partitions);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  return failed ? 1 : 0;
}

static int consume(rd_kafka_conf_t *conf, const char *topic, const char *group, int count) {
  alarm(30);
  set(conf, "group.id", group);
  set(conf, "auto.offset.reset", "earliest");
  /* The mock holds a group that its last member left in JOINING for session.timeout.ms - 1 s:
   * keep that short for whoever joins the group next (librdkafka's default is 45 s). */
  set(conf, "session.timeout.ms", "6000");
  set(conf, "heartbeat.interval.ms", "1000");
  rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, conf);
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (e) { fprintf(stderr, "rdkafka-client: subscribe %s: %s\n", topic, rd_kafka_err2str(e)); return 1; }
  int received = 0;
  while (received < count) { /* the alarm bounds this */
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    if (m->err) fprintf(stderr, "rdkafka-client: consume: %s\n", rd_kafka_message_errstr(m));
    else {
      printf("%d\t%lld\t%.*s\n", (int)m->partition, (long long)m->offset, (int)m->len, (const char *)m->payload);
      fflush(stdout);
      received++;
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk); /* commits and leaves the group */
  rd_kafka_destroy(rk);
  return 0;
}

static int usage(const char *self) {
  fprintf(stderr, "usage: %s [-d CONTEXTS] [-X key=value]... produce BOOTSTRAP TOPIC COUNT PREFIX | produce BOOTSTRAP TOPIC -\n"
                  "       %s [-d CONTEXTS] [-X key=value]... consume BOOTSTRAP TOPIC GROUP COUNT\n", self, self);
  return 2;
}

int main(int argc, char **argv) {
  signal(SIGALRM, deadline);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  const char *debug = getenv("RDKAFKA_DEBUG");
  int opt;
  while ((opt = getopt(argc, argv, "+d:X:")) != -1) {
    if (opt == 'd') debug = optarg;
    else if (opt == 'X' && strchr(optarg, '=') && noverrides < 64) overrides[noverrides++] = optarg;
    else return usage(argv[0]);
  }
  if (debug && *debug) set(conf, "debug", debug);
  char **a = argv + optind;
  int n = argc - optind;
  if (n < 1) return usage(argv[0]);
  set(conf, "bootstrap.servers", n > 1 ? a[1] : "");
  if (strcmp(a[0], "produce") == 0 && n == 5) return produce(conf, a[2], a[3], a[4]);
  if (strcmp(a[0], "produce") == 0 && n == 4 && strcmp(a[3], "-") == 0) return produce(conf, a[2], "-", "");
  if (strcmp(a[0], "consume") == 0 && n == 5) return consume(conf, a[2], a[3], atoi(a[4]));
  return usage(argv[0]);
}
