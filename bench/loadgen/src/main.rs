//! Load generator for the airport-realtime benchmarks. See bench/README.md and BENCHMARKS.md.
//!
//! ```text
//! loadgen bench --target NAME=ws://127.0.0.1:PORT[@PID] [--target ...] [--quick]
//!               [--only fanout,throughput,connect,burst,flood,forged,state,poll,reconnect,wake] [--stats URL] [--repeats N] [--cold N] [--fanout-n 100,500,1000]
//!               [--fanout-seconds 30] [--step-seconds 6] [--tp-max-single 2400]
//!               [--tp-max-multi 400] [--repeats 5]
//! loadgen idle --target NAME=ws://127.0.0.1:PORT[@PID] --stats URL [--seconds 185] [--sockets 20] [--busy]
//! loadgen native-server [--port 8790] [--max-seconds 3600]
//! ```
//!
//! The first `--target` is the service, the second the floor: every figure is printed for each
//! target and, with two, as the ratio first/second. `@PID` names the server process whose CPU
//! use is reported. Runs on one thread (a current-thread tokio runtime): pin it with taskset.

mod client;
mod meter;
mod native;
mod scenarios;

use scenarios::Target;

fn usage() -> ! {
    eprintln!(
        "usage: loadgen bench --target NAME=ws://127.0.0.1:PORT[@PID] [--target ...] [--quick] [--only fanout,throughput,connect,burst,flood,forged,state,poll,reconnect,wake] [--stats URL] [--repeats N] [--cold N]\n       loadgen idle --target NAME=ws://127.0.0.1:PORT[@PID] --stats URL [--seconds 185] [--sockets 20] [--busy]\n       loadgen native-server [--port 8790] [--max-seconds 3600]"
    );
    std::process::exit(2)
}

pub struct Args {
    pub targets: Vec<Target>,
    pub quick: bool,
    pub only: Vec<String>,
    pub stats: Option<String>,
    pub fanout_n: Vec<usize>,
    pub fanout_seconds: f64,
    pub step_seconds: f64,
    pub tp_max_single: f64,
    pub tp_max_multi: f64,
    pub seconds: f64,
    pub sockets: usize,
    /// `idle --busy`: the sockets behave as the deployed clients do at a busy airport.
    pub busy: bool,
    pub port: u16,
    pub max_seconds: u64,
    /// Throughput searches, bursts and 1,000-socket herds per target (alternating); medians are
    /// shown.
    /// Five: single searches here move by up to 2x, and with medians of three the batch ratio
    /// moved between 0.73x and 1.03x from run to run.
    pub repeats: usize,
    /// Connects per hibernated case of `connect` (5, `--quick` 2): each is an airport left to
    /// hibernate, so more cost populating, not waiting (they hibernate together).
    pub cold: Option<usize>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        targets: vec![],
        quick: false,
        only: vec![],
        stats: None,
        fanout_n: vec![100, 500, 1000],
        fanout_seconds: 30.0,
        step_seconds: 6.0,
        tp_max_single: 2400.0,
        tp_max_multi: 400.0,
        seconds: 185.0,
        sockets: 20,
        busy: false,
        port: 8790,
        max_seconds: 3600,
        repeats: 5,
        cold: None,
    };
    let mut it = args.iter();
    let num = |v: Option<&String>| -> Result<f64, String> {
        v.ok_or("missing value")?
            .parse::<f64>()
            .map_err(|e| e.to_string())
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--target" => a
                .targets
                .push(Target::parse(it.next().ok_or("missing target")?)?),
            "--quick" => a.quick = true,
            "--only" => {
                a.only = it
                    .next()
                    .ok_or("missing --only")?
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            }
            "--stats" => a.stats = Some(it.next().ok_or("missing --stats")?.clone()),
            "--fanout-n" => {
                a.fanout_n = it
                    .next()
                    .ok_or("missing --fanout-n")?
                    .split(',')
                    .map(|s| {
                        s.parse()
                            .map_err(|e: std::num::ParseIntError| e.to_string())
                    })
                    .collect::<Result<_, _>>()?
            }
            "--fanout-seconds" => a.fanout_seconds = num(it.next())?,
            "--step-seconds" => a.step_seconds = num(it.next())?,
            "--tp-max-single" => a.tp_max_single = num(it.next())?,
            "--tp-max-multi" => a.tp_max_multi = num(it.next())?,
            "--seconds" => a.seconds = num(it.next())?,
            "--sockets" => a.sockets = num(it.next())? as usize,
            "--busy" => a.busy = true,
            "--port" => a.port = num(it.next())? as u16,
            "--max-seconds" => a.max_seconds = num(it.next())? as u64,
            "--repeats" => a.repeats = (num(it.next())? as usize).max(1),
            "--cold" => a.cold = Some((num(it.next())? as usize).max(1)),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = argv.first().cloned() else {
        usage()
    };
    let args = match parse(&argv[1..]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            usage()
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&runtime, async move {
        match command.as_str() {
            "bench" if !args.targets.is_empty() => scenarios::bench(&args).await,
            "idle" if !args.targets.is_empty() && args.stats.is_some() => {
                scenarios::idle(&args).await
            }
            "native-server" => native::serve(args.port, args.max_seconds).await,
            _ => usage(),
        }
    });
    if let Err(e) = result {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}
