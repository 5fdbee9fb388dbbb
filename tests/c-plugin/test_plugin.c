/*
 * A plugin written in C against websocket_plugin.h alone, as third-party plugins are.
 * The integration tests load it to prove that the module speaks the C ABI; every
 * behaviour below exists only to be observed by a test. It also builds against the
 * header as it was before functions were appended to WebSocketServer (the tests
 * compile it both ways), as a plugin written for the original module would.
 *
 *   on_connect   refuses (403) if the request has X-Refuse; copies X-Echo-Header into
 *                the response as X-Echo-Header-Reply; picks subprotocol chat.v2 if
 *                offered and remembers the offered list.
 *   on_message   "protocols"        -> the offered subprotocols, comma-separated
 *                "request"          -> "yes" if request() is not NULL, else "no"
 *                "header:<name>"    -> that request header, or "(null)"
 *                "threads:<n>:<m>"  -> n threads each send m texts "t<i>:<k>" at once,
 *                                      then "threads-done" once all have finished
 *                "close"            -> close() (a Close frame without a status code)
 *                "close-with:<code>:<reason>"
 *                                   -> close_with(code, reason) if the server has it
 *                                      (and the header declares it), else the text
 *                                      "no close_with"; "close_with refused" if it
 *                                      returned 0
 *                "has-close-with"   -> "yes" or "no": whether this build sees it
 *                "info:<what>"      -> path, query, ip, port, user, auth, tls or version of
 *                                      the request, "(none)" for NULL, "(unsupported)"
 *                                      when the server or the header lacks the function
 *                "env:<name>"       -> env_get(name), same conventions
 *                "cookie:<name>"    -> cookie_get(name), same conventions
 *                "live"             -> how many connections of this process have been
 *                                      accepted by on_connect and not yet ended by
 *                                      on_disconnect (a process-wide counter)
 *                "pid"              -> the process id of the child serving it
 *                "sub:<channel>"    -> subscribe; "subscribed", "subscribe refused", or
 *                                      "(unsupported)" without channels
 *                "unsub:<channel>"  -> unsubscribe; "unsubscribed" or "unsubscribe refused"
 *                "pub:<channel>:<text>", "pub-binary:<channel>:<bytes>",
 *                "pub-detached:<channel>:<text>" (publish with a NULL server)
 *                                   -> publish; nothing on success (subscribers, this
 *                                      connection too if subscribed, get the message),
 *                                      "publish refused" if publish returned 0
 *                anything else      -> echoed with the same type
 *   on_disconnect joins every thread and frees the connection's state.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "websocket_plugin.h"

#define MAX_BATCHES 16

struct connection;

/* Connections between a successful on_connect and their on_disconnect. */
static atomic_long live_connections;

struct batch {
    struct connection *conn;
    unsigned long threads;
    unsigned long messages;
    pthread_t coordinator;
};

struct worker {
    const WebSocketServer *server;
    unsigned long index;
    unsigned long messages;
};

struct connection {
    const WebSocketServer *server;
    char *protocols;
    /* Only touched by callbacks, which never run concurrently for one connection. */
    struct batch batches[MAX_BATCHES];
    int batch_count;
};

static size_t send_text(const WebSocketServer *server, const char *text)
{
    return server->send(server, MESSAGE_TYPE_TEXT, (const unsigned char *)text, strlen(text));
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    unsigned long k;
    char text[64];

    for (k = 0; k < w->messages; k++) {
        snprintf(text, sizeof text, "t%lu:%lu", w->index, k);
        if (send_text(w->server, text) == 0) {
            break; /* closing: the rest would fail too */
        }
    }
    return NULL;
}

/* Runs a batch off the connection's thread, so that on_message returns and the server
 * can keep draining what the workers queue. */
static void *coordinator_main(void *arg)
{
    struct batch *b = arg;
    struct worker *workers = calloc(b->threads, sizeof *workers);
    pthread_t *ids = calloc(b->threads, sizeof *ids);
    unsigned long started = 0, i;

    if (workers != NULL && ids != NULL) {
        for (i = 0; i < b->threads; i++) {
            workers[i].server = b->conn->server;
            workers[i].index = i;
            workers[i].messages = b->messages;
            if (pthread_create(&ids[i], NULL, worker_main, &workers[i]) != 0) {
                break;
            }
            started++;
        }
        for (i = 0; i < started; i++) {
            pthread_join(ids[i], NULL);
        }
    }
    send_text(b->conn->server, started == b->threads ? "threads-done" : "threads-failed");
    free(workers);
    free(ids);
    return NULL;
}

static void start_batch(struct connection *conn, const char *spec)
{
    unsigned long threads, messages;
    struct batch *b;

    if (sscanf(spec, "%lu:%lu", &threads, &messages) != 2 || threads == 0 ||
        conn->batch_count == MAX_BATCHES) {
        send_text(conn->server, "threads-failed");
        return;
    }
    b = &conn->batches[conn->batch_count];
    b->conn = conn;
    b->threads = threads;
    b->messages = messages;
    if (pthread_create(&b->coordinator, NULL, coordinator_main, b) != 0) {
        send_text(conn->server, "threads-failed");
        return;
    }
    conn->batch_count++;
}

