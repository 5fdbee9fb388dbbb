//! `bench-load-client`: one benchmark case against one server; prints one
//! JSON object on stdout (see the library docs).

use std::time::Duration;

use bench_load_client::payload::Content;
use bench_load_client::{run, Options};

const USAGE: &str = "\
usage: bench-load-client --addr 127.0.0.1:PORT [--path /echo] [--raw]
           [--size BYTES] [--conns N] [--inflight N] [--content binary|text|compressible]
           [--deflate] [--warmup SECONDS] [--seconds SECONDS] [--server-pgid PGID]...
           [--idle]
";

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        let num = |v: &String| v.parse::<f64>().map_err(|_| format!("{a}: not a number: {v}"));
        let int = |v: &String| v.parse::<usize>().map_err(|_| format!("{a}: not a count: {v}"));
        match a.as_str() {
            "--addr" => {
                let v = value()?;
                o.addr = v.parse().map_err(|_| format!("--addr: not an address: {v}"))?;
            }
            "--path" => o.path = value()?.clone(),
            "--raw" => o.raw = true,
            "--size" => o.size = int(value()?)?,
            "--conns" => o.conns = int(value()?)?,
            "--inflight" => o.inflight = int(value()?)?,
            "--content" => {
                o.content = match value()?.as_str() {
                    "binary" => Content::Binary,
                    "text" => Content::MixedText,
                    "compressible" => Content::CompressibleText,
                    other => return Err(format!("--content: unknown '{other}'")),
                }
            }
            "--deflate" => o.deflate = true,
            "--warmup" => o.warmup = Duration::from_secs_f64(num(value()?)?),
            "--seconds" => o.duration = Duration::from_secs_f64(num(value()?)?),
            "--server-pgid" => {
                for p in value()?.split(',') {
                    o.server_pgids
                        .push(p.parse().map_err(|_| format!("--server-pgid: not a pid: {p}"))?);
                }
            }
            "--idle" => o.idle = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unexpected argument '{other}'\n{USAGE}")),
        }
    }
    Ok(o)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse(&args).and_then(|o| run(&o));
    match result {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("bench-load-client: {e}");
            std::process::exit(1);
        }
    }
}
