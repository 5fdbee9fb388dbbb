//! What the modules say when Apache reads its configuration: the module's
//! version and plugins, and warnings for mistakes that Apache accepts but
//! that make an endpoint fail every request (a plugin where the handler is
//! not `websocket-handler`, the handler without a plugin, a `Trusted`
//! origin check that trusts nobody).
//!
//! The checks read the configuration tree as written, so each warning can
//! name the file, line and section. They follow how Apache merges
//! sections closely enough for these mistakes: the server's and the
//! virtual host's own settings, then every `<Location>` whose path is a
//! prefix of the section's (every `<Directory>` above it, for
//! directories), in Apache's order; other sections (`<LocationMatch>`,
//! `<Files>`, `<If>`...) on top of their enclosing section or the server.
//! What a section inside another sets (an `<If>` that sets the handler)
//! silences the warning about the outer one, since it may apply; and
//! `.htaccess` files are not read, so what they set is not seen.

use std::ffi::CStr;
use std::os::raw::c_int;

use httpd::log::{APLOG_CRIT, APLOG_DEBUG, APLOG_NOTICE, APLOG_STARTUP, APLOG_WARNING};
use httpd::server::{self, ConfigHook, Directive};
use httpd::sys;

use crate::config::SERVER_LOCATION;
use crate::metrics;

/// The version and the commit the modules were built from (see build.rs),
/// as one string so that `strings mod_websocket.so` finds it too.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("WEBSOCKET_BUILD"), ")");

const HANDLER: &str = "websocket-handler";

/// The settings the checks follow, as one section or server writes them.
#[derive(Debug, Default, Clone)]
struct Settings {
    handler: Option<String>,
    plugin: Option<(String, String)>,
    origin_check: Option<String>,
    trusted_origins: bool,
}

impl Settings {
    fn apply(&mut self, own: &Settings) {
        if own.handler.is_some() {
            self.handler.clone_from(&own.handler);
        }
        if own.plugin.is_some() {
            self.plugin.clone_from(&own.plugin);
        }
        if own.origin_check.is_some() {
            self.origin_check.clone_from(&own.origin_check);
        }
        self.trusted_origins |= own.trusted_origins;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Location,
    Directory,
    /// Matched some other way (regular expressions, file names, <If>).
    Other,
}

/// Sections that scope settings; other containers (`<Limit>`,
/// `<RequireAll>`...) belong to the section around them.
const SECTIONS: &[&str] = &[
    "Location",
    "LocationMatch",
    "Directory",
    "DirectoryMatch",
    "Files",
    "FilesMatch",
    "If",
    "ElseIf",
    "Else",
    "Proxy",
    "ProxyMatch",
];

#[derive(Debug)]
struct Section {
    kind: Kind,
    /// As written: `<Location /echo>`.
    title: String,
    path: String,
    file: String,
    line: u32,
    /// 0: the main server; then each `<VirtualHost>`.
    scope: usize,
    parent: Option<usize>,
    own: Settings,
}

impl Section {
    fn at(&self) -> String {
        format!("{}:{}: {}", self.file, self.line, self.title)
    }
}

fn is_section(d: &Directive) -> bool {
    SECTIONS.iter().any(|k| d.is_section(k)) || d.is_section("VirtualHost")
}

/// The settings written directly in `nodes` (and in containers that are
/// not sections of their own).
fn own_settings(nodes: &[Directive]) -> Settings {
    let mut s = Settings::default();
    for d in nodes {
        if is_section(d) {
            continue;
        }
        if d.name.starts_with('<') {
            s.apply(&own_settings(&d.children));
            continue;
        }
        let words = d.words();
        let name = d.name.to_ascii_lowercase();
        match name.as_str() {
            "sethandler" => s.handler = words.first().cloned(),
            "websockethandler" => {
                if let [library, init, ..] = words.as_slice() {
                    s.plugin = Some((library.clone(), init.clone()));
                }
            }
            "websocketorigincheck" => s.origin_check = words.first().map(|w| w.to_ascii_lowercase()),
            "websockettrustedorigin" => s.trusted_origins |= !words.is_empty(),
            _ => {}
        }
    }
    s
}

struct Config {
    /// The main server's own settings, then each virtual host's.
    scopes: Vec<Settings>,
    sections: Vec<Section>,
}

impl Config {
    fn read(tree: &[Directive]) -> Config {
        let mut c = Config {
            scopes: vec![own_settings(tree)],
            sections: Vec::new(),
        };
        c.collect(tree, 0, None);
        c
    }