/* Whether a (not NUL-terminated) message equals a string. */
static int is(const unsigned char *buffer, size_t size, const char *text)
{
    return size == strlen(text) && memcmp(buffer, text, size) == 0;
}

static int starts_with(const unsigned char *buffer, size_t size, const char *prefix)
{
    return size >= strlen(prefix) && memcmp(buffer, prefix, strlen(prefix)) == 0;
}

#ifdef WEBSOCKET_SERVER_HAS
static void send_value(const WebSocketServer *server, const char *value)
{
    send_text(server, value != NULL ? value : "(none)");
}

static void send_number(const WebSocketServer *server, unsigned int n)
{
    char text[32];
    snprintf(text, sizeof text, "%u", n);
    send_text(server, text);
}

#define HAS(f) WEBSOCKET_SERVER_HAS(server, f)
#endif

/* "info:..", "env:.." or "cookie:.." as a NUL-terminated string. */
static void request_context(const WebSocketServer *server, const char *command)
{
#ifdef WEBSOCKET_SERVER_HAS
    const char *arg = strchr(command, ':') + 1;

    if (strncmp(command, "env:", 4) == 0 && HAS(env_get)) {
        send_value(server, server->env_get(server, arg));
    } else if (strncmp(command, "cookie:", 7) == 0 && HAS(cookie_get)) {
        send_value(server, server->cookie_get(server, arg));
    } else if (strcmp(arg, "path") == 0 && HAS(uri_path)) {
        send_value(server, server->uri_path(server));
    } else if (strcmp(arg, "query") == 0 && HAS(query_string)) {
        send_value(server, server->query_string(server));
    } else if (strcmp(arg, "ip") == 0 && HAS(remote_ip)) {
        send_value(server, server->remote_ip(server));
    } else if (strcmp(arg, "port") == 0 && HAS(remote_port)) {
        send_number(server, server->remote_port(server));
    } else if (strcmp(arg, "user") == 0 && HAS(user)) {
        send_value(server, server->user(server));
    } else if (strcmp(arg, "auth") == 0 && HAS(auth_type)) {
        send_value(server, server->auth_type(server));
    } else if (strcmp(arg, "tls") == 0 && HAS(is_tls)) {
        send_number(server, server->is_tls(server));
    } else if (strcmp(arg, "version") == 0 && HAS(http_version)) {
        send_number(server, server->http_version(server));
    } else {
        send_text(server, "(unsupported)");
    }
#else
    (void)command;
    send_text(server, "(unsupported)");
#endif
}

/* "<code>:<reason>" (not NUL-terminated) */
static void close_with(const WebSocketServer *server, const unsigned char *spec, size_t size)
{
#ifdef WEBSOCKET_SERVER_HAS
    unsigned long code = 0;
    size_t i = 0;

    while (i < size && spec[i] >= '0' && spec[i] <= '9') {
        code = code * 10 + (unsigned long)(spec[i] - '0');
        i++;
    }
    if (i < size && spec[i] == ':') {
        i++;
    }
    if (!WEBSOCKET_SERVER_HAS(server, close_with)) {
        send_text(server, "no close_with");
    } else if (server->close_with(server, (unsigned short)code, (const char *)spec + i,
                                  size - i) == 0) {
        send_text(server, "close_with refused");
    }
#else
    (void)spec;
    (void)size;
    send_text(server, "no close_with");
#endif
}

/* The channel commands; spec is what follows the command's colon. */
static void channel_command(const WebSocketServer *server, const char *command,
                            const unsigned char *spec, size_t size)
{
#ifdef WEBSOCKET_SERVER_HAS
    size_t name_len = 0;
    int done;

    if (!WEBSOCKET_SERVER_HAS(server, publish)) {
        send_text(server, "(unsupported)");
        return;
    }
    if (strcmp(command, "sub") == 0) {
        done = server->subscribe(server, (const char *)spec, size);
        send_text(server, done ? "subscribed" : "subscribe refused");
        return;
    }
    if (strcmp(command, "unsub") == 0) {
        done = server->unsubscribe(server, (const char *)spec, size);
        send_text(server, done ? "unsubscribed" : "unsubscribe refused");
        return;
    }
    while (name_len < size && spec[name_len] != ':') {
        name_len++;
    }
    if (name_len == size) {
        send_text(server, "publish refused");
        return;
    }
    done = server->publish(strcmp(command, "pub-detached") == 0 ? NULL : server,
                           (const char *)spec, name_len,
                           strcmp(command, "pub-binary") == 0 ? MESSAGE_TYPE_BINARY
                                                              : MESSAGE_TYPE_TEXT,
                           spec + name_len + 1, size - name_len - 1);
    if (!done) {
        send_text(server, "publish refused");
    }
#else
    (void)command;
    (void)spec;
    (void)size;
    send_text(server, "(unsupported)");
#endif
}

