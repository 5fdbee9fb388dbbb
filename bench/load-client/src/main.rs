//! `bench-load-client`: one benchmark case against one server; prints one
//! JSON object on stdout (see the library docs).

use std::time::Duration;

use bench_load_client::fanout::FanoutOptions;
use bench_load_client::payload::Content;
use bench_load_client::scale::ScaleOptions;
use bench_load_client::{run, Options};

const USAGE: &str = "\
usage: bench-load-client --addr 127.0.0.1:PORT [--path /echo] [--raw | --h2]
           [--size BYTES] [--conns N] [--inflight N] [--content binary|text|compressible]
           [--deflate] [--warmup SECONDS] [--seconds SECONDS] [--server-pgid PGID]...
           [--idle]
       bench-load-client fanout --subscribers N --sub-addr 127.0.0.1:PORT
           [--pub-addr 127.0.0.1:PORT] [--path /ch] [--rate PER_SECOND] [--seconds SECONDS]
           [--window N]
       bench-load-client scale --ws-addr 127.0.0.1:PORT --http-addr 127.0.0.1:PORT
           --conns N [--tls CA.pem] [--increments N] [--gets N] [--tick-seconds S]
           [--echo-path /echo] [--increment-path /dumb-increment] [--get-path /index.html]
           [--batch N] [--server-pgid PGID]... [--keepalive-path /index.html]
           (--keepalive-path: the idle connections are HTTP keep-alive ones that
           each GET this path once; no echoes, no dumb-increment;
           --ws-addr A,B,...: further ports of the same server, towards which
           helper processes hold the connections one process cannot)
       bench-load-client scale-hold --ws-addr 127.0.0.1:PORT --conns N [--seed N]
           [--tls CA.pem] [--echo-path /echo] [--batch N] [--keepalive-path P]
           (a helper of scale: reports, echoes at each 'echo' line on stdin,
           ends with stdin)
";

/// The scale options, and the seed (`--seed`, numbering a helper's
/// connections after those of the others).
fn parse_scale(args: &[String]) -> Result<(ScaleOptions, u64), String> {
    let mut seed = 1;
    let mut o = ScaleOptions {
        ws_addr: ([127, 0, 0, 1], 80).into(),
        more_ws_addrs: Vec::new(),
        tls: None,
        http_addr: ([127, 0, 0, 1], 80).into(),
        conns: 1000,
        echo_path: "/echo".into(),
        increment_path: "/dumb-increment".into(),
        increments: 0,
        get_path: "/index.html".into(),
        gets: 300,
        tick_window: Duration::from_secs(5),
        server_pgids: Vec::new(),
        batch: 200,
        keepalive_path: None,
    };
    for (a, v) in flag_values(args)? {
        let addr = || address(a, v);
        let int = || count(a, v).map(|n| n as usize);
        match a {
            "--ws-addr" => {
                let mut all = v.split(',').map(|one| address(a, one));
                o.ws_addr = all.next().expect("split yields one")?;
                o.more_ws_addrs = all.collect::<Result<_, _>>()?;
            }
            "--seed" => seed = count(a, v)?,
            "--http-addr" => o.http_addr = addr()?,
            "--tls" => o.tls = Some(v.into()),
            "--conns" => o.conns = int()?,
            "--increments" => o.increments = int()?,
            "--gets" => o.gets = int()?,
            "--batch" => o.batch = int()?.max(1),
            "--echo-path" => o.echo_path = v.to_owned(),
            "--increment-path" => o.increment_path = v.to_owned(),
            "--get-path" => o.get_path = v.to_owned(),
            "--keepalive-path" => o.keepalive_path = Some(v.to_owned()),
            "--tick-seconds" => {
                o.tick_window =
                    Duration::from_secs_f64(v.parse::<f64>().map_err(|_| format!("{a}: not a number: {v}"))?)
            }
            "--server-pgid" => {
                for p in v.split(',') {
                    o.server_pgids
                        .push(p.parse().map_err(|_| format!("--server-pgid: not a pid: {p}"))?);
                }
            }
            other => return Err(format!("unexpected argument '{other}'\n{USAGE}")),
        }
    }
    Ok((o, seed))
}

/// The `--flag value` pairs of a subcommand's arguments.
fn flag_values(args: &[String]) -> Result<Vec<(&str, &str)>, String> {
    args.chunks(2)
        .map(|pair| match pair {
            [flag, value] => Ok((flag.as_str(), value.as_str())),
            [flag] => Err(format!("{flag} needs a value\n{USAGE}")),
            _ => unreachable!("chunks of two"),
        })
        .collect()
}

fn address(flag: &str, v: &str) -> Result<std::net::SocketAddr, String> {
    v.parse().map_err(|_| format!("{flag}: not an address: {v}"))
}

fn count(flag: &str, v: &str) -> Result<u64, String> {
    v.parse().map_err(|_| format!("{flag}: not a count: {v}"))
}

fn parse_fanout(args: &[String]) -> Result<FanoutOptions, String> {
    let mut o = FanoutOptions {
        subscribers: 1000,
        sub_addr: ([127, 0, 0, 1], 80).into(),
        pub_addr: ([127, 0, 0, 1], 80).into(),
        path: "/ch".into(),
        rate: None,
        duration: Duration::from_secs(5),
        window: 4,
    };
    let mut pub_addr = None;
    for (a, v) in flag_values(args)? {
        let addr = || address(a, v);
        let int = || count(a, v);
        match a {
            "--subscribers" => o.subscribers = int()? as usize,
            "--sub-addr" => o.sub_addr = addr()?,
            "--pub-addr" => pub_addr = Some(addr()?),
            "--path" => o.path = v.to_owned(),
            "--rate" => o.rate = Some(int()? as u32),
            "--seconds" => o.duration = Duration::from_secs(int()?),
            "--window" => o.window = int()?.max(1),
            other => return Err(format!("unexpected argument '{other}'\n{USAGE}")),
        }
    }
    o.pub_addr = pub_addr.unwrap_or(o.sub_addr);
    Ok(o)
}

/// Thousands of connections need more descriptors than the usual soft limit.
fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the local struct only.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

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
            "--h2" => o.h2 = true,
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
    raise_descriptor_limit();
    let result = if args.first().map(String::as_str) == Some("fanout") {
        parse_fanout(&args[1..]).and_then(|o| bench_load_client::fanout::run(&o))
    } else if args.first().map(String::as_str) == Some("scale") {
        parse_scale(&args[1..]).and_then(|(o, _)| bench_load_client::scale::run(&o))
    } else if args.first().map(String::as_str) == Some("scale-hold") {
        // It reports as it goes, on standard output.
        if let Err(e) = parse_scale(&args[1..]).and_then(|(o, seed)| bench_load_client::scale::hold(&o, seed))
        {
            eprintln!("bench-load-client scale-hold: {e}");
            std::process::exit(1);
        }
        return;
    } else {
        parse(&args).and_then(|o| run(&o))
    };
    match result {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("bench-load-client: {e}");
            std::process::exit(1);
        }
    }
}
