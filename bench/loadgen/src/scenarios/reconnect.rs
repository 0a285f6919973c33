//! A reconnect storm: observers of a 10,000-object airport, all dropped at once, reconnect
//! having missed 10 changes, with `resume` (docs/protocol.md §8: only what changed since their
//! `seq`) and without (the full state): the INITIAL_STATE's bytes and the server's CPU time per
//! reconnect. Before each storm the airport's object is left to hibernate, so that, as after a
//! restart, the storm's first reconnect finds it out of memory and it is constructed and loads
//! its rows again (the report counts the constructions). The service only: the floor keeps no
//! state.

use super::connect::loaded_count;
use super::report::{heading, ms, ratio, table};
use super::runs::{alternating, medians};
use super::{Target, fresh_airport, open_controller, populate, progress};
use crate::Args;
use crate::client::{Opened, close_all, open, open_resuming};
use crate::meter::CpuWindow;
use futures_util::{SinkExt, StreamExt};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 300;
const MISSED: usize = 10;
const KEY: &str = crate::client::OTHER_KEYS[0];

/// One storm: the INITIAL_STATE's bytes and the server's CPU ms, per reconnect, and how many
/// times the airport's object was constructed during it.
struct Storm {
    bytes: usize,
    cpu_ms: f64,
    constructions: Option<i64>,
}

/// Both storms on one airport.
struct Run {
    full: Storm,
    resumed: Storm,
}

/// `"name":` followed by a number or a string, in an INITIAL_STATE's tail.
fn member<'a>(tail: &'a str, name: &str) -> Option<&'a str> {
    let at = tail.rfind(&format!("\"{name}\":"))? + name.len() + 3;
    let rest = tail[at..].trim_start_matches('"');
    let end = rest.find(['"', ',', '}'])?;
    Some(&rest[..end])
}

/// After the airport's object has hibernated, `CLIENTS` connects at once (50 in flight), with
/// `resume` or without; then all closed.
async fn storm(
    t: &Target,
    airport: &str,
    resume: Option<&str>,
    stats: Option<&str>,
) -> Result<Storm, String> {
    progress("  waiting 15 s for the object to hibernate");
    tokio::time::sleep(Duration::from_secs(15)).await;
    let before = loaded_count(t, stats).await;
    let cpu = CpuWindow::start(t.pid);
    let t0 = Instant::now();
    let opened: Vec<Result<Opened, String>> = futures_util::stream::iter(0..CLIENTS)
        .map(|_| async move {
            let limit = Duration::from_secs(30);
            match resume {
                Some(resume) => open_resuming(&t.url, airport, KEY, resume, limit).await,
                None => open(&t.url, airport, KEY, limit).await,
            }
        })
        .buffered(50)
        .collect()
        .await;
    let cpu_s = cpu.stop().server.unwrap_or(f64::NAN) / 100.0 * t0.elapsed().as_secs_f64();
    let opened: Vec<Opened> = opened.into_iter().collect::<Result<_, _>>()?;
    let bytes = opened.iter().map(|o| o.initial_len).sum::<usize>() / CLIENTS;
    if let Some(first) = opened.first()
        && resume.is_some()
        && !is_resumed(first)
    {
        return Err(format!("not resumed: …{}", first.initial_tail));
    }
    let after = loaded_count(t, stats).await;
    close_all(opened.into_iter().map(|o| o.sink).collect(), vec![]).await;
    Ok(Storm {
        bytes,
        cpu_ms: cpu_s * 1000.0 / CLIENTS as f64,
        constructions: after.zip(before).map(|(a, b)| a - b),
    })
}

