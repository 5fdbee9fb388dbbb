/* Plugins, good and broken, for the loader tests: one init function per case. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "websocket_plugin.h"

/* What destroy calls have been made, for the test to read back through fixture_log. */
static char log_buffer[256];

static void note(const char *what)
{
    size_t used = strlen(log_buffer);
    snprintf(log_buffer + used, sizeof log_buffer - used, "%s;", what);
}

EXPORT const char *fixture_log(void);
EXPORT const char *fixture_log(void)
{
    return log_buffer;
}

static size_t CALLBACK on_message(void *plugin_private, const WebSocketServer *server,
                                  const int type, unsigned char *buffer,
                                  const size_t buffer_size)
{
    (void)plugin_private;
    return server->send(server, type, buffer, buffer_size);
}

static void CALLBACK destroy(WebSocketPlugin *plugin)
{
    note(plugin->on_message != NULL ? "destroy" : "destroy-no-message");
    free(plugin);
}

static WebSocketPlugin *make(unsigned int size, unsigned int version, WS_OnMessage message)
{
    WebSocketPlugin *plugin = calloc(1, sizeof *plugin);
    plugin->size = size;
    plugin->version = version;
    plugin->destroy = destroy;
    plugin->on_message = message;
    return plugin;
}

EXPORT WebSocketPlugin *CALLBACK good_init(void);
EXPORT WebSocketPlugin *CALLBACK good_init(void)
{
    note("init");
    return make(sizeof(WebSocketPlugin), WEBSOCKET_PLUGIN_VERSION_0, on_message);
}

EXPORT WebSocketPlugin *CALLBACK null_init(void);
EXPORT WebSocketPlugin *CALLBACK null_init(void)
{
    return NULL;
}

EXPORT WebSocketPlugin *CALLBACK version_init(void);
EXPORT WebSocketPlugin *CALLBACK version_init(void)
{
    return make(sizeof(WebSocketPlugin), 7, on_message);
}

EXPORT WebSocketPlugin *CALLBACK small_init(void);
EXPORT WebSocketPlugin *CALLBACK small_init(void)
{
    return make(sizeof(WebSocketPlugin) - 1, WEBSOCKET_PLUGIN_VERSION_0, on_message);
}

EXPORT WebSocketPlugin *CALLBACK no_message_init(void);
EXPORT WebSocketPlugin *CALLBACK no_message_init(void)
{
    return make(sizeof(WebSocketPlugin), WEBSOCKET_PLUGIN_VERSION_0, NULL);
}
