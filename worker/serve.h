/* `worker serve`: the distributed worker. Pulls jobs for the suites it
 * embeds from NATS JetStream, runs each with the runner's isolation,
 * streams live events, publishes each result and acks the job only after
 * the result is confirmed (docs/worker.md). */
#ifndef HANDOFF_SERVE_H
#define HANDOFF_SERVE_H

/* Runs the worker until SIGTERM/SIGINT and a clean drain. argv holds the
 * flags after "serve". Returns the exit status: 0 after a clean stop, 2
 * for a configuration error, 1 when the worker cannot run. Main thread
 * only, before any other thread exists (it starts the zygote). */
int serve_main(const char *prog, int argc, char **argv);

#endif
