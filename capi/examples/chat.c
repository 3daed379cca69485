/*
 * A streaming EM-INF chat through entmin's C interface. Each line on stdin is a user
 * turn; the answer streams to stdout, each token followed by its entropy before and
 * after EM-INF, and a summary goes to stderr. The conversation is kept, so later turns
 * see earlier answers.
 *
 *   cc capi/examples/chat.c -I capi/include -L target/release -lentmin -lpthread -o chat
 *   echo "What is 2+3?" | LD_LIBRARY_PATH=target/release ./chat qwen2.5-coder-0.5b-instruct
 *
 *   chat [options] MODEL
 *     --device D       auto (default), cpu, wgpu or cuda
 *     --method M       em-inf (default), plain, adaptive-temp or self-consistency
 *     --max-tokens N   at most N tokens per answer (default 256)
 *     --stop-after N   the token callback stops each answer after N tokens
 *     --seconds S      a watchdog thread cancels an answer still running after S seconds
 *     --seed N         sampler seed (default 0)
 *     --plain-text     print the answer's text only (no entropies)
 *     --trace          one tab-separated line per token on stderr: id, log-prob,
 *                      entropy, entropy after EM-INF, sampled entropy, Adam steps
 *
 * Exit status: 0, or 1 with entmin's error message on stderr.
 */

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "entmin.h"

/* What the token callback needs: where to print and when to stop. */
struct stream {
    int plain_text;
    int trace;
    unsigned stop_after; /* 0: never */
    unsigned tokens;
};

static int32_t on_token(const entmin_token *token, void *user_data) {
    struct stream *s = user_data;
    fwrite(token->text, 1, token->text_len, stdout);
    if (!s->plain_text)
        printf("\xe2\x9f\xa8%.2f\xe2\x86\x92%.2f\xe2\x9f\xa9", token->entropy, token->entropy_after);
    fflush(stdout);
    if (s->trace)
        fprintf(stderr, "token\t%u\t%.9g\t%.9g\t%.9g\t%.9g\t%u\n", token->id, token->logprob, token->entropy,
                token->entropy_after, token->sampled_entropy, token->em_steps);
    s->tokens++;
    return s->stop_after != 0 && s->tokens >= s->stop_after ? ENTMIN_STOP : ENTMIN_CONTINUE;
}

static void on_progress(const char *label, uint64_t done, uint64_t total, void *user_data) {
    (void)user_data;
    if (total > 0)
        fprintf(stderr, "\r[%s: %.0f%%]", label, 100.0 * (double)done / (double)total);
    if (total > 0 && done >= total)
        fputc('\n', stderr);
}

/* The watchdog: cancels the answer unless it is told the answer ended first. */
struct watchdog {
    pthread_mutex_t lock;
    pthread_cond_t answered_cond;
    int answered;
    double seconds;
    entmin_cancel *cancel;
};

