//! Generates the httpd/APR bindings from the installed headers.

use std::env;
use std::path::PathBuf;

use bindgen::callbacks::{IntKind, ParseCallbacks};

/// Functions the modules call, by exact name or small family.
const FUNCTIONS: &[&str] = &[
    // Hooks a module registers.
    "ap_hook_(handler|quick_handler|pre_config|check_config|post_config|child_init|child_stopping|pre_connection|process_connection|pre_close_connection|suspend_connection|resume_connection|fixups|insert_filter|insert_error_filter|post_read_request|translate_name|log_transaction)",
    // Module configuration.
    "ap_get_module_config",
    "ap_set_module_config",
    "ap_get_module_flags",
    "ap_set_(flag|string|int|file|iflag)_slot.*",
    "ap_check_cmd_context",
    "ap_server_root_relative",
    // The startup checks: the parsed configuration tree and the server's phase.
    "ap_state_query",
    "ap_find_linked_module",
    "ap_getword.*",
    "ap_get_token",
    "ap_find_token",
    "ap_find_last_token",
    "ap_get_list_item",
    "ap_find_list_item",
    "ap_cstr_casecmpn?",
    // Filters and brigades.
    "ap_get_brigade",
    "ap_pass_brigade",
    "ap_fflush",
    "ap_filter_flush",
    "ap_(add|remove)_(input|output)_filter.*",
    "ap_register_(input|output)_filter",
    // Requests and responses.
    "ap_send_interim_response",
    "ap_get_status_line",
    "ap_send_error_response",
    "ap_set_content_type",
    "ap_set_content_length",
    "ap_discard_request_body",
    "ap_(setup|should|get)_client_block",
    "ap_rputs",
    "ap_rwrite",
    "ap_rflush",
    "ap_is_initial_req",
    "ap_get_server_name.*",
    "ap_get_server_port",
    "ap_run_http_scheme",
    "ap_run_default_port",
    "ap_matches_request_vhost",
    "ap_construct_url",
    "ap_get_server_banner",
    "ap_get_server_revision",
    "ap_get_server_description",
    // Connections and the MPM.
    "ap_lingering_close",
    "ap_get_pollfd_from_conn",
    "ap_get_conn_socket",
    "ap_mpm_query",
    "ap_update_child_status.*",
    // Logging (the macros expand to these).
    "ap_log_(error|rerror|cerror|perror)_",
    // APR.
    "apr_initialize",
    "apr_terminate",
    "apr_bucket_.*",
    "apr_brigade_.*",
    "apr_pollset_.*",
    "apr_poll",
    "apr_pool_.*",
    "apr_allocator_.*",
    "apr_table_.*",
    "apr_socket_(timeout|opt)_(set|get)",
    "apr_socket_shutdown",
    "ap_create_request_config",
    "apr_os_sock_get",
    "apr_dynamic_fn_retrieve",
    "apr_optional_hook_add",
    "apr_pool_userdata_(get|set)",
    "apr_palloc",
    "apr_pcalloc",
    "apr_pmemdup",
    "apr_pstrn?dup",
    "apr_pstrcat",
    "apr_psprintf",
    "apr_strerror",
    "apr_time_now",
    "apr_sleep",
];

const TYPES: &[&str] = &[
    "request_rec",
    "conn_rec",
    "server_rec",
    "module",
    "module_struct",
    "command_rec",
    "command_struct",
    "cmd_func",
    "cmd_parms",
    "cmd_parms_struct",
    "cmd_how",
    "ap_conf_vector_t",
    "ap_filter_t",
    "ap_filter_rec_t",
    "ap_filter_type",
    "ap_input_mode_t",
    "ap_conn_keepalive_e",
    "conn_state_t",
    "conn_state_e",
    "conn_sense_e",
    "apr_shutdown_how_e",
    "apr_bucket",
    "apr_bucket_brigade",
    "apr_bucket_type_t",
    "apr_bucket_alloc_t",
    "apr_read_type_e",
    "apr_pollfd_t",
    "apr_pollset_t",
    "apr_pollset_method_e",
    "apr_datatype_e",
    "apr_socket_t",
    "apr_status_t",
    "apr_off_t",
    "apr_size_t",
    "apr_time_t",
    "apr_interval_time_t",
    "apr_port_t",
];

