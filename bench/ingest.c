/*
 * bench-ingest: a load generator for POST /v1/salesforce/outbound-messages.
 *
 * C concurrent keep-alive connections (libcurl multi) post Salesforce Outbound Messages of K
 * notifications each until N notifications are sent or T seconds have passed, whichever comes
 * first. Every notification is unique (its own Notification Id); the Contact rotates over M
 * customers and every notification carries a SystemModstamp newer than the one before it. Every
 * reply must be HTTP 200 with <Ack>true</Ack>; anything else is counted as an error (and the
 * first few are printed). Latency is measured per request (post to full reply).
 *
 * With --drain, after the load it polls the gateway's /metrics until the push queue is empty
 * (posgate_push_queue_depth 0 and posgate_push_retry_scheduled 0) and reports the end-to-end time
 * from the first request. With --sim-state, it sums the MICROS simulator's customers[].set_count.
 *
 * Output: human lines, then one machine line starting with "RESULT " (key=value pairs).
 *
 * Loopback only: the URL must be http://127.0.0.1 or http://localhost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#define MAX_CONC 256
#define MAX_K 100

struct opts {
    const char *url;       /* gateway base URL */
    const char *org;       /* OrganizationId */
    int conc;              /* concurrent connections */
    int k;                 /* notifications per message */
    long long n;           /* notifications to send at most */
    double max_s;          /* seconds to send at most */
    int customers;         /* contacts rotated over */
    long long seq0;        /* first notification sequence number (unique across phases) */
    long long stamp0_ms;   /* SystemModstamp of sequence 0 */
    const char *label;     /* printed in RESULT */
    int drain;             /* wait for the push queue to empty */
    double drain_max_s;    /* ... at most this long */
    const char *sim_state; /* MICROS simulator base URL: sum set_count */
};

struct buf {
    char *p;
    size_t len, cap;
};

static int buf_add(struct buf *b, const void *d, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

static int buf_printf(struct buf *b, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return -1;
    return buf_add(b, tmp, (size_t)n);
}

static size_t on_body(char *d, size_t sz, size_t nm, void *ud)
{
    struct buf *b = ud;
    return buf_add(b, d, sz * nm) == 0 ? sz * nm : 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench-ingest: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void stamp_at(long long ms, char *out, size_t outsz)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char b[24];
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outsz, "%s.%03dZ", b, (int)(ms % 1000));
}

static const char *const tiers[] = {"Bronze", "Silver", "Gold", "Platinum"};

/* One Outbound Message with notifications seq .. seq+k-1 (the shape Salesforce sends). */
static int build_message(struct buf *b, const struct opts *o, long long seq, int k)
{
    b->len = 0;
    int rc = buf_printf(
        b,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" "
        "xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" "
        "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n"
        " <soapenv:Body>\n"
        "  <notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\">\n"
        "   <OrganizationId>%s</OrganizationId>\n"
        "   <ActionId>04k5g000000CaRkAAK</ActionId>\n"
        "   <SessionId xsi:nil=\"true\"/>\n"
        "   "
        "<EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/66.0/%.15s</EnterpriseUrl>\n"
        "   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/66.0/%.15s</PartnerUrl>\n",
        o->org, o->org, o->org);
    for (int i = 0; i < k && rc == 0; i++) {
        long long s = seq + i;
        int cust = (int)(s % o->customers);
        char stamp[40];
        stamp_at(o->stamp0_ms + s, stamp, sizeof stamp); /* +1 ms per notification */
        rc = buf_printf(b,
                        "   <Notification>\n"
                        "    <Id>04l5g%013lld</Id>\n"
                        "    <sObject xsi:type=\"sf:Contact\" "
                        "xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\">\n"
                        "     <sf:Id>0035g%010dAAA</sf:Id>\n"
                        "     <sf:Email>member%d@example.com</sf:Email>\n"
                        "     <sf:FirstName>Bench</sf:FirstName>\n"
                        "     <sf:LastName>Member %d</sf:LastName>\n"
                        "     <sf:Loyalty_Id__c>LB-%07d</sf:Loyalty_Id__c>\n"
                        "     <sf:Loyalty_Tier__c>%s</sf:Loyalty_Tier__c>\n"
                        "     <sf:Loyalty_Points__c>%lld</sf:Loyalty_Points__c>\n"
                        "     <sf:MobilePhone xsi:nil=\"true\"/>\n"
                        "     <sf:SystemModstamp>%s</sf:SystemModstamp>\n"
                        "    </sObject>\n"
                        "   </Notification>\n",
                        s, cust, cust, cust, cust, tiers[s % 4], s % 100000, stamp);
    }
    if (rc == 0)
        rc = buf_printf(b, "  </notifications>\n </soapenv:Body>\n</soapenv:Envelope>\n");
    return rc;
}

