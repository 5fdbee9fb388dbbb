//! `cargo xtask demo`: Apache in the foreground with the module, the echo and
//! dumb-increment plugins, and their browser pages.

use crate::stage::{build, parse_mpm};
use crate::util::{check_args, flag, option, target_dir};

pub fn cmd_demo(args: &[String]) -> Result<(), String> {
    check_args(args, &["--release"], &["--port", "--mpm"])?;
    let port: u16 = match option(args, "--port")? {
        Some(p) => p
            .parse()
            .map_err(|_| format!("--port must be a port number, not '{p}'"))?,
        None => 8080,
    };
    let mpm = parse_mpm(option(args, "--mpm")?)?;
    crate::deps::ensure(&[crate::deps::BUILD, crate::deps::RUN])?;
    let stage = build(flag(args, "--release"))?;
    let index = stage.htdocs().join("index.html");
    std::fs::write(
        &index,
        "<!doctype html><meta charset=utf-8><title>mod_websocket demo</title>\n\
         <h1>mod_websocket demo</h1>\n<ul>\n<li><a href=\"client.html\">Echo client</a> (ws://&lt;host&gt;/echo)</li>\n\
         <li><a href=\"increment.html\">dumb-increment-protocol</a> (ws://&lt;host&gt;/dumb-increment)</li>\n</ul>\n",
    )
    .map_err(|e| format!("cannot write {}: {e}", index.display()))?;
    let root = target_dir().join("demo");
    let config = stage
        .server(&root, mpm)
        .port(port)
        .log_level("warn websocket:info")
        .extra_config("DirectoryIndex index.html\n");
    println!("mod_websocket demo ({mpm} MPM), Ctrl-C to stop:");
    println!("  http://127.0.0.1:{port}/                 index of the examples");
    println!("  http://127.0.0.1:{port}/client.html      echo client  -> ws://127.0.0.1:{port}/echo");
    println!(
        "  http://127.0.0.1:{port}/increment.html   counter      -> ws://127.0.0.1:{port}/dumb-increment"
    );
    let status = config.foreground().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("apache exited with {status}"))
    }
}
