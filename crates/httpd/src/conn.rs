//! `Request<'r>` and `Conn<'c>`: a request and its connection, borrowed for
//! as long as the hook that received them runs. Each is made once, at the
//! hook edge, by an `unsafe` constructor whose contract is "this pointer is
//! live for `'r` and this thread is the one Apache gave it to"; everything
//! after that is safe. Neither is `Send`: Apache's request and connection
//! structures belong to the thread handling them.

use std::ffi::CStr;
use std::marker::PhantomData;
use std::os::raw::c_int;
use std::ptr::NonNull;

use crate::log::Source;
use crate::sys;
use crate::table::Table;

/// A request being handled on this thread.
#[derive(Clone, Copy)]
pub struct Request<'r> {
    raw: NonNull<sys::request_rec>,
    _life: PhantomData<&'r mut sys::request_rec>,
}

/// Why a request body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the limit.
    TooLarge,
    /// Apache refused the body before reading (this HTTP status: 411 for a
    /// body without a length, 400 for a bad chunked encoding, ...).
    Refused(c_int),
    /// Reading failed (the client went away or sent a broken body).
    Read,
}

impl<'r> Request<'r> {
    /// # Safety
    /// `r` is a live request for `'r`, handled on the calling thread, and
    /// nothing else uses it meanwhile except through this value (and its
    /// copies) and Apache's own calls made from here.
    pub unsafe fn from_raw(r: *mut sys::request_rec) -> Option<Request<'r>> {
        NonNull::new(r).map(|raw| Request {
            raw,
            _life: PhantomData,
        })
    }

    /// The raw request, for the plugin ABI's `request()` (which hands it to
    /// C plugins) and for the existing `unsafe` helpers.
    pub fn as_ptr(&self) -> *mut sys::request_rec {
        self.raw.as_ptr()
    }

    fn rec(&self) -> &'r sys::request_rec {
        // SAFETY: live for 'r (constructor contract).
        unsafe { &*self.raw.as_ptr() }
    }

    pub fn connection(&self) -> Conn<'r> {
        // SAFETY: a live request's connection outlives it, on the same thread.
        unsafe { Conn::from_raw(self.rec().connection) }.expect("a request has a connection")
    }

    pub fn headers_in(&self) -> Table<'r> {
        // SAFETY: live request.
        unsafe { crate::request::headers_in(self.raw.as_ptr()) }
    }

    pub fn headers_out(&self) -> Table<'r> {
        // SAFETY: live request.
        unsafe { crate::request::headers_out(self.raw.as_ptr()) }
    }

    /// The request's notes (what `%{name}n` logs).
    pub fn notes(&self) -> Table<'r> {
        // SAFETY: live request; its notes table lives with it.
        unsafe { Table::from_raw(self.rec().notes) }
    }

    /// Sets the response's content type.
    pub fn set_content_type(&self, content_type: &'static CStr) {
        // SAFETY: live request on its thread; the string is static.
        unsafe { sys::ap_set_content_type(self.raw.as_ptr(), content_type.as_ptr()) }
    }

    /// Writes response body bytes (through the request's filters); false if
    /// the client went away.
    pub fn write(&self, bytes: &[u8]) -> bool {
        // SAFETY: live request on its thread; ap_rwrite copies or passes
        // the bytes before returning.
        unsafe {
            sys::ap_rwrite(
                bytes.as_ptr().cast(),
                c_int::try_from(bytes.len()).unwrap_or(c_int::MAX),
                self.raw.as_ptr(),
            ) >= 0
        }
    }

    /// Whether this is a HEAD request (headers only).
    pub fn header_only(&self) -> bool {
        self.rec().header_only != 0
    }

    pub fn err_headers_out(&self) -> Table<'r> {
        // SAFETY: live request.
        unsafe { crate::request::err_headers_out(self.raw.as_ptr()) }
    }

    /// The decoded path (`r->uri`); "?" if it is not UTF-8.
    pub fn uri(&self) -> &'r str {
        // SAFETY: a pool string of the live request.
        unsafe { crate::cstr(self.rec().uri) }.unwrap_or("?")
    }

    /// The request target as the client sent it.
    pub fn unparsed_uri(&self) -> &'r str {
        // SAFETY: a pool string of the live request.
        unsafe { crate::cstr(self.rec().unparsed_uri) }.unwrap_or("/")
    }

    /// The module configuration of this request's directory for the module
    /// at `module`.
    ///
    /// # Safety
    /// `module` is a loaded module whose per-directory records are `T`s.
    pub unsafe fn dir_config<T>(&self, module: *const sys::module) -> Option<&'r T> {
        // SAFETY: live request; per the contract the slot holds a T or NULL,
        // which lives in a configuration pool that outlives the request.
        unsafe {
            sys::get_module_config(self.rec().per_dir_config, module)
                .cast::<T>()
                .as_ref()
        }
    }

    pub fn method(&self) -> &'r str {
        // SAFETY: a pool string of the live request.
        unsafe { crate::cstr(self.rec().method) }.unwrap_or("")
    }

    /// The handler name `SetHandler` chose, if any.
    pub fn handler(&self) -> Option<&'r str> {
        // SAFETY: NULL or a pool/static string.
        unsafe { crate::cstr(self.rec().handler) }
    }

    /// `HTTP/x.y` as `1000 * x + y`.
    pub fn proto_num(&self) -> i32 {
        self.rec().proto_num
    }

    pub fn scheme(&self) -> &'r str {
        // SAFETY: live request.
        unsafe { crate::request::scheme(self.raw.as_ptr()) }
    }

    pub fn default_port(&self) -> u16 {
        // SAFETY: live request.
        unsafe { crate::request::default_port(self.raw.as_ptr()) }
    }

    /// The server's `Timeout` for this request's virtual host: how long
    /// Apache's own I/O waits for a client.
    pub fn server_timeout(&self) -> std::time::Duration {
        // SAFETY: a live request's server record outlives it.
        let micros = unsafe { (*self.rec().server).timeout };
        std::time::Duration::from_micros(u64::try_from(micros).unwrap_or(0))
    }

    /// Whether no file exists where the URL maps (so a handler may answer it).
    pub fn maps_to_no_file(&self) -> bool {
        self.rec().finfo.filetype == sys::APR_NOFILE
    }

    /// Makes the 405 the handler is about to return say that POST is allowed.
    pub fn answer_allows_post(&self) {
        // SAFETY: live request on its thread.
        unsafe {
            let r = self.raw.as_ptr();
            (*r).allowed |= 1 << sys::M_POST;
            if let Some(methods) = (*r).allowed_methods.as_mut() {
                methods.method_mask |= 1 << sys::M_POST;
            }
        }
    }

    /// Reads the whole request body (chunked bodies are decoded), refusing
    /// it once it is longer than `limit` bytes: a `Content-Length` above the
    /// limit is refused before anything is read.
    pub fn read_body(&self, limit: usize) -> Result<Vec<u8>, BodyError> {
        let r = self.raw.as_ptr();
        // SAFETY: live request on its thread, in its handler.
        let status = unsafe { sys::ap_setup_client_block(r, sys::REQUEST_CHUNKED_DECHUNK as c_int) };
        if status != sys::OK as c_int {
            return Err(BodyError::Refused(status));
        }
        let declared = self.rec().remaining;
        if u64::try_from(declared).unwrap_or(0) > limit as u64 {
            return Err(BodyError::TooLarge);
        }
        let mut body = Vec::new();
        // SAFETY: as above, after ap_setup_client_block.
        if unsafe { sys::ap_should_client_block(r) } == 0 {
            return Ok(body);
        }
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // SAFETY: as above; Apache writes at most buf.len() bytes.
            let n = unsafe { sys::ap_get_client_block(r, buf.as_mut_ptr().cast(), buf.len() as _) };
            let Ok(n) = usize::try_from(n) else {
                return Err(BodyError::Read);
            };
            if n == 0 {
                return Ok(body);
            }
            if body.len() + n > limit {
                return Err(BodyError::TooLarge);
            }
            body.extend_from_slice(&buf[..n]);
        }
    }

    /// See [`crate::request::answer_allows_only_get`].
    pub fn answer_allows_only_get(&self) {
        // SAFETY: live request on its thread.
        unsafe { crate::request::answer_allows_only_get(self.raw.as_ptr()) }
    }

    /// Whether a message at `level` for module `module_index` would be logged.
    pub fn log_enabled(&self, module_index: c_int, level: c_int) -> bool {
        // SAFETY: live request.
        unsafe { crate::log::request_enabled(self.raw.as_ptr(), module_index, level) }
    }

    pub fn log(&self, module_index: c_int, level: c_int, source: Source, msg: &str) {
        // SAFETY: live request.
        unsafe { crate::log::request(self.raw.as_ptr(), module_index, level, 0, source, msg) }
    }

    /// Who the client is, as `crate::client` describes each value; the
    /// strings are the request's pool strings.
    pub fn client(&self) -> crate::client::Client<'r> {
        let r = self.raw.as_ptr();
        // SAFETY: live request for 'r (constructor contract).
        unsafe {
            crate::client::Client {
                uri_path: crate::client::uri_path(r),
                query: crate::client::query(r),
                remote_ip: crate::client::remote_ip(r),
                remote_port: crate::client::remote_port(r),
                user: crate::client::user(r),
                auth_type: crate::client::auth_type(r),
                is_tls: crate::client::is_tls(r),
                proto_num: crate::client::proto_num(r),
            }
        }
    }

    /// A variable of the request's environment (see [`crate::client::env`]).
    pub fn env(&self, name: &CStr) -> Option<&'r CStr> {
        // SAFETY: live request; its environment is no longer written once
        // the handler runs.
        unsafe { crate::client::env(self.raw.as_ptr(), name) }
    }

    /// Answers `101 Switching Protocols` with the response headers set so
    /// far (and `status_line` instead of the standard one), and makes the
    /// connection a tunnel for what follows: no keep-alive, no request
    /// timeouts, and the request's own filters bypassed so that nothing
    /// HTTP-shaped is written after the answer.
    pub fn switch_protocols(&self, status_line: Option<&'static CStr>) {
        let c = self.connection();
        // mod_reqtimeout would cut idle connections after its body timeout.
        c.input_filters().remove(c"reqtimeout");
        // mod_ssl's coalescing filter keeps small writes until a FLUSH or
        // more data: right for a response, a stall for a tunnel that writes
        // without FLUSHes (crate::io).
        c.output_filters().remove(c"SSL/TLS Coalescing Filter");
        // SAFETY: we own the live request and its connection on this thread;
        // the status line is static.
        unsafe {
            let r = self.raw.as_ptr();
            let c = (*r).connection;
            (*c).keepalive = sys::AP_CONN_CLOSE;
            (*r).status = sys::HTTP_SWITCHING_PROTOCOLS as c_int;
            (*r).status_line = status_line.map_or(std::ptr::null(), CStr::as_ptr);
            sys::ap_send_interim_response(r, 1);
            (*r).output_filters = (*c).output_filters;
            (*r).proto_output_filters = (*c).output_filters;
            (*r).input_filters = (*c).input_filters;
            (*r).proto_input_filters = (*c).input_filters;
        }
    }
}