struct slot {
    CURL *h;
    struct buf req, resp;
    int k;
    int busy;
};

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const long long *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)n);
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1000.0;
}

/* A GET into b; returns the HTTP status (0 on a transport error). */
static long http_get(const char *url, struct buf *b)
{
    CURL *h = curl_easy_init();
    if (!h)
        return 0;
    b->len = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    long st = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    curl_easy_cleanup(h);
    return st;
}

/* A metric value from Prometheus text ("name value" or "name{labels} value"); -1 if absent. */
static double metric(const char *text, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, name, nl) == 0 && p[nl] == ' ')
            return strtod(p + nl + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench-ingest --url http://127.0.0.1:PORT [--org ID] [-c CONNS] [-k PER_MSG]\n"
            "         [-n NOTIFICATIONS] [-t MAX_SECONDS] [--customers M] [--seq0 S]\n"
            "         [--stamp0-ms MS] [--label NAME] [--drain [--drain-max S]]\n"
            "         [--sim-state MICROS_URL]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct opts o = {.org = "00D5g000004XyZ1EAK",
                     .conc = 16,
                     .k = 1,
                     .n = 10000,
                     .max_s = 30,
                     .customers = 10000,
                     .seq0 = 1,
                     .stamp0_ms = 1767225600000LL, /* 2026-01-01T00:00:00Z */
                     .label = "ingest",
                     .drain_max_s = 120};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(flag) (strcmp(a, flag) == 0 && v && (i++, 1))
        if (ARG("--url"))
            o.url = v;
        else if (ARG("--org"))
            o.org = v;
        else if (ARG("-c"))
            o.conc = atoi(v);
        else if (ARG("-k"))
            o.k = atoi(v);
        else if (ARG("-n"))
            o.n = atoll(v);
        else if (ARG("-t"))
            o.max_s = atof(v);
        else if (ARG("--customers"))
            o.customers = atoi(v);
        else if (ARG("--seq0"))
            o.seq0 = atoll(v);
        else if (ARG("--stamp0-ms"))
            o.stamp0_ms = atoll(v);
        else if (ARG("--label"))
            o.label = v;
        else if (ARG("--drain-max"))
            o.drain_max_s = atof(v);
        else if (ARG("--sim-state"))
            o.sim_state = v;
        else if (strcmp(a, "--drain") == 0)
            o.drain = 1;
        else
            usage();
