/*
 * Development and test Kafka broker: librdkafka's mock cluster behind a tiny
 * control protocol. Prints one line "BOOTSTRAP <host:port,...>" once it
 * listens, then reads commands from stdin, one per line, answering
 * "OK <command>" or "ERR <reason>":
 *   down [broker|-1]          take a broker (default all) down
 *   up [broker|-1]            bring it back
 *   errors <apikey> <n> <err> the next n requests of that API get error code <err>
 *   topic <name> <partitions> create a topic
 *   rtt <broker|-1> <ms>      add round-trip delay
 * It exits when stdin closes or on SIGTERM/SIGINT, so a test that dies does
 * not leave a broker behind.
 *
 * Usage: mock-broker [--brokers N] [--partitions N] [topic ...]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rdkafka.h"
#include "rdkafka_mock.h"

static volatile sig_atomic_t stopping = 0;
static void on_signal(int sig) { (void)sig; stopping = 1; }

static void reply(const char *status, const char *text) {
        printf("%s %s\n", status, text);
        fflush(stdout);
}

int main(int argc, char **argv) {
        int brokers = 1, partitions = 3, i;
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;
        rd_kafka_mock_cluster_t *cluster;
        char line[1024];

        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        signal(SIGPIPE, SIG_IGN);

        for (i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--brokers") && i + 1 < argc)
                        brokers = atoi(argv[++i]);
                else if (!strcmp(argv[i], "--partitions") && i + 1 < argc)
                        partitions = atoi(argv[++i]);
        }

        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "rd_kafka_new: %s\n", errstr);
                return 1;
        }
        cluster = rd_kafka_mock_cluster_new(rk, brokers);
        if (!cluster) {
                fprintf(stderr, "rd_kafka_mock_cluster_new failed\n");
                return 1;
        }
        /* kafkajs resolves the controller as broker id 0; the mock numbers
         * its brokers from 1, so add a broker 0. */
        if (rd_kafka_mock_broker_add(cluster, 0)) {
                fprintf(stderr, "rd_kafka_mock_broker_add(0) failed\n");
                return 1;
        }
        /* CreateTopics is not implemented by the mock: create them here. */
        for (i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--brokers") || !strcmp(argv[i], "--partitions")) {
                        i++;
                        continue;
                }
                if (rd_kafka_mock_topic_create(cluster, argv[i], partitions, 1)) {
                        fprintf(stderr, "cannot create topic %s\n", argv[i]);
                        return 1;
                }
        }

        printf("BOOTSTRAP %s\n", rd_kafka_mock_cluster_bootstraps(cluster));
        fflush(stdout);

        while (!stopping && fgets(line, sizeof(line), stdin)) {
                char cmd[32] = "", name[512] = "";
                int a = -1, b = 0, c = 0, n;
                line[strcspn(line, "\r\n")] = 0;
                n = sscanf(line, "%31s", cmd);
                if (n < 1)
                        continue;
                if (!strcmp(cmd, "down") || !strcmp(cmd, "up")) {
                        rd_kafka_resp_err_t err;
                        a = -1;
                        sscanf(line, "%*s %d", &a);
                        err = !strcmp(cmd, "down") ? rd_kafka_mock_broker_set_down(cluster, a)
                                                   : rd_kafka_mock_broker_set_up(cluster, a);
                        if (err) reply("ERR", rd_kafka_err2str(err));
                        else reply("OK", line);
                } else if (!strcmp(cmd, "errors")) {
                        if (sscanf(line, "%*s %d %d %d", &a, &b, &c) != 3) {
                                reply("ERR", "usage: errors <apikey> <count> <errcode>");
                                continue;
                        }
                        for (i = 0; i < b; i++)
                                rd_kafka_mock_push_request_errors(cluster, (int16_t)a, 1, (rd_kafka_resp_err_t)c);
                        reply("OK", line);
                } else if (!strcmp(cmd, "topic")) {
                        if (sscanf(line, "%*s %511s %d", name, &a) != 2) {
                                reply("ERR", "usage: topic <name> <partitions>");
                                continue;
                        }
                        if (rd_kafka_mock_topic_create(cluster, name, a, 1)) reply("ERR", "topic create failed");
                        else reply("OK", line);
                } else if (!strcmp(cmd, "rtt")) {
                        if (sscanf(line, "%*s %d %d", &a, &b) != 2) {
                                reply("ERR", "usage: rtt <broker|-1> <ms>");
                                continue;
                        }
                        rd_kafka_mock_broker_set_rtt(cluster, a, b);
                        reply("OK", line);
                } else {
                        reply("ERR", "unknown command");
                }
        }

        rd_kafka_mock_cluster_destroy(cluster);
        rd_kafka_destroy(rk);
        return 0;
}