const VARS: &[&str] = &[
    "MODULE_MAGIC_(NUMBER_MAJOR|NUMBER_MINOR|COOKIE)",
    "OK",
    "DECLINED",
    "DONE",
    "SUSPENDED",
    "HTTP_[A-Z_0-9]+",
    "ap_bucket_type_eor",
    "M_[A-Z_]+",
    "REQUEST_(NO_BODY|CHUNKED_[A-Z]+)",
    "METHODS",
    "APR_SUCCESS",
    "APR_E[A-Z0-9_]+",
    "EWOULDBLOCK",
    "APR_TIMEUP",
    "APR_INCOMPLETE",
    "APR_OS_START_[A-Z]+",
    "APR_POLL[A-Z_]+",
    "APR_NO_DESC",
    "APR_HOOK_[A-Z_]+",
    "APR_BUCKET_BUFF_SIZE",
    "APR_USEC_PER_SEC",
    "APR_SO_[A-Z_]+",
    "APR_TCP_NODELAY",
    "APLOG_[A-Z_0-9]+",
    "RSRC_CONF",
    "ACCESS_CONF",
    "OR_[A-Z_]+",
    "NOT_IN_[A-Z_]+",
    "GLOBAL_ONLY",
    "AP_MPMQ_[A-Z_]+",
    "AP_FILTER_PROTO_[A-Z_]+",
    "AP_IOBUFSIZE",
    "SERVER_[A-Z_]+",
    "apr_bucket_type_[a-z_]+",
    "ap_server_root",
    "ap_server_conf",
    "ap_scoreboard_image",
    "AP_SQ_[A-Z_]+",
    "ap_max_mem_free",
];

/// Gives each macro constant the C type of the parameter or field it is used
/// with, so callers need no casts: APR's status codes are `apr_status_t`,
/// poll events `apr_int16_t`, pollset flags `apr_uint32_t`, sizes
/// `apr_size_t`, `APR_USEC_PER_SEC` an `apr_time_t`, the module cookie an
/// `unsigned long`, and everything else (HTTP statuses, hook results and
/// orders, log levels, override bits, method numbers) `int`. The default
/// would make every positive constant a `u32`. Enum members keep their
/// enum's typedef (see `EnumVariation::Consts` below).
#[derive(Debug)]
struct MacroTypes;

impl ParseCallbacks for MacroTypes {
    fn int_macro(&self, name: &str, _value: i64) -> Option<IntKind> {
        let custom = |name| {
            Some(IntKind::Custom {
                name,
                is_signed: true,
            })
        };
        if name == "MODULE_MAGIC_COOKIE" {
            Some(IntKind::ULong)
        } else if name.starts_with("APR_POLLSET_") {
            // apr_pollset_create's flags are an apr_uint32_t.
            Some(IntKind::Custom {
                name: "apr_uint32_t",
                is_signed: false,
            })
        } else if name.starts_with("APR_POLL") {
            // apr_pollfd_t's reqevents/rtnevents are apr_int16_t.
            custom("apr_int16_t")
        } else if name == "APR_SUCCESS"
            || name.starts_with("APR_E")
            || name.starts_with("APR_OS_START_")
            || name == "EWOULDBLOCK"
            || name == "APR_TIMEUP"
            || name == "APR_INCOMPLETE"
        {
            custom("apr_status_t")
        } else if name == "APR_USEC_PER_SEC" {
            custom("apr_time_t")
        } else if name == "APR_BUCKET_BUFF_SIZE" || name == "AP_IOBUFSIZE" {
            Some(IntKind::Custom {
                name: "apr_size_t",
                is_signed: false,
            })
        } else {
            // Status codes, log levels, override bits, hook orders, method
            // numbers: all `int` in the C API.
            Some(IntKind::Int)
        }
    }
}

fn main() {
    for var in apache_layout::ENV_VARS {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=build.rs");

    let target = env::var("TARGET").expect("cargo sets TARGET");
    let layout = match apache_layout::discover_for_target(&target) {
        Ok(layout) => layout,
        Err(e) => {
            // A panic message is the one place cargo reliably shows a build
            // script's explanation.
            panic!("httpd-sys: {e}");
        }
    };

    for dir in &layout.lib_dirs {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    // Windows DLLs must name the DLLs they import from; elsewhere the server
    // supplies every symbol when it loads the module.
    for lib in &layout.import_libs {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    let includes = env::join_paths(&layout.include_dirs).expect("include dirs join");
    println!("cargo:include={}", includes.to_string_lossy());
    if let Some(mmn) = &layout.mmn {
        println!("cargo:mmn={mmn}");
    }

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .rust_edition(bindgen::RustEdition::Edition2021)
        .parse_callbacks(Box::new(MacroTypes))
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        // C enums arrive from the server as plain ints; a Rust enum would be
        // UB on any value we did not list. Plain constants keep C's names.
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .derive_debug(true)
        .generate_comments(false)
        .merge_extern_blocks(true)
        .layout_tests(true);
    for dir in &layout.include_dirs {
        builder = builder.clang_arg(format!("-I{}", dir.display()));
    }
    if target.contains("linux") {
        // What `apr-1-config --cppflags` reports on Linux; _GNU_SOURCE
        // decides some of APR's typedefs.
        builder = builder.clang_args(["-DLINUX", "-D_REENTRANT", "-D_GNU_SOURCE"]);
    }
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for t in TYPES {
        builder = builder.allowlist_type(t);
    }
    for v in VARS {
        builder = builder.allowlist_var(v);
    }

    let bindings = builder
        .generate()
        .unwrap_or_else(|e| panic!("httpd-sys: bindgen failed on {:?}: {e}", layout.include_dirs));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");
}