/// A connection handled on this thread.
#[derive(Clone, Copy)]
pub struct Conn<'c> {
    raw: NonNull<sys::conn_rec>,
    _life: PhantomData<&'c mut sys::conn_rec>,
}

impl<'c> Conn<'c> {
    /// # Safety
    /// `c` is a live connection for `'c`, handled on the calling thread.
    pub unsafe fn from_raw(c: *mut sys::conn_rec) -> Option<Conn<'c>> {
        NonNull::new(c).map(|raw| Conn {
            raw,
            _life: PhantomData,
        })
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::conn_rec {
        self.raw.as_ptr()
    }

    fn rec(&self) -> &'c sys::conn_rec {
        // SAFETY: live for 'c (constructor contract).
        unsafe { &*self.raw.as_ptr() }
    }

    /// The connection's pool, which lives as long as the connection.
    pub fn pool(&self) -> crate::pool::PoolRef<'c> {
        // SAFETY: the connection's pool is live for 'c.
        unsafe { crate::pool::PoolRef::from_raw(self.rec().pool) }
    }

    pub(crate) fn bucket_alloc(&self) -> *mut sys::apr_bucket_alloc_t {
        self.rec().bucket_alloc
    }

    /// Reads exactly `len` bytes, each read waiting up to the connection's
    /// timeout; `None` if the input ends first or stays empty for
    /// `max_reads` reads.
    pub fn read_exact(&self, len: usize, max_reads: usize) -> Option<Vec<u8>> {
        // SAFETY: a brigade in the live connection's pool and allocator, used
        // and dropped here on the connection's thread.
        let bb = unsafe { crate::brigade::Brigade::new(self.rec().pool, self.rec().bucket_alloc) };
        let mut out = Vec::with_capacity(len);
        for _ in 0..max_reads {
            if out.len() == len {
                break;
            }
            // SAFETY: the live input chain of this connection, on its thread.
            match unsafe { bb.read_blocking(self.input_filters().head(), len - out.len(), &mut out) } {
                crate::brigade::ReadOutcome::Data(_) | crate::brigade::ReadOutcome::WouldBlock => {}
                crate::brigade::ReadOutcome::Closed(_) => return None,
            }
        }
        (out.len() == len).then_some(out)
    }

    /// Whether a message at `level` for module `module_index` would be
    /// logged for this connection.
    pub fn log_enabled(&self, module_index: c_int, level: c_int) -> bool {
        // SAFETY: live connection.
        unsafe { crate::log::connection_enabled(self.raw.as_ptr(), module_index, level) }
    }

    /// Logs for this connection (a driver that runs outside a request).
    pub fn log(&self, module_index: c_int, level: c_int, source: Source, msg: &str) {
        // SAFETY: live connection.
        unsafe { crate::log::connection(self.raw.as_ptr(), module_index, level, source, msg) }
    }

    /// Whether the output filters hold data for later writing.
    pub fn data_in_output_filters(&self) -> bool {
        self.rec().data_in_output_filters != 0
    }

    /// A secondary connection (an HTTP/2 stream's) runs on top of another
    /// and has no socket of its own.
    pub fn is_secondary(&self) -> bool {
        !self.rec().master.is_null()
    }

    pub fn input_filters(&self) -> FilterChain<'c> {
        FilterChain {
            conn: *self,
            output: false,
        }
    }

    pub fn output_filters(&self) -> FilterChain<'c> {
        FilterChain {
            conn: *self,
            output: true,
        }
    }
}

