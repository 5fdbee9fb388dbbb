/*
 * websocket_plugin.h: the plugin interface of mod_websocket.
 *
 * Licensed under the Apache License, Version 2.0.
 *
 * This header is a drop-in replacement for the websocket_plugin.h of the original C
 * apache-websocket module: the same include guard, macros, type names and struct
 * layouts, so a plugin written for that module compiles and runs unchanged. Nothing in
 * the version-0 plugin struct or in the original fields of the version-1 server struct
 * will ever change. New server functions are appended to the end of WebSocketServer,
 * after `close`: a plugin built against an older header never sees them, and a plugin
 * that uses one checks first that the server has it (see WEBSOCKET_SERVER_HAS below),
 * since a server built against an older header does not.
 *
 * A plugin is a shared library (.so / .dll / .dylib) that exports an init function of
 * type WS_Init. The configuration names both:
 *
 *     WebSocketHandler modules/mod_websocket_echo.so echo_init
 *
 * THE LIFE OF A PLUGIN
 *
 *   init        Called once each time the configuration directive is read. httpd reads
 *               its configuration twice at startup and again on every graceful restart,
 *               so init may run several times in one process: return a new plugin
 *               struct each time (or a static one and make destroy a no-op). The
 *               plugin is accepted only if init returns non-NULL, version is
 *               WEBSOCKET_PLUGIN_VERSION_0, size >= sizeof(WebSocketPlugin) and
 *               on_message is not NULL.
 *   destroy     Called (if not NULL) when the configuration that called init is torn
 *               down, with the pointer init returned; the library is unloaded only
 *               after destroy has returned. Connections that used the plugin have
 *               all ended by then.
 *
 * THE LIFE OF A CONNECTION
 *
 *   on_connect  Called during the opening handshake, before the 101 response is
 *               sent. The server picks no subprotocol on the plugin's behalf: the
 *               101 names one only if on_connect calls protocol_set (RFC 6455
 *               §4.2.2 lets a server choose one of those offered, or none), and
 *               protocol_count/protocol_index report what the client offered,
 *               each name once, in its order. header_set adds response headers. Returning NULL refuses the
 *               connection with 403 Forbidden, and then no other callback runs for
 *               it. Any other value is the plugin_private passed to every later
 *               callback. If on_connect is NULL, every connection is accepted and
 *               plugin_private is NULL.
 *   on_message  Called for each complete TEXT (valid UTF-8, not NUL-terminated) or
 *               BINARY message; fragments are reassembled and control frames are
 *               handled by the server. The buffer belongs to the server and is valid
 *               only until on_message returns. The return value is ignored.
 *   on_disconnect
 *               Called exactly once for every connection whose on_connect succeeded,
 *               when the connection has ended for whatever reason. Free
 *               plugin_private here.
 *
 * THREADING CONTRACT
 *
 *   - Callbacks of different connections run concurrently on different threads, so
 *     on_connect, on_message and on_disconnect must be thread-safe with respect to
 *     anything the plugin shares between connections.
 *   - The callbacks of one connection never run concurrently with each other and run
 *     in the order on_connect, on_message..., on_disconnect. Do not assume they all
 *     run on the same thread.
 *   - send, close and close_with may be called from any thread, at any time from the
 *     start of on_connect until on_disconnect returns. Called from within on_message
 *     they write directly; called from another thread they queue the message and may
 *     block while the connection's output queue is full (back-pressure). A message
 *     sent before the handshake has completed is delivered after the 101 response.
 *   - Once the connection is closing, send returns 0 at once, and it never blocks
 *     after on_disconnect has been called: a plugin may therefore wait, inside
 *     on_disconnect, for its own threads that are calling send.
 *   - request, header_get, header_set, protocol_count, protocol_index and
 *     protocol_set may be called only from the thread running a callback of that
 *     connection. header_set and protocol_set have an effect only in on_connect.
 *
 * POINTER VALIDITY
 *
 *   - The same WebSocketServer pointer is passed to every callback of a connection.
 *     It, and every pointer obtained through it, stays valid from the start of
 *     on_connect until on_disconnect returns (until on_connect returns, if it
 *     refused). After that, any use is undefined: stop or join every thread that
 *     might still call send or close before returning from on_disconnect.
 *   - Strings returned by header_get and protocol_index are owned by the server;
 *     copy them to keep them. Strings passed to header_set and protocol_set are
 *     copied by the server.
 *   - send copies the buffer before returning; its return value is the number of
 *     payload bytes accepted, or 0 if the message was not (connection closed or
 *     failing).
 *   - close starts the closing handshake with a Close frame that carries no status
 *     code, as the original module did (the client sees 1005, "no status received").
 *     close_with sends a status code and reason instead: code 1000-1003, 1007-1014 or
 *     3000-4999, reason valid UTF-8 of at most 123 bytes (reason may be NULL when
 *     reason_size is 0). It returns 1 when the close was started and 0 when it was
 *     not (an invalid code or reason, or the connection already closing).
 *     on_disconnect follows once the closing handshake completes.
 *
 * REQUEST CONTEXT
 *
 *   uri_path, query_string, remote_ip, remote_port, user, auth_type, env_get,
 *   cookie_get, is_tls and http_version (appended; check WEBSOCKET_SERVER_HAS) tell a
 *   plugin who connected, from where, to what, without Apache's headers. Apache has
 *   already run its authentication and authorization (Require, Auth*, client
 *   certificates) before on_connect, so user and auth_type are its verdict. None of
 *   these values changes during a connection: they may be called from any thread,
 *   from the start of on_connect until on_disconnect returns, and the strings they
 *   return are owned by the server and valid as long. A value the request does not
 *   have is NULL, never an empty string standing in for it.
 *   - env_get reads the request's environment (what SetEnv, SetEnvIf, RewriteRule
 *     [E=] and mod_ssl with "SSLOptions +StdEnvVars" put there, e.g.
 *     SSL_CLIENT_S_DN for a client certificate's subject).
 *   - cookie_get returns the value of the first cookie of that name in the Cookie
 *     header, as sent (surrounding double quotes removed, not %-decoded).
 *   - remote_ip is the address mod_remoteip determined, or the peer's when it is
 *     not in use; remote_port is the TCP port it connected from, or 0 when unknown
 *     (mod_remoteip took the address from a header, which carries no port).
 *
 * CHANNELS
 *
 *   subscribe, unsubscribe and publish (appended; check WEBSOCKET_SERVER_HAS) let a
 *   plugin broadcast: a message published to a channel is sent to every connection
 *   subscribed to it, in every child process of this Apache and, with
 *   "WebSocketBroker redis://...", on every Apache that shares the broker.
 *   - A channel name is 1 to 128 bytes of A-Z a-z 0-9 and "-._~" (so it can be a URL
 *     path segment); channel_size is its length (no NUL needed).
 *   - subscribe returns 1 when the connection is subscribed (also if it already was)
 *     and 0 for an invalid name, a connection that has ended, or more than 64
 *     subscriptions on one connection. unsubscribe returns 1 if it was subscribed.
 *     Subscriptions end with the connection: nothing needs undoing in on_disconnect.
 *   - publish sends a TEXT (valid UTF-8) or BINARY message and returns 1 when it was
 *     accepted for delivery, 0 for an invalid name or type, invalid text, a message
 *     larger than the channel buffer allows (a quarter of WebSocketChannelBuffer), or
 *     a server without channels. The publishing connection gets the message too if it
 *     is subscribed. publish may be called from any thread, and with a NULL server
 *     (keep the function pointer) for as long as the plugin is loaded, e.g. from a
 *     timer thread that outlives the connections.
 *   - Every subscriber gets each message at most once, in the order each publisher
 *     published. Delivery never waits for a subscriber: one whose send queue is full
 *     (it does not read what it is sent) is closed with 1013 (try again later), and
 *     the publisher and the other subscribers go on.
 */

