/* The JetStream streams (docs/nats.md). */
#include "streams.h"

#include "clock.h"
#include "subjects.h"

static const struct bus_stream_config streams[] = {
    /* Jobs: a work queue; a job goes when a worker acks it. */
    {
        .name = SUBJECTS_JOBS_STREAM,
        .subjects = SUBJECTS_JOBS_ALL,
        .retention = BUS_RETAIN_WORK_QUEUE,
        .duplicate_window_ns = 10 * 60 * CLOCK_NS_PER_S,
    },
    /* What workers report; the ingest consumer stores it. */
    {
        .name = SUBJECTS_RESULTS_STREAM,
        .subjects = SUBJECTS_RESULTS_ALL,
        .retention = BUS_RETAIN_LIMITS,
        .max_age_ns = 7 * 24 * 3600 * CLOCK_NS_PER_S,
        .duplicate_window_ns = 10 * 60 * CLOCK_NS_PER_S,
    },
    /* Cancels, kept for workers that start (or reconnect) after one was
     * sent: each replays them before it pulls a job. */
    {
        .name = SUBJECTS_CANCELS_STREAM,
        .subjects = SUBJECTS_CANCEL,
        .retention = BUS_RETAIN_LIMITS,
        .max_age_ns = STREAMS_CANCEL_MAX_AGE_H * 3600 * CLOCK_NS_PER_S,
        .duplicate_window_ns = 2 * 60 * CLOCK_NS_PER_S,
        .max_msgs = 1000000,
    },
};

const struct bus_stream_config *streams_all(size_t *n)
{
    *n = sizeof(streams) / sizeof(streams[0]);
    return streams;
}
