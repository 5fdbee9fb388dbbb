//! Starts the real Apache under each MPM and fetches a static page.
//!
//! These need the `apache2` (or `httpd`) binary; without it they print why
//! and pass, so a machine without Apache can still run the unit tests. CI
//! installs Apache, so there they run.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use httpd_runner::{find_httpd, scratch_dir, Mpm, RunningServer, ServerConfig};

fn have_httpd() -> bool {
    if find_httpd().is_none() {
        eprintln!("SKIPPED: no apache2/httpd binary installed (Debian: apt-get install apache2)");
        return false;
    }
    true
}

/// A raw HTTP/1.1 GET; returns (status line, body).
fn get(server: &RunningServer, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        server.port()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.lines().next().unwrap_or_default().to_string();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn serve_static(mpm: Mpm) {
    if !have_httpd() {
        return;
    }
    let root = scratch_dir(&format!("serve-{mpm}"));
    let config = ServerConfig::new(&root).mpm(mpm);
    std::fs::create_dir_all(config.docroot()).unwrap();
    let page = format!("<p>hello from {mpm}</p>\n");
    std::fs::write(config.docroot().join("index.html"), &page).unwrap();

    let server = config.start().unwrap_or_else(|e| panic!("{mpm}: {e}"));
    assert!(server.url("/").starts_with("http://127.0.0.1:"));
    let (status, body) = get(&server, "/");
    assert_eq!(status, "HTTP/1.1 200 OK", "{}", server.logs());
    assert_eq!(body, page);
    let (status, _) = get(&server, "/missing.txt");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert!(server.access_log().contains("\"GET / HTTP/1.1\" 200"));

    let pid_file = server.config().pid_file();
    let port = server.port();
    assert!(pid_file.is_file());
    let status = server.stop().unwrap();
    assert!(status.success(), "clean stop: {status}");
    assert!(!pid_file.exists(), "pid file removed");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port released after stop"
    );
}

#[test]
fn serves_static_file_with_event_mpm() {
    serve_static(Mpm::Event);
}

#[test]
fn serves_static_file_with_worker_mpm() {
    serve_static(Mpm::Worker);
}

#[test]
fn serves_static_file_with_prefork_mpm() {
    serve_static(Mpm::Prefork);
}

#[test]
fn graceful_restart_picks_up_new_config() {
    if !have_httpd() {
        return;
    }
    let root = scratch_dir("graceful");
    let config = ServerConfig::new(&root);
    std::fs::create_dir_all(config.docroot().join("sub")).unwrap();
    std::fs::write(config.docroot().join("sub/index.html"), "sub\n").unwrap();
    let mut server = config.start().unwrap();
    let (status, _) = get(&server, "/aliased/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // Rewrite the configuration with a new block, then reload it.
    let docroot = server.config().docroot();
    let mut changed = server.config().clone().extra_config(&format!(
        "<IfModule !alias_module>\nLoadModule alias_module \"{}\"\n</IfModule>\nAlias /aliased \"{}\"",
        httpd_runner::Install::discover()
            .unwrap()
            .module_path("alias")
            .display(),
        docroot.join("sub").display()
    ));
    changed.write_config().unwrap();
    let pid = server.pid();
    server.graceful().unwrap();
    assert_eq!(server.pid(), pid, "same parent after graceful");
    assert!(server.is_running());
    let (status, body) = get(&server, "/aliased/");
    assert_eq!(status, "HTTP/1.1 200 OK", "{}", server.logs());
    assert_eq!(body, "sub\n");
}

#[test]
fn configtest_reports_errors() {
    if !have_httpd() {
        return;
    }
    let mut good = ServerConfig::new(scratch_dir("configtest-good"));
    let out = good.configtest().unwrap();
    assert!(out.contains("Syntax OK"), "{out}");

    let mut bad = ServerConfig::new(scratch_dir("configtest-bad")).extra_config("NoSuchDirective 1");
    let out = bad.configtest().unwrap_err();
    assert!(out.contains("NoSuchDirective"), "{out}");
}

#[test]
fn start_failure_carries_the_log() {
    if !have_httpd() {
        return;
    }
    let err = ServerConfig::new(scratch_dir("start-fail"))
        .extra_config("<Location />\n  Bogus on\n</Location>")
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("exited while starting"), "{err}");
    assert!(err.contains("Bogus"), "{err}");
}

#[test]
fn busy_fixed_port_is_an_error_not_a_hang() {
    if !have_httpd() {
        return;
    }
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let err = ServerConfig::new(scratch_dir("busy-port"))
        .port(port)
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("could not bind") || err.contains("in use"), "{err}");
}