#ifndef _MOD_WEBSOCKET_H_
#define _MOD_WEBSOCKET_H_

#include <stddef.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define EXPORT __declspec(dllexport)
#define CALLBACK __stdcall
#else
#define EXPORT
#define CALLBACK
#endif

#define MESSAGE_TYPE_INVALID (-1)
#define MESSAGE_TYPE_TEXT 0
#define MESSAGE_TYPE_BINARY 128
#define MESSAGE_TYPE_CLOSE 255
#define MESSAGE_TYPE_PING 256
#define MESSAGE_TYPE_PONG 257

#define WEBSOCKET_SERVER_VERSION_1 1
#define WEBSOCKET_PLUGIN_VERSION_0 0

/* Declared here so that the typedefs below do not depend on httpd.h or on each
 * other's order. */
struct request_rec;
struct _WebSocketState;
struct _WebSocketServer;
struct _WebSocketPlugin;

typedef struct request_rec *(CALLBACK *WS_Request)(const struct _WebSocketServer *server);
typedef const char *(CALLBACK *WS_Header_Get)(const struct _WebSocketServer *server,
                                              const char *key);
typedef void (CALLBACK *WS_Header_Set)(const struct _WebSocketServer *server,
                                       const char *key, const char *value);
typedef size_t (CALLBACK *WS_Protocol_Count)(const struct _WebSocketServer *server);
typedef const char *(CALLBACK *WS_Protocol_Index)(const struct _WebSocketServer *server,
                                                  const size_t index);
typedef void (CALLBACK *WS_Protocol_Set)(const struct _WebSocketServer *server,
                                         const char *protocol);
typedef size_t (CALLBACK *WS_Send)(const struct _WebSocketServer *server, const int type,
                                   const unsigned char *buffer, const size_t buffer_size);
