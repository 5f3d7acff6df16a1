/*
 * ceiling.c: the machine's own limit for CGI-style spawning.
 *
 * Each thread loops: pipe2(O_CLOEXEC) + posix_spawn (glibc does this with
 * clone(CLONE_VM|CLONE_VFORK), the cheapest spawn there is) of PROGRAM with
 * its stdout on the pipe, read the output to EOF, waitpid. That is what every
 * CGI request must do at the least; a server can only add to it.
 *
 *   ceiling PROGRAM [THREADS [SECONDS]]
 *
 * prints one line per run: "spawns_per_sec=N spawns=N threads=N seconds=S".
 * Without THREADS it runs on 1 thread, then on 2; SECONDS defaults to 5.
 * Build: gcc -O2 -pthread -o ceiling ceiling.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *program;
static atomic_int stop;
static char *const child_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin",
                                  "GATEWAY_INTERFACE=CGI/1.1",
                                  "REQUEST_METHOD=GET", NULL};

static void *worker(void *arg)
{
    unsigned long *count = arg;
    char buf[4096];
    char *const argv[] = {(char *)program, NULL};
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0) {
            perror("pipe2");
            exit(1);
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        pid_t pid;
        int rc = posix_spawn(&pid, program, &fa, NULL, argv, child_env);
        posix_spawn_file_actions_destroy(&fa);
        close(fds[1]);
        if (rc != 0) {
            fprintf(stderr, "posix_spawn %s: %s\n", program, strerror(rc));
            exit(1);
        }
        ssize_t n;
        while ((n = read(fds[0], buf, sizeof buf)) != 0) {
            if (n < 0 && errno != EINTR) {
                perror("read");
                exit(1);
            }
        }
        close(fds[0]);
        int status;
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                perror("waitpid");
                exit(1);
            }
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "%s failed (status %d)\n", program, status);
            exit(1);
        }
        (*count)++;
    }
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double measure(int threads, double seconds)
{
    pthread_t tid[64];
    static unsigned long counts[64][8]; /* padded: one cache line per counter */
    memset(counts, 0, sizeof counts);
    atomic_store(&stop, 0);
    double start = now();
    for (int i = 0; i < threads; i++)
        if (pthread_create(&tid[i], NULL, worker, counts[i]) != 0) {
            perror("pthread_create");
            exit(1);
        }
    struct timespec ts = {(time_t)seconds,
                          (long)((seconds - (time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    atomic_store(&stop, 1);
    unsigned long total = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        total += counts[i][0];
    }
    double elapsed = now() - start;
    printf("spawns_per_sec=%.1f spawns=%lu threads=%d seconds=%.3f\n",
           total / elapsed, total, threads, elapsed);
    fflush(stdout);
    return total / elapsed;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s PROGRAM [THREADS [SECONDS]]\n", argv[0]);
        return 2;
    }
    program = argv[1];
    int threads = argc > 2 ? atoi(argv[2]) : 0;
    double seconds = argc > 3 ? atof(argv[3]) : 5;
    if (threads < 0 || threads > 64 || seconds <= 0 || seconds > 600) {
        fprintf(stderr, "THREADS must be 1..64 and SECONDS 0..600\n");
        return 2;
    }
    if (threads) {
        measure(threads, seconds);
    } else {
        measure(1, seconds);
        measure(2, seconds);
    }
    return 0;
}