    fn collect(&mut self, nodes: &[Directive], scope: usize, parent: Option<usize>) {
        for d in nodes {
            if d.is_section("VirtualHost") {
                self.scopes.push(own_settings(&d.children));
                let vhost = self.scopes.len() - 1;
                self.collect(&d.children, vhost, None);
            } else if is_section(d) {
                let words = d.words();
                let regex = words.first().is_some_and(|w| w == "~");
                let kind = if regex || parent.is_some() {
                    Kind::Other
                } else if d.is_section("Location") {
                    Kind::Location
                } else if d.is_section("Directory") {
                    Kind::Directory
                } else {
                    Kind::Other
                };
                self.sections.push(Section {
                    kind,
                    title: format!("{} {}>", d.name, d.args),
                    path: words.first().cloned().unwrap_or_default(),
                    file: d.file.clone(),
                    line: d.line,
                    scope,
                    parent,
                    own: own_settings(&d.children),
                });
                let me = self.sections.len() - 1;
                self.collect(&d.children, scope, Some(me));
            } else if d.name.starts_with('<') {
                self.collect(&d.children, scope, parent);
            }
        }
    }

    /// What is in effect for requests to section `i`'s own path.
    fn effective(&self, i: usize) -> Settings {
        let sec = &self.sections[i];
        if let Some(p) = sec.parent {
            let mut e = self.effective(p);
            e.apply(&sec.own);
            return e;
        }
        let mut e = self.scopes[0].clone();
        if sec.scope != 0 {
            e.apply(&self.scopes[sec.scope]);
        }
        if sec.kind == Kind::Other {
            e.apply(&sec.own);
            return e;
        }
        // The main server's sections apply to every virtual host, first.
        let mut matching: Vec<(usize, bool, usize)> = self
            .sections
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind == sec.kind && s.parent.is_none())
            .filter(|(_, s)| s.scope == 0 || s.scope == sec.scope)
            .filter(|(_, s)| match sec.kind {
                Kind::Location => location_covers(&s.path, &sec.path),
                _ => directory_covers(&s.path, &sec.path),
            })
            .map(|(j, s)| {
                // Apache sorts directories by depth, shallow first.
                let depth = if sec.kind == Kind::Directory {
                    s.path.trim_end_matches('/').matches('/').count()
                } else {
                    0
                };
                (depth, s.scope != 0, j)
            })
            .collect();
        matching.sort_unstable();
        for (_, _, j) in matching {
            e.apply(&self.sections[j].own);
        }
        e
    }
}

impl Config {
    /// Whether a section inside section `i` (an `<If>`, a `<Files>`) sets
    /// what `wanted` looks for: then it may be in effect for some of `i`'s
    /// requests, and a warning about `i` would be wrong.
    fn inside_sets(&self, i: usize, wanted: impl Fn(&Settings) -> bool) -> bool {
        self.sections.iter().enumerate().any(|(j, s)| {
            let mut parent = s.parent;
            while let Some(p) = parent {
                if p == i {
                    return j != i && wanted(&s.own);
                }
                parent = self.sections[p].parent;
            }
            false
        })
    }
}

/// Whether `<Location prefix>` applies to requests for `path`.
fn location_covers(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
}