static void *watch(void *arg) {
    struct watchdog *w = arg;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)w->seconds;
    deadline.tv_nsec += (long)((w->seconds - (double)(time_t)w->seconds) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    int rc = 0;
    while (!w->answered && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w->answered_cond, &w->lock, &deadline);
    if (!w->answered && entmin_cancel_trigger(w->cancel) != ENTMIN_OK)
        fprintf(stderr, "%s\n", entmin_last_error());
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static const char *finish_name(int32_t finish) {
    switch (finish) {
    case ENTMIN_FINISH_END_OF_TURN: return "end of turn";
    case ENTMIN_FINISH_STOP_STRING: return "stop string";
    case ENTMIN_FINISH_MAX_TOKENS: return "max tokens";
    case ENTMIN_FINISH_CONTEXT_FULL: return "context full";
    case ENTMIN_FINISH_CANCELLED: return "cancelled";
    default: return "unknown";
    }
}

static int fail(const char *what) {
    fprintf(stderr, "chat: %s: %s\n", what, entmin_last_error());
    return 1;
}

/* The conversation: messages whose strings this program owns. */
struct history {
    entmin_message *messages;
    size_t len, cap;
};

static int push(struct history *h, const char *role, const char *content) {
    if (h->len == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 8;
        entmin_message *grown = realloc(h->messages, cap * sizeof *grown);
        if (!grown)
            return -1;
        h->messages = grown;
        h->cap = cap;
    }
    char *copy = strdup(content);
    if (!copy)
        return -1;
    h->messages[h->len].role = role;
    h->messages[h->len].content = copy;
    h->len++;
    return 0;
}

static void free_history(struct history *h) {
    for (size_t i = 0; i < h->len; i++)
        free((char *)h->messages[i].content);
    free(h->messages);
}

int main(int argc, char **argv) {
    entmin_load_options load = entmin_load_options_default();
    entmin_generate_params params = entmin_generate_params_default();
    params.max_tokens = 256;
    struct stream stream = {0};
    double seconds = 0;
    const char *model_spec = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--plain-text")) {
            stream.plain_text = 1;
        } else if (!strcmp(a, "--trace")) {
            stream.trace = 1;
        } else if (a[0] == '-' && a[1] == '-' && value) {
            i++;
            if (!strcmp(a, "--device")) load.device = value;
            else if (!strcmp(a, "--method")) params.method = value;
            else if (!strcmp(a, "--max-tokens")) params.max_tokens = (uint32_t)strtoul(value, NULL, 10);
            else if (!strcmp(a, "--stop-after")) stream.stop_after = (unsigned)strtoul(value, NULL, 10);
            else if (!strcmp(a, "--seconds")) seconds = strtod(value, NULL);
            else if (!strcmp(a, "--seed")) params.seed = strtoull(value, NULL, 10);
            else {
                fprintf(stderr, "chat: unknown option %s\n", a);
                return 2;
            }
        } else if (a[0] != '-' && !model_spec) {
            model_spec = a;
        } else {
            fprintf(stderr, "usage: chat [--device D] [--method M] [--max-tokens N] [--stop-after N] "
                            "[--seconds S] [--seed N] [--plain-text] [--trace] MODEL\n");
            return 2;
        }
    }
    if (!model_spec) {
        fprintf(stderr, "chat: which model? (a catalog name, a .gguf file or a Hugging Face folder)\n");
        return 2;
    }

    load.on_progress = on_progress;
    entmin_model *model = NULL;
    if (entmin_model_load(model_spec, &load, &model) != ENTMIN_OK)
        return fail("loading the model");
    entmin_model_info info;
    if (entmin_model_get_info(model, &info) != ENTMIN_OK) {
        entmin_model_free(model);
        return fail("model info");
    }
    fprintf(stderr, "[entmin %s: %s (%s, %s) on %s; one question per line, Ctrl-D to end]\n", entmin_version(),
            model_spec, info.architecture, info.weight_types, info.device);

    int status = 0;
    struct history history = {0};
    char line[4096];
    while (status == 0 && fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        if (push(&history, "user", line) != 0) {
            fprintf(stderr, "chat: out of memory\n");
            status = 1;
            break;
        }
        stream.tokens = 0;
        entmin_cancel *cancel = NULL;
        pthread_t watcher;
        struct watchdog dog = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, seconds, NULL};
        if (seconds > 0) {
            if (entmin_cancel_new(&cancel) != ENTMIN_OK) {
                status = fail("cancel handle");
                break;
            }
            dog.cancel = cancel;
            params.cancel = cancel;
            pthread_create(&watcher, NULL, watch, &dog);
        }

        entmin_result result;
        entmin_status rc = entmin_chat(model, history.messages, history.len, &params, on_token, &stream, &result);

        if (seconds > 0) {
            pthread_mutex_lock(&dog.lock);
            dog.answered = 1;
            pthread_cond_signal(&dog.answered_cond);
            pthread_mutex_unlock(&dog.lock);
            pthread_join(watcher, NULL);
            entmin_cancel_free(cancel);
            params.cancel = NULL;
        }
        printf("\n");
        if (rc != ENTMIN_OK) {
            status = fail("generating");
        } else {
            fprintf(stderr, "[%u tokens, mean entropy %.3f -> sampled %.3f nats, %u EM-INF Adam steps, finish: %s]\n",
                    result.completion_tokens, result.mean_entropy, result.mean_sampled_entropy, result.em_steps,
                    finish_name(result.finish));
            if (push(&history, "assistant", result.text) != 0) {
                fprintf(stderr, "chat: out of memory\n");
                status = 1;
            }
        }
        entmin_result_free(&result);
    }
    free_history(&history);
    if (entmin_model_free(model) != ENTMIN_OK)
        return fail("freeing the model");
    return status;
}
