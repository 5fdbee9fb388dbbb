//! `cargo xtask <command>`: the one entry point for building, running and
//! testing the modules (rust-analyzer style: plain Rust, no shell scripts).

use std::process::ExitCode;

mod demo;
mod deps;
mod stage;
mod test;
mod util;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build [--release]                 build the modules and plugins and stage them in target/apache/
  demo [--port N] [--mpm event|worker|prefork] [--release]
                                    build, then run Apache in the foreground on 127.0.0.1 with
                                    /echo, /dumb-increment and the example pages
  test [--quick]                    every test: unit, integration against a real Apache under the
                                    event, worker and prefork MPMs, and the Autobahn suite
                                    (--quick: skip Autobahn)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "build" => stage::cmd_build(rest),
        "demo" => demo::cmd_demo(rest),
        "test" => test::cmd_test(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command '{other}'\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