#undef ARG
    }
    if (!o.url || o.conc < 1 || o.conc > MAX_CONC || o.k < 1 || o.k > MAX_K || o.n < 1 ||
        o.max_s <= 0 || o.max_s > 600 || o.customers < 1 || o.seq0 < 0 || o.drain_max_s > 600)
        usage();
    if (strncmp(o.url, "http://127.0.0.1:", 17) != 0 &&
        strncmp(o.url, "http://localhost:", 17) != 0)
        die("refusing %s: loopback targets only", o.url);
    if (o.sim_state && strncmp(o.sim_state, "http://127.0.0.1:", 17) != 0 &&
        strncmp(o.sim_state, "http://localhost:", 17) != 0)
        die("refusing %s: loopback targets only", o.sim_state);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    char post_url[512], metrics_url[512];
    snprintf(post_url, sizeof post_url, "%s/v1/salesforce/outbound-messages", o.url);
    snprintf(metrics_url, sizeof metrics_url, "%s/metrics", o.url);

    long long max_msgs = (o.n + o.k - 1) / o.k;
    long long *lat_us = calloc((size_t)max_msgs, sizeof *lat_us);
    if (!lat_us)
        die("out of memory");
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, "Content-Type: text/xml; charset=utf-8");
    hdr = curl_slist_append(hdr, "SOAPAction: \"\"");
    hdr = curl_slist_append(hdr, "Expect:"); /* no 100-continue round trip on large bodies */

    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)o.conc);
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o.conc);
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)o.conc);
    static struct slot slots[MAX_CONC];

    long long next_seq = o.seq0, sent_notes = 0, msgs_done = 0, notes_acked = 0, errors = 0;
    long long status_other = 0, transport_err = 0, not_ack = 0;
    int printed_err = 0;
    long long bytes_sent = 0;
    double t0 = now_s(), t_load_end = t0;
    int running = 0, in_flight = 0;
    int stop_sending = 0;

    for (int i = 0; i < o.conc; i++) {
        struct slot *s = &slots[i];
        s->h = curl_easy_init();
        if (!s->h)
            die("curl_easy_init failed");
        curl_easy_setopt(s->h, CURLOPT_URL, post_url);
        curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(s->h, CURLOPT_WRITEDATA, &s->resp);
        curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
        curl_easy_setopt(s->h, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(s->h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(s->h, CURLOPT_TCP_NODELAY, 1L);
    }

    /* Launch a slot with the next message, if the bounds allow. */
#define LAUNCH(s)                                                                                  \
    do {                                                                                           \
        long long left = o.n - sent_notes;                                                         \
        if (stop_sending || left <= 0 || now_s() - t0 >= o.max_s) {                                \
            stop_sending = 1;                                                                      \
            break;                                                                                 \
        }                                                                                          \
        int k_ = left < o.k ? (int)left : o.k;                                                     \
        if (build_message(&(s)->req, &o, next_seq, k_) != 0)                                       \
            die("cannot build a message");                                                         \
        next_seq += k_;                                                                            \
        sent_notes += k_;                                                                          \
        bytes_sent += (long long)(s)->req.len;                                                     \
        (s)->k = k_;                                                                               \
        (s)->resp.len = 0;                                                                         \
        curl_easy_setopt((s)->h, CURLOPT_POSTFIELDS, (s)->req.p);                                  \
        curl_easy_setopt((s)->h, CURLOPT_POSTFIELDSIZE, (long)(s)->req.len);                       \
        curl_multi_add_handle(m, (s)->h);                                                          \
        (s)->busy = 1;                                                                             \
        in_flight++;                                                                               \
    } while (0)

    for (int i = 0; i < o.conc; i++)
        LAUNCH(&slots[i]);
    while (in_flight > 0) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int q;
        while ((msg = curl_multi_info_read(m, &q))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct slot *s = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            long st = 0;
            curl_off_t tt = 0;
            CURLcode res = msg->data.result;
            curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &st);
            curl_easy_getinfo(s->h, CURLINFO_TOTAL_TIME_T, &tt);
            curl_multi_remove_handle(m, s->h);
            s->busy = 0;
            in_flight--;
            lat_us[msgs_done++] = (long long)tt;
            int ok = res == CURLE_OK && st == 200 && s->resp.p &&
                     strstr(s->resp.p, "<Ack>true</Ack>") &&
                     strstr(s->resp.p, "http://soap.sforce.com/2005/09/outbound");
            if (ok) {
                notes_acked += s->k;
            } else {
                errors++;
                if (res != CURLE_OK)
                    transport_err++;
                else if (st != 200)
                    status_other++;
                else
                    not_ack++;
                if (printed_err < 5) {
                    printed_err++;
                    fprintf(stderr, "bench-ingest: error: %s status %ld: %.300s\n",
                            res != CURLE_OK ? curl_easy_strerror(res) : "HTTP", st,
                            s->resp.p ? s->resp.p : "");
                }
            }
            LAUNCH(s);
        }
        if (in_flight > 0)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    t_load_end = now_s();
    double el = t_load_end - t0;
    qsort(lat_us, (size_t)msgs_done, sizeof *lat_us, cmp_ll);
    double mean = 0;
    for (long long i = 0; i < msgs_done; i++)
        mean += (double)lat_us[i];
    mean = msgs_done ? mean / (double)msgs_done / 1000.0 : 0;
    double p50 = pct_ms(lat_us, (size_t)msgs_done, 0.50),
           p99 = pct_ms(lat_us, (size_t)msgs_done, 0.99),
           p999 = pct_ms(lat_us, (size_t)msgs_done, 0.999),
           mx = msgs_done ? (double)lat_us[msgs_done - 1] / 1000.0 : 0;

    printf("%s: %lld messages x %d notifications over %d connections in %.2f s "
           "(%.1f MB sent)\n",
           o.label, msgs_done, o.k, o.conc, el, (double)bytes_sent / 1e6);
    printf("  notifications acked %lld (%.0f/s), messages acked %lld (%.0f/s), errors %lld "
           "(transport %lld, non-200 %lld, 200 without Ack %lld)\n",
           notes_acked, notes_acked / el, msgs_done - errors, (msgs_done - errors) / el, errors,
           transport_err, status_other, not_ack);
    printf("  ack latency ms: p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  mean %.2f\n", p50, p99,
           p999, mx, mean);

    /* End to end: until the push queue is empty. */
    double e2e = -1, delivered = -1, skipped = -1, deferred = -1, retried = -1, dead = -1,
           lat_sum = -1, lat_cnt = -1;
    int drained = 0;
    if (o.drain) {
        struct buf b = {0};
        double end = now_s() + o.drain_max_s;
        for (;;) {
            if (http_get(metrics_url, &b) == 200 && b.p &&
                metric(b.p, "posgate_push_queue_depth") == 0 &&
                metric(b.p, "posgate_push_retry_scheduled") == 0) {
                drained = 1;
                break;
            }
            if (now_s() >= end)
                break;
            usleep(20000);
        }
        e2e = now_s() - t0;
        if (http_get(metrics_url, &b) == 200 && b.p) {
            delivered = metric(b.p, "posgate_push_deliveries_total{outcome=\"delivered\"}");
            skipped = metric(b.p, "posgate_push_deliveries_total{outcome=\"skipped\"}");
            deferred = metric(b.p, "posgate_push_deliveries_total{outcome=\"deferred\"}");
            retried = metric(b.p, "posgate_push_deliveries_total{outcome=\"retried\"}");
            dead = metric(b.p, "posgate_push_deliveries_total{outcome=\"dead_lettered\"}");
            lat_sum = metric(b.p, "posgate_push_delivery_latency_seconds_sum");
            lat_cnt = metric(b.p, "posgate_push_delivery_latency_seconds_count");
        }
        free(b.p);
        printf(
            "  end to end: %s after %.2f s; deliveries: delivered %.0f, skipped (newer already "
            "in MICROS) %.0f, deferred %.0f, retried %.0f, dead-lettered %.0f; mean intake→MICROS "
            "%.3f s\n",
            drained ? "queue empty" : "NOT drained", e2e, delivered, skipped, deferred, retried,
            dead, lat_cnt > 0 ? lat_sum / lat_cnt : 0);
    }
    long long sets = -1, custs = -1;
    if (o.sim_state) {
        char u[512];
        struct buf b = {0};
        snprintf(u, sizeof u, "%s/_sim/state", o.sim_state);
        if (http_get(u, &b) == 200 && b.p) {
            json_error_t je;
            json_t *st = json_loads(b.p, 0, &je);
            json_t *c;
            size_t i;
            sets = 0;
            custs = 0;
            json_array_foreach(json_object_get(st, "customers"), i, c)
            {
                const char *ref = json_string_value(
                    json_object_get(json_object_get(c, "columns"), "primaryposref"));
                if (!ref || strncmp(ref, "LB-", 3) != 0)
                    continue; /* seed customers are not ours */
                custs++;
                sets += json_integer_value(json_object_get(c, "set_count"));
            }
            json_decref(st);
        }
        free(b.p);
        printf("  MICROS simulator: %lld bench customers, %lld SetCustomer calls applied\n", custs,
               sets);
    }

    printf("RESULT label=%s k=%d conc=%d messages=%lld notifications_sent=%lld "
           "notifications_acked=%lld errors=%lld elapsed_s=%.3f notif_per_s=%.1f msg_per_s=%.1f "
           "p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f mean_ms=%.3f next_seq=%lld",
           o.label, o.k, o.conc, msgs_done, sent_notes, notes_acked, errors, el, notes_acked / el,
           (msgs_done - errors) / el, p50, p99, p999, mx, mean, next_seq);
    if (o.drain)
        printf(" drained=%d e2e_s=%.3f delivered=%.0f skipped=%.0f deferred=%.0f retried=%.0f "
               "dead=%.0f e2e_notif_per_s=%.1f delivered_per_s=%.1f",
               drained, e2e, delivered, skipped, deferred, retried, dead, notes_acked / e2e,
               delivered / e2e);
    if (o.sim_state)
        printf(" sim_customers=%lld sim_set_calls=%lld", custs, sets);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf(" gen_cpu_s=%.2f\n", (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                                    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);

    for (int i = 0; i < o.conc; i++) {
        curl_easy_cleanup(slots[i].h);
        free(slots[i].req.p);
        free(slots[i].resp.p);
    }
    curl_multi_cleanup(m);
    curl_slist_free_all(hdr);
    free(lat_us);
    curl_global_cleanup();
    return errors ? 1 : 0;
}
