/* Everything the bindings are generated from. Order matters only in that
 * httpd.h must come first: it pulls in ap_config.h, which the others rely on. */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_connection.h>
#include <http_log.h>
#include <http_main.h>
#include <http_vhost.h>
#include <util_filter.h>
#include <util_cfgtree.h>
#include <ap_mpm.h>
#include <mpm_common.h>
#include <scoreboard.h>

#include <apr_buckets.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_strings.h>
#include <apr_poll.h>
#include <apr_network_io.h>
#include <apr_thread_proc.h>
#include <apr_time.h>
#include <apr_optional.h>
#include <apr_optional_hooks.h>
#include <apr_errno.h>
#include <apr_general.h>