/// One of a connection's filter chains, as a value to inspect and edit.
#[derive(Clone, Copy)]
pub struct FilterChain<'c> {
    conn: Conn<'c>,
    output: bool,
}

impl FilterChain<'_> {
    pub(crate) fn head(&self) -> *mut sys::ap_filter_t {
        let c = self.conn.rec();
        if self.output {
            c.output_filters
        } else {
            c.input_filters
        }
    }

    /// The filters' names, first to last.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        let mut f = self.head();
        // SAFETY: walking the live chain of a connection owned by this
        // thread; names are C strings that live as long as the filter
        // registrations.
        unsafe {
            while !f.is_null() {
                let frec = (*f).frec;
                names.push(if frec.is_null() || (*frec).name.is_null() {
                    String::from("?")
                } else {
                    CStr::from_ptr((*frec).name).to_string_lossy().into_owned()
                });
                f = (*f).next;
            }
        }
        names
    }

    /// Whether every filter is one of `known` (case-insensitively).
    pub fn all_in(&self, known: &[&str]) -> bool {
        self.names()
            .iter()
            .all(|name| known.iter().any(|k| k.eq_ignore_ascii_case(name)))
    }

    /// Calls the last filter of an output chain (the core's network filter)
    /// with no new data, so that it writes what it set aside without
    /// blocking (below its threshold).
    pub fn write_pending(&self) -> Result<(), sys::apr_status_t> {
        let mut f = self.head();
        if f.is_null() {
            return Ok(());
        }
        // SAFETY: walking the live output chain of a connection owned by
        // this thread; a NULL brigade is how the MPM asks the core output
        // filter to write what it holds (event.c's write completion).
        let rv = unsafe {
            while !(*f).next.is_null() {
                f = (*f).next;
            }
            match (*(*f).frec).filter_func.out_func {
                Some(out) => out(f, std::ptr::null_mut()),
                None => sys::APR_SUCCESS,
            }
        };
        if rv == sys::APR_SUCCESS {
            Ok(())
        } else {
            Err(rv)
        }
    }

    /// Removes the first filter called `name`, if present.
    pub fn remove(&self, name: &CStr) {
        // SAFETY: live connection owned by this thread; the call only
        // unlinks a filter.
        unsafe {
            if self.output {
                crate::version::remove_output_filter_byhandle(self.head(), name.as_ptr());
            } else {
                crate::version::remove_input_filter_byhandle(self.head(), name.as_ptr());
            }
        }
    }
}