static void *CALLBACK on_connect(const WebSocketServer *server)
{
    struct connection *conn;
    const char *echo;
    size_t count, i, length = 1;

    if (server->header_get(server, "X-Refuse") != NULL) {
        return NULL;
    }
    echo = server->header_get(server, "X-Echo-Header");
    if (echo != NULL) {
        server->header_set(server, "X-Echo-Header-Reply", echo);
    }

    conn = calloc(1, sizeof *conn);
    if (conn == NULL) {
        return NULL;
    }
    conn->server = server;
    count = server->protocol_count(server);
    for (i = 0; i < count; i++) {
        const char *p = server->protocol_index(server, i);
        length += (p != NULL ? strlen(p) : 0) + 1;
    }
    conn->protocols = calloc(1, length);
    if (conn->protocols == NULL) {
        free(conn);
        return NULL;
    }
    atomic_fetch_add(&live_connections, 1);
    for (i = 0; i < count; i++) {
        const char *p = server->protocol_index(server, i);
        if (p == NULL) {
            continue;
        }
        if (conn->protocols[0] != '\0') {
            strcat(conn->protocols, ",");
        }
        strcat(conn->protocols, p);
        if (strcmp(p, "chat.v2") == 0) {
            server->protocol_set(server, "chat.v2");
        }
    }
    return conn;
}

static size_t CALLBACK on_message(void *plugin_private, const WebSocketServer *server,
                                  const int type, unsigned char *buffer,
                                  const size_t buffer_size)
{
    struct connection *conn = plugin_private;

    if (type == MESSAGE_TYPE_TEXT) {
        if (is(buffer, buffer_size, "protocols")) {
            send_text(server, conn->protocols);
            return 0;
        }
        if (is(buffer, buffer_size, "request")) {
            send_text(server, server->request(server) != NULL ? "yes" : "no");
            return 0;
        }
        if (is(buffer, buffer_size, "live")) {
            char text[32];
            snprintf(text, sizeof text, "%ld", atomic_load(&live_connections));
            send_text(server, text);
            return 0;
        }
        if (is(buffer, buffer_size, "pid")) {
            char text[32];
            snprintf(text, sizeof text, "%ld", (long)getpid());
            send_text(server, text);
            return 0;
        }
        {
            static const char *const commands[] = {"sub", "unsub", "pub", "pub-binary",
                                                   "pub-detached"};
            size_t c;
            for (c = 0; c < sizeof commands / sizeof commands[0]; c++) {
                size_t n = strlen(commands[c]);
                if (buffer_size > n && memcmp(buffer, commands[c], n) == 0 && buffer[n] == ':') {
                    channel_command(server, commands[c], buffer + n + 1, buffer_size - n - 1);
                    return 0;
                }
            }
        }
        if (is(buffer, buffer_size, "close")) {
            server->close(server);
            return 0;
        }
        if (is(buffer, buffer_size, "has-close-with")) {
#ifdef WEBSOCKET_SERVER_HAS
            send_text(server, WEBSOCKET_SERVER_HAS(server, close_with) ? "yes" : "no");
#else
            send_text(server, "no");
#endif
            return 0;
        }
        if (starts_with(buffer, buffer_size, "close-with:")) {
            close_with(server, buffer + strlen("close-with:"), buffer_size - strlen("close-with:"));
            return 0;
        }
        if (starts_with(buffer, buffer_size, "header:") ||
            starts_with(buffer, buffer_size, "threads:") ||
            starts_with(buffer, buffer_size, "info:") ||
            starts_with(buffer, buffer_size, "env:") ||
            starts_with(buffer, buffer_size, "cookie:")) {
            char *text = malloc(buffer_size + 1);
            if (text == NULL) {
                return 0;
            }
            memcpy(text, buffer, buffer_size);
            text[buffer_size] = '\0';
            if (text[0] == 'h') {
                const char *value = server->header_get(server, text + strlen("header:"));
                send_text(server, value != NULL ? value : "(null)");
            } else if (text[0] == 't') {
                start_batch(conn, text + strlen("threads:"));
            } else {
                request_context(server, text);
            }
            free(text);
            return 0;
        }
    }
    server->send(server, type, buffer, buffer_size);
    return 0;
}

static void CALLBACK on_disconnect(void *plugin_private, const WebSocketServer *server)
{
    struct connection *conn = plugin_private;
    int i;

    (void)server;
    for (i = 0; i < conn->batch_count; i++) {
        pthread_join(conn->batches[i].coordinator, NULL);
    }
    free(conn->protocols);
    free(conn);
    atomic_fetch_sub(&live_connections, 1);
}

EXPORT WebSocketPlugin *CALLBACK test_plugin_init(void);

static void CALLBACK destroy(WebSocketPlugin *plugin)
{
    free(plugin);
}

EXPORT WebSocketPlugin *CALLBACK test_plugin_init(void)
{
    WebSocketPlugin *plugin = calloc(1, sizeof *plugin);

    if (plugin != NULL) {
        plugin->size = sizeof *plugin;
        plugin->version = WEBSOCKET_PLUGIN_VERSION_0;
        plugin->destroy = destroy;
        plugin->on_connect = on_connect;
        plugin->on_message = on_message;
        plugin->on_disconnect = on_disconnect;
    }
    return plugin;
}
