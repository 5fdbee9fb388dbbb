//! Who made a request: the values Apache settled before the handler ran
//! (path, query, client address, authenticated user, environment, TLS). A
//! WebSocket hands them to its plugin for the whole connection, so each is
//! returned as the request-pool string itself, which lives as long as the
//! request and is not changed after the handler starts.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};

use crate::sys;

/// Everything below about one request, read at once (see
/// [`crate::conn::Request::client`]).
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    pub uri_path: Option<&'a CStr>,
    pub query: Option<&'a CStr>,
    pub remote_ip: Option<&'a CStr>,
    pub remote_port: u16,
    pub user: Option<&'a CStr>,
    pub auth_type: Option<&'a CStr>,
    pub is_tls: bool,
    pub proto_num: i32,
}

/// A pool string of the request, or `None` for NULL.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives `'a`.
unsafe fn pool_str<'a>(p: *const c_char) -> Option<&'a CStr> {
    // SAFETY: per the contract.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) })
}

/// The decoded, normalized path `<Location>` sections were matched against.
///
/// # Safety
/// `r` is a live request for the lifetime `'a`.
pub unsafe fn uri_path<'a>(r: *const sys::request_rec) -> Option<&'a CStr> {
    // SAFETY: live request; r->uri is a pool string or NULL.
    unsafe { pool_str((*r).uri) }
}

/// The query string as the client sent it (after `?`, still %-encoded);
/// `None` when the URL has none.
///
/// # Safety
/// `r` is a live request for the lifetime `'a`.
pub unsafe fn query<'a>(r: *const sys::request_rec) -> Option<&'a CStr> {
    // SAFETY: live request; r->args is a pool string or NULL.
    unsafe { pool_str((*r).args) }
}

/// The authenticated user (`r->user`), set by Apache's authentication.
///
/// # Safety
/// `r` is a live request for the lifetime `'a`.
pub unsafe fn user<'a>(r: *const sys::request_rec) -> Option<&'a CStr> {
    // SAFETY: live request.
    unsafe { pool_str((*r).user) }
}

/// The authentication scheme that set the user (`Basic`, `Digest`, ...).
///
/// # Safety
/// `r` is a live request for the lifetime `'a`.
pub unsafe fn auth_type<'a>(r: *const sys::request_rec) -> Option<&'a CStr> {
    // SAFETY: live request.
    unsafe { pool_str((*r).ap_auth_type) }
}

/// The client's address as mod_remoteip determined it (the peer's own
/// address when it is not loaded or does not apply).
///
/// # Safety
/// `r` is a live request for the lifetime `'a`.
pub unsafe fn remote_ip<'a>(r: *const sys::request_rec) -> Option<&'a CStr> {
    // SAFETY: live request; useragent_ip is set for every request, and the
    // connection's client_ip is the fallback should a module clear it.
    unsafe { pool_str((*r).useragent_ip).or_else(|| pool_str((*(*r).connection).client_ip)) }
}

/// The client's TCP port, to go with [`remote_ip`]; 0 when unknown (the
/// address came from a header such as `X-Forwarded-For`, which has none).
///
/// # Safety
/// `r` is a live request.
pub unsafe fn remote_port(r: *const sys::request_rec) -> u16 {
    // SAFETY: live request; the addresses are NULL or live pool objects.
    unsafe {
        let addr = if (*r).useragent_addr.is_null() {
            (*(*r).connection).client_addr
        } else {
            (*r).useragent_addr
        };
        addr.as_ref().map_or(0, |a| a.port)
    }
}

/// A variable of the request's environment (`subprocess_env`): what
/// `SetEnv`, `SetEnvIf`, `RewriteRule [E=]` and mod_ssl's `StdEnvVars` put
/// there.
///
/// # Safety
/// `r` is a live request for the lifetime `'a`, and nothing writes its
/// environment meanwhile (true once its handler runs).
pub unsafe fn env<'a>(r: *const sys::request_rec, name: &CStr) -> Option<&'a CStr> {
    // SAFETY: live request; apr_table_get only reads, and the value is a
    // pool string of the table's pool.
    unsafe { pool_str(sys::apr_table_get((*r).subprocess_env, name.as_ptr())) }
}

/// The `HTTP/x.y` version as `1000 * x + y` (1001, 2000).
///
/// # Safety
/// `r` is a live request.
pub unsafe fn proto_num(r: *const sys::request_rec) -> i32 {
    // SAFETY: live request.
    unsafe { (*r).proto_num }
}

/// mod_ssl's `ssl_is_https(conn_rec *)`; since httpd 2.4.50 the core
/// provides it for whichever module does TLS (and answers for the main
/// connection of an HTTP/2 stream).
type SslIsHttps = unsafe extern "C" fn(c: *mut sys::conn_rec) -> c_int;

/// Whether the request's connection is TLS.
///
/// # Safety
/// `r` is a live request.
pub unsafe fn is_tls(r: *const sys::request_rec) -> bool {
    let name = CString::new("ssl_is_https").expect("no NUL");
    // SAFETY: looking up an optional function has no preconditions.
    let Some(f) = (unsafe { sys::apr_dynamic_fn_retrieve(name.as_ptr()) }) else {
        // No TLS module at all.
        return false;
    };
    // SAFETY: whatever registered "ssl_is_https" registered it with this
    // signature (APR_DECLARE_OPTIONAL_FN in mod_ssl.h), and the connection
    // is live with its request.
    unsafe {
        let is_https: SslIsHttps = std::mem::transmute::<unsafe extern "C" fn(), SslIsHttps>(f);
        is_https((*r).connection) != 0
    }
}
