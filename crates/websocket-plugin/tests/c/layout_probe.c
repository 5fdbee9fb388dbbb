/* Prints the layout the shipped header gives the ABI structs, and the values of its
 * macros, as "name value..." lines for tests/layout.rs to compare with the Rust side. */
#include <stddef.h>
#include <stdio.h>

#include "websocket_plugin.h"

#define SIZE(T) printf("sizeof %s %lu\n", #T, (unsigned long)sizeof(T))
#define FIELD(T, f)                                                                     \
    printf("field %s.%s %lu %lu\n", #T, #f, (unsigned long)offsetof(T, f),            \
           (unsigned long)sizeof(((T *)0)->f))
#define VALUE(M) printf("macro %s %ld\n", #M, (long)(M))

/* Functions with exactly the prototypes the documentation gives: assigning them below
 * fails to compile if a typedef drifts. */
static struct request_rec *CALLBACK request(const WebSocketServer *server)
{
    (void)server;
    return NULL;
}
static size_t CALLBACK send_fn(const WebSocketServer *server, const int type,
                               const unsigned char *buffer, const size_t buffer_size)
{
    (void)server;
    (void)type;
    (void)buffer;
    return buffer_size;
}
static int CALLBACK close_with(const WebSocketServer *server, const unsigned short code,
                               const char *reason, const size_t reason_size)
{
    (void)server;
    (void)reason;
    return code != 0 && reason_size == 0;
}
static void *CALLBACK on_connect(const WebSocketServer *server)
{
    (void)server;
    return NULL;
}
static size_t CALLBACK on_message(void *plugin_private, const WebSocketServer *server,
                                  const int type, unsigned char *buffer,
                                  const size_t buffer_size)
{
    (void)plugin_private;
    (void)server;
    (void)type;
    (void)buffer;
    return buffer_size;
}
static WebSocketPlugin *CALLBACK init(void)
{
    return NULL;
}

int main(void)
{
    WS_Request r = request;
    WS_Send s = send_fn;
    WS_Close_With w = close_with;
    WS_OnConnect c = on_connect;
    WS_OnMessage m = on_message;
    WS_Init i = init;
    (void)r;
    (void)s;
    (void)w;
    (void)c;
    (void)m;
    (void)i;

    SIZE(WebSocketServer);
    FIELD(WebSocketServer, size);
    FIELD(WebSocketServer, version);
    FIELD(WebSocketServer, state);
    FIELD(WebSocketServer, request);
    FIELD(WebSocketServer, header_get);
    FIELD(WebSocketServer, header_set);
    FIELD(WebSocketServer, protocol_count);
    FIELD(WebSocketServer, protocol_index);
    FIELD(WebSocketServer, protocol_set);
    FIELD(WebSocketServer, send);
    FIELD(WebSocketServer, close);
    FIELD(WebSocketServer, close_with);
    FIELD(WebSocketServer, uri_path);
    FIELD(WebSocketServer, query_string);
    FIELD(WebSocketServer, remote_ip);
    FIELD(WebSocketServer, remote_port);
    FIELD(WebSocketServer, user);
    FIELD(WebSocketServer, auth_type);
    FIELD(WebSocketServer, env_get);
    FIELD(WebSocketServer, cookie_get);
    FIELD(WebSocketServer, is_tls);
    FIELD(WebSocketServer, http_version);
    FIELD(WebSocketServer, subscribe);
    FIELD(WebSocketServer, unsubscribe);
    FIELD(WebSocketServer, publish);

    SIZE(WebSocketPlugin);
    FIELD(WebSocketPlugin, size);
    FIELD(WebSocketPlugin, version);
    FIELD(WebSocketPlugin, destroy);
    FIELD(WebSocketPlugin, on_connect);
    FIELD(WebSocketPlugin, on_message);
    FIELD(WebSocketPlugin, on_disconnect);

    VALUE(MESSAGE_TYPE_INVALID);
    VALUE(MESSAGE_TYPE_TEXT);
    VALUE(MESSAGE_TYPE_BINARY);
    VALUE(MESSAGE_TYPE_CLOSE);
    VALUE(MESSAGE_TYPE_PING);
    VALUE(MESSAGE_TYPE_PONG);
    VALUE(WEBSOCKET_SERVER_VERSION_1);
    VALUE(WEBSOCKET_PLUGIN_VERSION_0);
    return 0;
}