/// A replica of `airport` taken now (an INITIAL_STATE asked for with `resume=`), as its
/// `resume` value, after which `controller` makes `MISSED` changes it misses.
pub(super) async fn replica_missing_changes(
    t: &Target,
    airport: &str,
    controller: &mut Opened,
) -> Result<String, String> {
    let taken = open_resuming(&t.url, airport, KEY, "", Duration::from_secs(30)).await?;
    let tail = &taken.initial_tail;
    let history = member(tail, "history").ok_or("no history in INITIAL_STATE")?;
    let replica = format!("{history}.{}", member(tail, "seq").ok_or("no seq")?);
    close_all(vec![taken.sink], vec![]).await;
    for i in 0..MISSED {
        let change = format!(
            "{{\"type\":\"STATE_UPDATE\",\"data\":{{\"objectId\":\"OBJ_0_{i}\",\"state\":{{\"on\":\"missed\"}}}}}}"
        );
        let sink = &mut controller.sink;
        sink.send(Message::Text(change.into()))
            .await
            .map_err(|e| e.to_string())?;
    }
    let ask = "{\"type\":\"GET_STATE\",\"requestId\":\"missed\"}";
    (controller.sink.send(Message::Text(ask.into())).await).map_err(|e| e.to_string())?;
    let answered = async {
        while let Some(Ok(m)) = controller.stream.next().await {
            if let Message::Text(t) = m
                && t.as_str().contains("\"requestId\":\"missed\"")
            {
                return Ok(());
            }
        }
        Err("closed before the changes were in".to_string())
    };
    tokio::time::timeout(Duration::from_secs(30), answered)
        .await
        .map_err(|_| "the changes timed out".to_string())??;
    Ok(replica)
}

/// Whether an INITIAL_STATE (its tail) is a resume.
pub(super) fn is_resumed(opened: &Opened) -> bool {
    member(&opened.initial_tail, "resumedFrom").is_some()
}

async fn run_once(t: &Target, stats: Option<&str>) -> Result<Run, String> {
    let airport = fresh_airport();
    let mut controller = open_controller(t, &airport).await?;
    populate(&mut controller).await?;
    let replica = replica_missing_changes(t, &airport, &mut controller).await?;
    let full = storm(t, &airport, None, stats).await?;
    let resumed = storm(t, &airport, Some(&replica), stats).await?;
    let _ = controller.sink.close().await;
    Ok(Run { full, resumed })
}

pub(super) async fn section(args: &Args) -> Result<(), String> {
    let Some(t) = args.targets.iter().find(|t| t.stateful.get()) else {
        println!("\n### Reconnect storm: skipped, no target is the service\n");
        return Ok(());
    };
    let repeats = if args.quick { 1 } else { args.repeats.min(3) };
    let runs = alternating(std::slice::from_ref(t), repeats, async |t| {
        progress(&format!(
            "reconnect: {CLIENTS} observers of 10,000 objects on {}",
            t.name
        ));
        run_once(t, args.stats.as_deref()).await
    })
    .await?;
    let (full_cpu, full) = medians(&runs, |r| r.full.cpu_ms);
    let (resumed_cpu, resumed) = medians(&runs, |r| r.resumed.cpu_ms);
    let (full, resumed) = (&full[0].full, &resumed[0].resumed);
    let mut out = heading(format_args!(
        "Reconnect storm on {}: {CLIENTS} observers of an airport of 10,000 objects reconnect at once having missed {MISSED} changes (medians of {repeats})",
        t.name
    ));
    table(
        &mut out,
        &[
            "INITIAL_STATE",
            "bytes per reconnect",
            "server CPU ms per reconnect",
            "runs (CPU ms)",
            "objects constructed",
        ],
    );
    for (what, storm, figures) in [
        ("full state (no `resume`)", full, &full_cpu[0]),
        (
            "resumed (`resume=<history>.<seq>`)",
            resumed,
            &resumed_cpu[0],
        ),
    ] {
        let _ = writeln!(
            out,
            "| {what} | {} | {} | {} | {} |",
            storm.bytes,
            ms(storm.cpu_ms),
            figures
                .iter()
                .map(|&f| ms(f))
                .collect::<Vec<_>>()
                .join(", "),
            storm
                .constructions
                .map_or("?".to_string(), |c| c.to_string())
        );
    }
    let _ = writeln!(
        out,
        "\nA resume is {} the bytes of the full state; CPU {} of it.",
        format_args!("1/{:.0}", full.bytes as f64 / resumed.bytes.max(1) as f64),
        ratio(resumed.cpu_ms, full.cpu_ms)
    );
    println!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_read_off_the_tail() {
        let tail = r#"0,"seq":10012,"heartbeatIntervalMs":60000,"idleTimeoutMs":70000,"history":"00ff00ff00ff00ff","resumedFrom":10002,"deleted":[]},"timestamp":1}"#;
        assert_eq!(member(tail, "seq"), Some("10012"));
        assert_eq!(member(tail, "history"), Some("00ff00ff00ff00ff"));
        assert_eq!(member(tail, "resumedFrom"), Some("10002"));
        assert_eq!(member(tail, "nope"), None);
    }
}