typedef void (CALLBACK *WS_Close)(const struct _WebSocketServer *server);
typedef int (CALLBACK *WS_Close_With)(const struct _WebSocketServer *server,
                                      const unsigned short code, const char *reason,
                                      const size_t reason_size);
typedef const char *(CALLBACK *WS_Request_Value)(const struct _WebSocketServer *server);
typedef const char *(CALLBACK *WS_Request_Lookup)(const struct _WebSocketServer *server,
                                                  const char *name);
typedef unsigned int (CALLBACK *WS_Request_Number)(const struct _WebSocketServer *server);
typedef int (CALLBACK *WS_Subscribe)(const struct _WebSocketServer *server, const char *channel,
                                     const size_t channel_size);
typedef int (CALLBACK *WS_Publish)(const struct _WebSocketServer *server, const char *channel,
                                   const size_t channel_size, const int type,
                                   const unsigned char *buffer, const size_t buffer_size);

/* Filled in by the server; plugins only read it. */
typedef struct _WebSocketServer {
    unsigned int size;              /* sizeof(WebSocketServer) as the server knows it */
    unsigned int version;           /* WEBSOCKET_SERVER_VERSION_1 */
    struct _WebSocketState *state;  /* private to the server */
    WS_Request request;             /* Apache's request_rec of the handshake */
    WS_Header_Get header_get;       /* a request header, or NULL if absent */
    WS_Header_Set header_set;       /* set a response header (on_connect only) */
    WS_Protocol_Count protocol_count; /* how many subprotocols the client offered */
    WS_Protocol_Index protocol_index; /* the index-th offered subprotocol, or NULL */
    WS_Protocol_Set protocol_set;   /* choose the response's subprotocol (on_connect only) */
    WS_Send send;                   /* send a TEXT or BINARY message; any thread */
    WS_Close close;                 /* start the closing handshake, no status code; any thread */
    /* Appended later: check WEBSOCKET_SERVER_HAS(server, field) before use. */
    WS_Close_With close_with;       /* start the closing handshake with a code; any thread */
    /* Who the client is (see REQUEST CONTEXT above); any thread. */
    WS_Request_Value uri_path;      /* the decoded path <Location> matched, e.g. "/chat/caf\xc3\xa9" */
    WS_Request_Value query_string;  /* what follows '?', as sent (still %-encoded); NULL if none */
    WS_Request_Value remote_ip;     /* the client's address, after mod_remoteip */
    WS_Request_Number remote_port;  /* the client's port; 0 if unknown (mod_remoteip) */
    WS_Request_Value user;          /* the authenticated user (r->user); NULL if none */
    WS_Request_Value auth_type;     /* "Basic", "Digest", ...; NULL if none */
    WS_Request_Lookup env_get;      /* a request environment variable; NULL if unset */
    WS_Request_Lookup cookie_get;   /* a cookie's value; NULL if the client sent none */
    WS_Request_Number is_tls;       /* 1 over TLS (https/wss), 0 otherwise */
    WS_Request_Number http_version; /* 1001 for HTTP/1.1, 2000 for HTTP/2 */
    /* Channels (see CHANNELS above); any thread. */
    WS_Subscribe subscribe;         /* deliver the channel's messages to this connection */
    WS_Subscribe unsubscribe;       /* stop delivering them */
    WS_Publish publish;             /* a message to every subscriber; server may be NULL */
} WebSocketServer;

/* Whether the server struct is large enough to hold `field` (and it is set). */
#define WEBSOCKET_SERVER_HAS(server, field)                                              \
    ((server)->size >= offsetof(WebSocketServer, field) + sizeof((server)->field) &&      \
     (server)->field != NULL)

typedef struct _WebSocketPlugin *(CALLBACK *WS_Init)(void);
typedef void (CALLBACK *WS_Destroy)(struct _WebSocketPlugin *plugin);

typedef void *(CALLBACK *WS_OnConnect)(const WebSocketServer *server); /* returns plugin_private */
typedef size_t (CALLBACK *WS_OnMessage)(void *plugin_private, const WebSocketServer *server,
                                        const int type, unsigned char *buffer,
                                        const size_t buffer_size);
typedef void (CALLBACK *WS_OnDisconnect)(void *plugin_private, const WebSocketServer *server);

/* Returned by the plugin's init function; the server only reads it. */
typedef struct _WebSocketPlugin {
    unsigned int size;              /* sizeof(WebSocketPlugin) */
    unsigned int version;           /* WEBSOCKET_PLUGIN_VERSION_0 */
    WS_Destroy destroy;             /* may be NULL */
    WS_OnConnect on_connect;        /* may be NULL: accept everything */
    WS_OnMessage on_message;        /* required */
    WS_OnDisconnect on_disconnect;  /* may be NULL */
} WebSocketPlugin;

#ifdef __cplusplus
}
#endif

#endif /* _MOD_WEBSOCKET_H_ */