/// Whether `<Directory dir>` applies to the directory `path`.
fn directory_covers(dir: &str, path: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    let path = path.trim_end_matches('/');
    dir.is_empty() || path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// The warnings for a configuration tree, each naming where and what.
pub fn warnings(tree: &[Directive]) -> Vec<String> {
    let config = Config::read(tree);
    let mut out = Vec::new();
    for (i, sec) in config.sections.iter().enumerate() {
        let e = config.effective(i);
        let own_endpoint = sec.own.handler.as_deref() == Some(HANDLER);
        let handler_inside = config.inside_sets(i, |s| s.handler.as_deref() == Some(HANDLER));
        if sec.own.plugin.is_some() && !handler_inside {
            match e.handler.as_deref() {
                Some(HANDLER) => {}
                Some(other) => out.push(format!(
                    "{}: WebSocketHandler is set, but the handler in effect is \"{other}\", not \
                     {HANDLER}: mod_websocket never sees these requests (clients get 404); \
                     write SetHandler {HANDLER}",
                    sec.at()
                )),
                None => out.push(format!(
                    "{}: WebSocketHandler is set, but no SetHandler {HANDLER} is in effect: \
                     mod_websocket never sees these requests (clients get 404)",
                    sec.at()
                )),
            }
        }
        if own_endpoint && e.plugin.is_none() && !config.inside_sets(i, |s| s.plugin.is_some()) {
            out.push(format!(
                "{}: SetHandler {HANDLER}, but no WebSocketHandler is in effect: every \
                 handshake gets 500",
                sec.at()
            ));
        }
        let checks_origins = own_endpoint || sec.own.origin_check.is_some();
        if checks_origins && e.origin_check.as_deref() == Some("trusted") && !e.trusted_origins {
            out.push(format!(
                "{}: WebSocketOriginCheck Trusted, but no WebSocketTrustedOrigin is in \
                 effect: every browser's handshake gets 403",
                sec.at()
            ));
        }
    }
    out
}

/// The plugins the configuration names: (library as resolved, init function, where).
fn plugins(tree: &[Directive]) -> Vec<(String, String, String)> {
    let config = Config::read(tree);
    let mut out = Vec::new();
    for (scope, s) in config.scopes.iter().enumerate() {
        if let Some((library, init)) = &s.plugin {
            let at = if scope == 0 {
                "the server"
            } else {
                "a virtual host"
            };
            out.push((library.clone(), init.clone(), at.to_owned()));
        }
    }
    for sec in &config.sections {
        if let Some((library, init)) = &sec.own.plugin {
            out.push((library.clone(), init.clone(), sec.at()));
        }
    }
    out
}

/// The process pool key of the shared counters (a new layout needs a new key).
const METRICS_KEY: &std::ffi::CStr = c"mod_websocket metrics table v1";

/// Where `WebSocketHandler` lines are, as the metrics name locations: a
/// section's path, or [`SERVER_LOCATION`] outside any section.
fn handler_locations(tree: &[Directive]) -> Vec<String> {
    let config = Config::read(tree);
    let mut out: Vec<String> = Vec::new();
    if config.scopes.iter().any(|s| s.plugin.is_some()) {
        out.push(SERVER_LOCATION.to_owned());
    }
    for sec in &config.sections {
        if sec.own.plugin.is_some() && !out.contains(&sec.path) {
            out.push(sec.path.clone());
        }
    }
    out
}

/// Whether this module checks the configuration: mod_websocket does, and
/// mod_websocket_draft76 when it is loaded alone (they read the same
/// directives, so one set of warnings is enough).
fn checks_configuration(source_name: &CStr) -> bool {
    source_name == c"mod_websocket.c" || !server::module_loaded(c"mod_websocket.c")
}

/// `mod_websocket 0.1.0 (git abc123)`.
fn identity(source_name: &CStr) -> String {
    let name = source_name.to_str().unwrap_or("mod_websocket");
    format!("{} {VERSION}", name.trim_end_matches(".c"))
}

/// The pre_config hook: refuses to start in an httpd older than the
/// modules need ([`httpd::version::MINIMUM`]), saying so on stderr, where
/// `apachectl configtest` and a failed start show it. The modules import
/// nothing newer than httpd 2.4.0, so an older 2.4 loads them and gets here.
pub fn pre_config(_hook: &ConfigHook<'_>, module_index: c_int, source_name: &CStr) -> c_int {
    crate::channels::reset();
    let name = source_name
        .to_str()
        .unwrap_or("mod_websocket")
        .trim_end_matches(".c");
    let version = httpd::version::running();
    match httpd::version::require(name, httpd::version::MINIMUM, version) {
        Ok(()) => sys::OK,
        Err(message) => {
            httpd::log::startup(module_index, APLOG_STARTUP | APLOG_CRIT, httpd::here!(), &message);
            sys::HTTP_INTERNAL_SERVER_ERROR
        }
    }
}

/// The check_config hook: under `apachectl configtest`, print the warnings
/// (Apache's stderr is what the command shows).
pub fn check_config(hook: &ConfigHook<'_>, module_index: c_int, source_name: &CStr) -> c_int {
    if server::is_config_test() && checks_configuration(source_name) {
        for w in warnings(&hook.tree()) {
            httpd::log::startup(module_index, APLOG_WARNING, httpd::here!(), &w);
        }
    }
    sys::OK
}

/// The post_config hook: once per configuration that is going to serve,
/// the module's version and plugins and the warnings, in the error log.
pub fn post_config(hook: &ConfigHook<'_>, module_index: c_int, source_name: &CStr) -> c_int {
    if server::is_trial_pass() {
        return sys::OK;
    }
    // Logged for the main server, or to stderr if Apache gave none.
    let log = |level: c_int, source: httpd::log::Source, msg: &str| match hook.server() {
        Some(s) => s.log(module_index, level, source, msg),
        None => httpd::log::startup(module_index, level, source, msg),
    };
    let tree = hook.tree();
    // The counters every child shares, kept across restarts; each module
    // finds the same table.
    match hook
        .server()
        .and_then(|server| httpd::shm::process_counters(server, METRICS_KEY, metrics::WORDS))
    {
        Some(words) => metrics::install(words, &handler_locations(&tree)),
        None => log(
            APLOG_WARNING,
            httpd::here!(),
            "no shared memory for the WebSocket counters: server-status and websocket-metrics show none",
        ),
    }
    match crate::channels::install(hook.server(), crate::channels::error_log(module_index)) {
        Ok(line) => log(APLOG_DEBUG, httpd::here!(), &line),
        Err(warning) => log(APLOG_WARNING, httpd::here!(), &warning),
    }
    let found = plugins(&tree);
    let list: Vec<String> = found
        .iter()
        .map(|(library, init, _)| {
            let path = hook.server_root_relative(library);
            format!("{} ({init})", path.display())
        })
        .collect();
    let mut unique = list.clone();
    unique.sort();
    unique.dedup();
    let message = if unique.is_empty() {
        format!("{} loaded; no WebSocketHandler configured", identity(source_name))
    } else {
        format!("{} loaded; plugins: {}", identity(source_name), unique.join(", "))
    };
    // Notices are always logged.
    log(APLOG_NOTICE, httpd::here!(), &message);
    for ((_, _, at), plugin) in found.iter().zip(&list) {
        log(APLOG_DEBUG, httpd::here!(), &format!("{at}: plugin {plugin}"));
    }
    if checks_configuration(source_name) {
        for w in warnings(&tree) {
            log(APLOG_WARNING, httpd::here!(), &w);
        }
    }
    sys::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree from indented text: `<Name args>` opens a section, `</Name>`
    /// closes it; the line numbers are the text's.
    fn tree(text: &str) -> Vec<Directive> {
        fn parse(
            lines: &mut std::iter::Peekable<std::iter::Enumerate<std::str::Lines<'_>>>,
        ) -> Vec<Directive> {
            let mut out = Vec::new();
            while let Some((i, line)) = lines.next() {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                if line.starts_with("</") {
                    return out;
                }
                let (name, args) = line.split_once(' ').unwrap_or((line, ""));
                let mut d = Directive {
                    name: name.to_owned(),
                    args: args.trim_end_matches('>').to_owned(),
                    file: "t.conf".into(),
                    line: i as u32 + 1,
                    children: Vec::new(),
                };
                if name.starts_with('<') {
                    d.children = parse(lines);
                }
                out.push(d);
            }
            out
        }
        parse(&mut text.lines().enumerate().peekable())
    }

    fn warn(text: &str) -> Vec<String> {
        warnings(&tree(text))
    }

    #[test]
    fn a_correct_endpoint_has_no_warning() {
        assert!(warn(
            "<Location /echo>\n SetHandler websocket-handler\n WebSocketHandler e.so echo_init\n</Location>"
        )
        .is_empty());
        // A plugin for the whole server, the handler in a location.
        assert!(warn(
            "WebSocketHandler e.so echo_init\n<Location /echo>\n SetHandler websocket-handler\n</Location>"
        )
        .is_empty());
        // Nested locations inherit the handler and the plugin.
        assert!(warn(
            "<Location /nest>\n SetHandler websocket-handler\n WebSocketHandler e.so echo_init\n</Location>\n\
             <Location /nest/open>\n WebSocketOriginCheck Off\n</Location>"
        )
        .is_empty());
    }

    #[test]
    fn plugin_without_the_handler() {
        let w = warn("<VirtualHost *:80>\n<Location /echo>\n WebSocketHandler e.so echo_init\n</Location>\n</VirtualHost>");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("t.conf:2: <Location /echo>: WebSocketHandler is set"),
            "{w:?}"
        );
        assert!(w[0].contains("no SetHandler websocket-handler"), "{w:?}");
        let w = warn(
            "<Location /echo>\n SetHandler websocket_handler\n WebSocketHandler e.so echo_init\n</Location>",
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("the handler in effect is \"websocket_handler\""),
            "{w:?}"
        );
    }

    #[test]
    fn handler_without_a_plugin() {
        let w = warn("<Directory /srv/ws>\n SetHandler websocket-handler\n</Directory>");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("<Directory /srv/ws>: SetHandler websocket-handler, but no WebSocketHandler"),
            "{w:?}"
        );
        // A plugin on a parent directory is inherited.
        assert!(warn(
            "<Directory /srv>\n WebSocketHandler e.so echo_init\n SetHandler websocket-handler\n</Directory>\n\
             <Directory /srv/ws>\n SetHandler websocket-handler\n</Directory>"
        )
        .is_empty());
        // A virtual host's plugin does not reach another virtual host.
        let w = warn(
            "<VirtualHost a:80>\n WebSocketHandler e.so echo_init\n</VirtualHost>\n\
             <VirtualHost b:80>\n<Location /ws>\n SetHandler websocket-handler\n</Location>\n</VirtualHost>",
        );
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn trusted_without_origins() {
        let endpoint =
            "SetHandler websocket-handler\n WebSocketHandler e.so echo_init\n WebSocketOriginCheck Trusted";
        let w = warn(&format!("<Location /ws>\n {endpoint}\n</Location>"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("<Location /ws>: WebSocketOriginCheck Trusted, but no WebSocketTrustedOrigin"),
            "{w:?}"
        );
        assert!(warn(&format!(
            "<Location /ws>\n {endpoint}\n WebSocketTrustedOrigin https://app.example\n</Location>"
        ))
        .is_empty());
        // Origins given for the whole server count.
        assert!(warn(&format!(
            "WebSocketTrustedOrigin https://app.example\n<Location /ws>\n {endpoint}\n</Location>"
        ))
        .is_empty());
        // Trusted for the server, inherited by an endpoint.
        let w = warn(
            "WebSocketOriginCheck trusted\n<Location /ws>\n SetHandler websocket-handler\n \
             WebSocketHandler e.so echo_init\n</Location>",
        );
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn conditional_sections_inside_are_not_second_guessed() {
        assert!(warn(
            "<Location /ws>\n WebSocketHandler e.so echo_init\n<If \"-n %{HTTP:Upgrade}\">\n \
             SetHandler websocket-handler\n</If>\n</Location>"
        )
        .is_empty());
        assert!(warn(
            "<Location /ws>\n SetHandler websocket-handler\n<If \"true\">\n \
             WebSocketHandler e.so echo_init\n</If>\n</Location>"
        )
        .is_empty());
    }

    #[test]
    fn containers_that_are_not_sections_belong_to_their_section() {
        assert!(warn(
            "<Location /ws>\n<RequireAll>\n SetHandler websocket-handler\n</RequireAll>\n \
             WebSocketHandler e.so echo_init\n</Location>"
        )
        .is_empty());
    }

    #[test]
    fn plugins_are_listed_with_their_section() {
        let p = plugins(&tree(
            "<Location /echo>\n SetHandler websocket-handler\n WebSocketHandler \"/x/e.so\" echo_init\n</Location>",
        ));
        assert_eq!(
            p,
            [(
                "/x/e.so".to_owned(),
                "echo_init".to_owned(),
                "t.conf:1: <Location /echo>".to_owned()
            )]
        );
    }

    #[test]
    fn coverage() {
        assert!(location_covers("/nest", "/nest/open"));
        assert!(!location_covers("/nest/open", "/nest"));
        assert!(directory_covers("/srv/", "/srv/ws"));
        assert!(!directory_covers("/srv", "/srvx"));
        assert!(directory_covers("/", "/srv"));
    }
}
